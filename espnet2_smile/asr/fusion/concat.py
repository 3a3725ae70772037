"""Ablation of the adaptive fusion: concatenate the last layer's streams."""

from typing import Dict, List, Tuple

import torch
from typeguard import typechecked

from espnet2_smile.asr.fusion.abs_fusion import AbsFusion, check_streams


class ConcatFusion(AbsFusion):
    """Last layer's audio and video halves concatenated on channels, Linear 2D -> D.

    Args:
        size: Model dimension D.
        num_layers: Encoder layers (only the last is used).
        num_streams: Streams per layer output (must be 2).
    """

    @typechecked
    def __init__(self, size: int, num_layers: int, num_streams: int):
        super().__init__()
        check_streams("concat", 2, num_streams)
        self.num_streams = num_streams
        self.num_layers = num_layers
        self.proj = torch.nn.Linear(2 * size, size)

    def forward(
        self, layers: List[torch.Tensor], lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        last = layers[-1]
        # (B, 2, T, D) -> (B, T, 2D) -> (B, T, D)
        return self.proj(torch.cat([last[:, 0], last[:, 1]], dim=-1)), {}
