"""Reading talking-face clips with ffmpeg: probing, 16 kHz mono audio, mouth ROIs."""

import os
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from espnet2_smile.constants import AUDIO_SR, VIDEO_FPS
from espnet2_smile.corpus import media as corpus_media


class MediaError(ValueError):
    """A clip that cannot be used; the message is the one-line reason."""


@dataclass
class ClipInfo:
    has_video: bool
    has_audio: bool
    width: int
    height: int
    fps: float
    duration: float


def _run(cmd, what: str, path: Path) -> bytes:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise MediaError(f"{what} failed: {err[-1] if err else 'exit ' + str(proc.returncode)}")
    return proc.stdout


def probe(path: Path) -> ClipInfo:
    """Streams of a media file (the corpus package's ffprobe). Raises MediaError if unreadable."""
    try:
        info = corpus_media.probe(str(path))
    except corpus_media.MediaError as e:
        raise MediaError(str(e)) from None
    video, audio = info.get("video"), info.get("audio")
    fps = 0.0
    if video is not None and video.get("avg_frame_rate", "0/0") not in ("0/0", ""):
        num, den = video["avg_frame_rate"].split("/")
        fps = float(num) / float(den) if float(den) else 0.0
    try:
        duration = float(info["format"].get("duration", 0.0))
    except ValueError:
        duration = 0.0
    return ClipInfo(
        has_video=video is not None,
        has_audio=audio is not None,
        width=int(video.get("width", 0)) if video else 0,
        height=int(video.get("height", 0)) if video else 0,
        fps=fps,
        duration=duration,
    )


def extract_audio(path: Path, wav_out: Path) -> int:
    """Write the first audio stream as 16 kHz mono 16-bit wav (atomically).

    Any input rate or channel count is resampled/downmixed by ffmpeg.

    Returns:
        number of samples written.
    """
    wav_out = Path(wav_out)
    tmp = wav_out.with_name(f".{wav_out.name}.tmp{os.getpid()}.wav")
    try:
        _run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(path), "-map", "0:a:0",
             "-ac", "1", "-ar", str(AUDIO_SR), "-c:a", "pcm_s16le", "-f", "wav", str(tmp)],
            "audio extraction", path,
        )
        try:
            with wave.open(str(tmp), "rb") as w:  # the header is not always 44 bytes (LIST chunk)
                n_samples = w.getnframes()
        except (wave.Error, EOFError) as e:
            raise MediaError(f"audio extraction wrote no readable wav ({e})") from None
        if n_samples <= 0:
            raise MediaError("audio stream has no samples")
        os.replace(tmp, wav_out)
        return int(n_samples)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_mouth_roi(
    path: Path, center_xy: Tuple[float, float], size: int = 96, frame_size: Optional[int] = 224
) -> np.ndarray:
    """Decode the video at 25 fps and crop a fixed square around the mouth.

    The frames are first scaled to ``frame_size`` x ``frame_size`` (LRS3's face
    framing; None: keep the size), then converted to gray and cropped to ``size``
    pixels around ``center_xy`` (pixels of the scaled frame). A clip at another frame
    rate is resampled to 25 fps.

    Returns:
        uint8 frames (T, size, size).
    """
    x0 = int(round(center_xy[0] - size / 2))
    y0 = int(round(center_xy[1] - size / 2))
    filters = [f"fps={VIDEO_FPS}"]
    if frame_size is not None:
        filters.append(f"scale={frame_size}:{frame_size}")
        if not (0 <= x0 and 0 <= y0 and x0 + size <= frame_size and y0 + size <= frame_size):
            raise MediaError(f"ROI {size}x{size} at ({x0}, {y0}) is outside the {frame_size}x{frame_size} frame")
    filters += [f"crop={size}:{size}:{x0}:{y0}", "format=gray"]
    raw = _run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-an",
         "-vf", ",".join(filters), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        "video decoding", path,
    )
    n = len(raw) // (size * size)
    if n == 0:
        raise MediaError("video stream has no frames")
    return np.frombuffer(raw[: n * size * size], dtype=np.uint8).reshape(n, size, size)
