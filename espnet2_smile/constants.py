"""Constants shared by every part of the package (one definition each)."""

from typing import Tuple

AUDIO_SR: int = 16000
"""Audio sample rate in Hz."""

VIDEO_FPS: int = 25
"""Video frame rate in frames per second."""

SAMPLES_PER_FRAME: int = AUDIO_SR // VIDEO_FPS
"""Audio samples per video frame (640)."""

FBANK_HOP: int = AUDIO_SR // 100
"""Filterbank hop in samples (10 ms)."""

FBANK_PER_FRAME: int = SAMPLES_PER_FRAME // FBANK_HOP
"""Filterbank frames per video frame (4): the audio stacking factor."""

AUDIO: str = "audio"
VIDEO: str = "video"
MODALITIES: Tuple[str, str] = (AUDIO, VIDEO)
