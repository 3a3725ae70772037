"""Baseline final fusion: the last layer of a single-stream (channel) encoder."""

from typing import Dict, List, Tuple

import torch
from typeguard import typechecked

from espnet2_smile.asr.fusion.abs_fusion import AbsFusion, check_streams


class LastLayerFusion(AbsFusion):
    """Returns the last layer's output; for the ``channel`` layout (one stream).

    Args:
        size: Model dimension D (unused; kept for a uniform constructor).
        num_layers: Encoder layers.
        num_streams: Streams per layer output (must be 1).
    """

    @typechecked
    def __init__(self, size: int, num_layers: int, num_streams: int):
        super().__init__()
        check_streams("last", 1, num_streams)
        self.num_streams = num_streams
        self.num_layers = num_layers

    def forward(
        self, layers: List[torch.Tensor], lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        return layers[-1][:, 0], {}
