"""Preprocessor of audio-visual utterances: text tokenisation, video casting, training noise."""

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from espnet2.train.preprocessor import CommonPreprocessor
from typeguard import typechecked

from espnet2_smile.prep.noise import CLEAN, NoiseSource, check_snr, scale_noise


def parse_noise_snrs(values: Sequence[Union[float, int, str]]) -> List[Optional[float]]:
    """``noise_snrs`` entries: numbers (dB) or ``clean`` (None: no noise)."""
    if isinstance(values, (str, bytes)) or not values:
        raise ValueError(f"noise_snrs must be a non-empty list of dB values and/or 'clean', got {values!r}")
    out: List[Optional[float]] = []
    for v in values:
        if isinstance(v, str) and v.strip().lower() == CLEAN:
            out.append(None)
            continue
        try:
            out.append(check_snr(float(v)))
        except (TypeError, ValueError):
            raise ValueError(f"noise_snrs: {v!r} is neither a number of dB nor 'clean'") from None
    return out


class AVPreprocessor(CommonPreprocessor):
    """ESPnet's CommonPreprocessor (tokenisation, optional RIR/noise) plus the video.

    Mouth ROIs are stored as uint8 ``(T, H, W)`` arrays (4x smaller than float32);
    ESPnet's dataset accepts only float and int arrays, so they are cast to float32
    here (values stay in [0, 255]; the video frontend normalises them).
    A malformed item raises a one-line error naming the utterance.

    Training noise reuses ESPnet's options and control flow: ``noise_scp`` (a list of
    noise files, ``<id> <path>`` or ``<path>`` per line; read in training only),
    ``noise_apply_prob`` (per utterance) and ``noise_db_range`` (``"lo_hi"`` dB, uniform)
    are the task's own top-level options, and the noise is added after the optional
    RIR, as in CommonPreprocessor. Two things differ from CommonPreprocessor's mixing:
    the SNR is the RMS ratio over the whole utterance (``espnet2_smile.prep.noise``,
    the definition of the noisy test sets, where ESPnet measures the speech power on
    non-silent samples only), and noise files at any sample rate are resampled to the
    speech rate. ``noise_snrs`` (this class's option, in ``preprocessor_conf``) draws
    the SNR from a set instead of the range; ``clean`` in the set leaves the utterance
    unchanged. The video is never touched.

    Args:
        video_name: Name of the video input.
        noise_snrs: SNRs in dB and/or ``clean`` to draw from uniformly (default: the
            ``noise_db_range``), e.g. ``[-5, 0, 5, 10, 15, 20, clean]``.
        kwargs: CommonPreprocessor's arguments.
    """

    def __init__(
        self,
        *args,
        video_name: str = "video",
        noise_snrs: Optional[Sequence[Union[float, int, str]]] = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.video_name = video_name
        self.noise_snrs = parse_noise_snrs(noise_snrs) if noise_snrs is not None else None
        self.noise_source = None
        if self.noises is not None:  # set by CommonPreprocessor in training only
            if not self.noises:
                raise ValueError(f"noise_scp {kwargs.get('noise_scp')}: lists no noise files")
            missing = [p for p in self.noises if not Path(p).is_file()]
            if missing:
                raise ValueError(
                    f"noise_scp {kwargs.get('noise_scp')}: {len(missing)} files do not exist, e.g. {missing[0]}"
                )
            self.noise_source = NoiseSource("train", [Path(p) for p in self.noises])
        if not 0.0 <= self.noise_apply_prob <= 1.0:
            raise ValueError(f"noise_apply_prob must be in [0, 1], got {self.noise_apply_prob}")

    def _add_noise(self, speech, power, noises, noise_db_low, noise_db_high, tgt_fs=None, single_channel=False):
        """Called by CommonPreprocessor with probability ``noise_apply_prob``.

        Args:
            speech: (C, L) samples.

        Returns:
            the noisy (C, L) speech, and the scaled (L,) noise (None when ``clean``).
        """
        # one generator per call, drawn from the global state that ESPnet seeds per worker
        rng = np.random.default_rng(np.random.randint(0, 2**31 - 1))
        if self.noise_snrs is not None:
            snr = self.noise_snrs[int(rng.integers(len(self.noise_snrs)))]
        else:
            snr = float(rng.uniform(noise_db_low, noise_db_high))
        if snr is None or float(np.abs(speech).max(initial=0.0)) == 0.0:
            return speech, None
        segment, path, offset = self.noise_source.segment(speech.shape[-1], rng)
        try:
            noise = scale_noise(speech, segment, snr)
        except ValueError as e:
            raise ValueError(f"training noise {path} at {offset}: {e}") from None
        return speech + noise, noise

    @typechecked
    def __call__(
        self, uid: str, data: Dict[str, Union[str, np.ndarray]]
    ) -> Dict[str, np.ndarray]:
        if self.video_name in data:
            video = data[self.video_name]
            if not isinstance(video, np.ndarray) or video.ndim != 3:
                shape = getattr(video, "shape", type(video).__name__)
                raise ValueError(
                    f"utterance {uid}: video must be a (T, H, W) array, got {shape}"
                )
            if video.shape[0] == 0:
                raise ValueError(f"utterance {uid}: video has no frames")
            data[self.video_name] = video.astype(np.float32, copy=False)
        speech = data.get(self.speech_name)
        if isinstance(speech, np.ndarray) and speech.size == 0:
            raise ValueError(f"utterance {uid}: audio has no samples")
        text = data.get(self.text_name)
        if isinstance(text, str) and not text.strip():
            raise ValueError(f"utterance {uid}: empty transcript")
        mono = isinstance(speech, np.ndarray) and speech.ndim == 1
        try:
            data = super().__call__(uid, data)
        except ValueError as e:
            raise ValueError(f"utterance {uid}: {e}") from None
        out = data.get(self.speech_name)
        if mono and isinstance(out, np.ndarray) and out.ndim == 2 and out.shape[1] == 1:
            # CommonPreprocessor returns (L, 1) after RIR/noise: keep mono audio (L,)
            data[self.speech_name] = out[:, 0]
        return data
