# Data roots. LRS3: the folder holding pretrain/, trainval/ and test/ of LRS3
# (https://www.robots.ox.ac.uk/~vgg/data/lip_reading/lrs3.html). Empty: the recipe
# generates and uses the built-in synthetic corpus instead.
LRS3=
