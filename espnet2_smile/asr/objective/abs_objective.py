"""Interface of auxiliary training objectives on masked frames."""

from abc import ABC, abstractmethod
from typing import Dict, Optional, Tuple

import torch

from espnet2_smile.asr.encoder.smile_encoder import SmileEncoder, StreamEncoderOutput


class AbsObjective(torch.nn.Module, ABC):
    """An auxiliary loss computed in training from the online branch."""

    def attach(self, encoder: SmileEncoder) -> None:
        """Called once by the model with the encoder the objective works on."""

    @abstractmethod
    def forward(
        self,
        encoder: SmileEncoder,
        online: StreamEncoderOutput,
        audio: torch.Tensor,
        video: Optional[torch.Tensor],
        lengths: torch.Tensor,
        audio_mask: torch.Tensor,
        video_mask: Optional[torch.Tensor],
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Compute the weighted auxiliary loss.

        Args:
            encoder: The (online) encoder.
            online: The online branch's encoder output (masked input).
            audio: Unmasked audio features (B, T, Da) as fed to the encoder.
            video: Unmasked video features (B, T, Dv) or None.
            lengths: (B,) valid frames.
            audio_mask: (B, T) True where the online audio input was masked.
            video_mask: (B, T) or None, likewise for video.

        Returns:
            Weighted loss (scalar) and stats (every loss term separately).
        """
        raise NotImplementedError
