"""Span masking per modality, SMILE's masked input for the online branch."""

from typing import Optional, Tuple

import torch
from typeguard import typechecked

from espnet2_smile.asr.masking.abs_masking import AbsMasking

MASK_TYPES = ("learned", "zero", "noise")


def sample_span_mask(
    lengths: torch.Tensor, max_len: int, rate: float, span: int, generator=None
) -> torch.Tensor:
    """Non-overlapping spans covering ``rate`` of each utterance.

    Utterance b gets ``k = round(rate * T_b / span)`` spans of ``span`` frames, placed
    uniformly at random without overlap (k sorted draws from ``T_b - k*span + k``
    slots, shifted apart by ``span - 1``), so exactly ``k * span`` frames are masked:
    the realised rate is ``rate`` up to rounding. An utterance shorter than one span
    gets no mask.

    Args:
        lengths: (B,) valid frames.
        max_len: T, the padded length.
        rate: Fraction of frames to mask, in [0, 1).
        span: Span length in frames.

    Returns:
        (B, T) bool, True = masked.
    """
    mask = torch.zeros(lengths.numel(), max_len, dtype=torch.bool)
    for b, t_b in enumerate(lengths.tolist()):
        k = int(round(rate * t_b / span))
        k = min(k, t_b // span)
        if k == 0:
            continue
        slots = t_b - k * span + k
        picks = torch.randperm(slots, generator=generator)[:k].sort().values
        starts = picks + torch.arange(k) * (span - 1)
        idx = (starts[:, None] + torch.arange(span)[None, :]).reshape(-1)
        mask[b, idx] = True
    return mask.to(lengths.device)


class SpanMasking(AbsMasking):
    """Masks spans of frontend outputs, with separate rates for audio and video.

    Masked frames are replaced by a learned embedding (``learned``, one vector per
    modality), zeros (``zero``) or standard normal noise (``noise``).

    Args:
        audio_size: Audio feature size.
        video_size: Video feature size (0: no video stream).
        audio_rate: Fraction p_a of audio frames masked.
        audio_span: Span length l_a in frames (25 fps).
        video_rate: Fraction p_v of video frames masked.
        video_span: Span length l_v in frames.
        mask_type: ``learned``, ``zero`` or ``noise``.
    """

    @typechecked
    def __init__(
        self,
        audio_size: int,
        video_size: int,
        audio_rate: float = 0.3,
        audio_span: int = 5,
        video_rate: float = 0.3,
        video_span: int = 5,
        mask_type: str = "learned",
    ):
        super().__init__()
        if mask_type not in MASK_TYPES:
            raise ValueError(f"mask_type must be one of {MASK_TYPES}, got {mask_type!r}")
        for name, rate in (("audio_rate", audio_rate), ("video_rate", video_rate)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {rate}")
        for name, span in (("audio_span", audio_span), ("video_span", video_span)):
            if span < 1:
                raise ValueError(f"{name} must be >= 1, got {span}")
        self.audio_rate, self.audio_span = audio_rate, audio_span
        self.video_rate, self.video_span = video_rate, video_span
        self.mask_type = mask_type
        self.has_video = video_size > 0
        if mask_type == "learned":
            self.audio_embed = torch.nn.Parameter(torch.randn(audio_size) * 0.02)
            self.video_embed = (
                torch.nn.Parameter(torch.randn(video_size) * 0.02) if self.has_video else None
            )

    def _fill(self, x: torch.Tensor, mask: torch.Tensor, embed) -> torch.Tensor:
        if self.mask_type == "learned":
            fill = embed.to(x.dtype).expand_as(x)
        elif self.mask_type == "zero":
            fill = torch.zeros_like(x)
        else:
            fill = torch.randn_like(x)
        return torch.where(mask.unsqueeze(-1), fill, x)

    def forward(
        self, audio: torch.Tensor, video: Optional[torch.Tensor], lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor, Optional[torch.Tensor]]:
        time = audio.size(1)
        lengths_cpu = lengths.cpu()
        audio_mask = sample_span_mask(lengths_cpu, time, self.audio_rate, self.audio_span)
        audio_mask = audio_mask.to(audio.device)
        audio = self._fill(audio, audio_mask, getattr(self, "audio_embed", None))
        video_mask = None
        if video is not None:
            video_mask = sample_span_mask(lengths_cpu, time, self.video_rate, self.video_span)
            video_mask = video_mask.to(video.device)
            video = self._fill(video, video_mask, getattr(self, "video_embed", None))
        return audio, video, audio_mask, video_mask
