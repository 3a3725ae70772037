"""Interface of final fusion modules: per-layer encoder streams -> one sequence."""

from abc import ABC, abstractmethod
from typing import Dict, List, Tuple

import torch


class AbsFusion(torch.nn.Module, ABC):
    """Combines the encoder's per-layer outputs into the encoder output.

    Subclasses set ``num_streams`` (streams per layer output they accept) and
    ``num_layers`` (layer outputs they receive) in their constructor.
    """

    num_streams: int
    num_layers: int

    @abstractmethod
    def forward(
        self, layers: List[torch.Tensor], lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Fuse.

        Args:
            layers: One (B, S, T, D) tensor per layer, S = ``num_streams`` (stream 0 is
                audio, stream 1 video); entries a fusion does not use may be None.
            lengths: (B,) valid frames.

        Returns:
            Output (B, T, D) and diagnostics (name -> scalar tensor).
        """
        raise NotImplementedError


def check_streams(name: str, expected: int, got: int) -> None:
    """Build-time check of the stream count a fusion module is given."""
    if got != expected:
        raise ValueError(
            f"fusion {name!r} needs {expected} stream(s) per layer, the encoder gives "
            f"{got} (layout 'temporal' gives 2, 'channel' gives 1)"
        )
