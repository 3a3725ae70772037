"""Audio frontend: 16 kHz waveform -> log-mel filterbank (10 ms) -> 4 stacked frames (25 fps)."""

from typing import Optional, Tuple

import torch
import torchaudio
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from typeguard import typechecked

from espnet2_smile.constants import AUDIO_SR, FBANK_HOP, FBANK_PER_FRAME


class StackedFbankFrontend(AbsFrontend):
    """Log-mel filterbank stacked to the video frame rate, as AV-HuBERT's audio input.

    Framing: filterbank frame ``t`` is the ``hop_length`` block of samples
    ``[t*hop, (t+1)*hop)`` widened symmetrically (window of ``win_length`` samples
    centred on the block), with zeros outside the signal. So ``stack`` consecutive frames cover exactly one video
    frame (``[640 k, 640 (k+1))`` at the defaults), a signal of ``L`` samples has
    ``L // hop`` filterbank frames and ``ceil((L // hop) / stack)`` output frames, and
    the features of an utterance do not depend on how much padding follows it in a
    batch.

    Args:
        fs: Sample rate in Hz; only ``AUDIO_SR`` (16 kHz) input is supported.
        n_mels: Number of mel bands (AV-HuBERT: 26).
        n_fft: FFT size.
        win_length: Analysis window in samples (25 ms).
        hop_length: Hop in samples (10 ms).
        stack: Filterbank frames stacked into one output frame.
        fmin: Lowest mel frequency.
        fmax: Highest mel frequency (None: fs / 2).
        log_floor: Added to the mel power before the log.
    """

    @typechecked
    def __init__(
        self,
        fs: int = AUDIO_SR,
        n_mels: int = 26,
        n_fft: int = 512,
        win_length: int = 400,
        hop_length: int = FBANK_HOP,
        stack: int = FBANK_PER_FRAME,
        fmin: float = 20.0,
        fmax: Optional[float] = None,
        log_floor: float = 1e-6,
    ):
        super().__init__()
        if fs != AUDIO_SR:
            raise ValueError(f"StackedFbankFrontend: fs must be {AUDIO_SR}, got {fs}")
        if not (hop_length <= win_length <= n_fft):
            raise ValueError(
                "StackedFbankFrontend: need hop_length <= win_length <= n_fft, got "
                f"{hop_length}, {win_length}, {n_fft}"
            )
        if (n_fft - hop_length) % 2:
            raise ValueError(
                "StackedFbankFrontend: n_fft - hop_length must be even, got "
                f"{n_fft} - {hop_length}"
            )
        self.n_mels = n_mels
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.stack = stack
        self.log_floor = log_floor
        self.register_buffer(
            "window", torch.hann_window(win_length, periodic=True), persistent=False
        )
        # (n_fft // 2 + 1, n_mels)
        fbanks = torchaudio.functional.melscale_fbanks(
            n_freqs=n_fft // 2 + 1,
            f_min=fmin,
            f_max=fmax if fmax is not None else fs / 2,
            n_mels=n_mels,
            sample_rate=fs,
            norm="slaney",
            mel_scale="slaney",
        )
        self.register_buffer("fbanks", fbanks, persistent=False)

    def output_size(self) -> int:
        return self.n_mels * self.stack

    def num_frames(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Output frames for signals of ``num_samples``: ceil((L // hop) / stack)."""
        n_fbank = torch.div(num_samples, self.hop_length, rounding_mode="floor")
        return torch.div(n_fbank + self.stack - 1, self.stack, rounding_mode="floor")

    def forward(
        self, input: torch.Tensor, input_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Compute stacked log-mel features.

        Args:
            input: Waveforms (B, L), zero-padded.
            input_lengths: Valid samples per waveform (B,).

        Returns:
            Features (B, T, n_mels * stack) with zeros past each length, and
            lengths (B,) with T = max(lengths).
        """
        assert input.dim() == 2, f"expected (B, L) waveforms, got {tuple(input.shape)}"
        batch = input.size(0)
        n_fbank = torch.div(input_lengths, self.hop_length, rounding_mode="floor")
        t_fbank = int(n_fbank.max()) if batch else 0
        # the n_fft frame (window centred in it) is centred on its hop block
        side = (self.n_fft - self.hop_length) // 2
        needed = t_fbank * self.hop_length
        # zero everything past each length; frame t spans [t*hop - side, t*hop + hop + side)
        wav = input[:, : needed + side]
        valid = torch.arange(wav.size(1), device=wav.device)[None, :] < input_lengths[:, None]
        wav = wav * valid.to(wav.dtype)
        wav = torch.nn.functional.pad(wav, (side, needed + side - wav.size(1)))
        if t_fbank == 0:
            feats = wav.new_zeros(batch, 0, self.n_mels)
        else:
            # (B, L') -> (B, n_fft // 2 + 1, T_fbank)
            spec = torch.stft(
                wav.float(),
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                win_length=self.win_length,
                window=self.window,
                center=False,
                return_complex=True,
            )
            power = spec.abs().pow(2)
            # (B, F, T) -> (B, T, F) @ (F, n_mels) -> (B, T, n_mels)
            mel = torch.matmul(power.transpose(1, 2), self.fbanks)
            feats = torch.log(mel + self.log_floor)
            assert feats.size(1) == t_fbank, (feats.shape, t_fbank)
        frame_valid = torch.arange(t_fbank, device=feats.device)[None, :] < n_fbank[:, None]
        feats = feats * frame_valid.unsqueeze(-1).to(feats.dtype)
        # stack: (B, T_fbank, n_mels) -> (B, T, stack * n_mels)
        t_out = (t_fbank + self.stack - 1) // self.stack
        feats = torch.nn.functional.pad(feats, (0, 0, 0, t_out * self.stack - t_fbank))
        feats = feats.reshape(batch, t_out, self.stack * self.n_mels)
        return feats, self.num_frames(input_lengths)
