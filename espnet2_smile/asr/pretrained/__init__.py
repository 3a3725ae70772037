"""Initialisation of SMILE models from pretrained checkpoints of other toolkits."""
