"""Interface of input masking applied after the frontends (training only)."""

from abc import ABC, abstractmethod
from typing import Optional, Tuple

import torch


class AbsMasking(torch.nn.Module, ABC):
    @abstractmethod
    def forward(
        self, audio: torch.Tensor, video: Optional[torch.Tensor], lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor, Optional[torch.Tensor]]:
        """Mask features.

        Args:
            audio: (B, T, Da); video: (B, T, Dv) or None; lengths: (B,).

        Returns:
            masked audio, masked video (or None), audio mask (B, T) and video mask
            (B, T) or None; True marks a masked frame (never a padding frame).
        """
        raise NotImplementedError
