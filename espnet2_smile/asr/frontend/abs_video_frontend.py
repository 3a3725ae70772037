"""Interface of video (lip) frontends."""

from abc import ABC, abstractmethod
from typing import Tuple

import torch


class AbsVideoFrontend(torch.nn.Module, ABC):
    """Maps mouth-ROI frames to one feature vector per frame."""

    @abstractmethod
    def output_size(self) -> int:
        raise NotImplementedError

    @abstractmethod
    def forward(
        self, video: torch.Tensor, video_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, T, H, W) frames and (B,) lengths -> (B, T', D) features and (B,) lengths."""
        raise NotImplementedError
