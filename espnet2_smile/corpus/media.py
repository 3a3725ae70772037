"""Audio/video I/O through the ffmpeg/ffprobe binaries and the ``wave`` module.

Encoding is deterministic: libx264 with one thread (no frame/slice threads, no
lookahead threads) and ffmpeg's native AAC encoder, bit-exact container flags and no
metadata, so the same frames and samples give a byte-identical mp4.
"""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import wave
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from espnet2_smile.constants import AUDIO_SR, VIDEO_FPS


class MediaError(RuntimeError):
    """An ffmpeg/ffprobe call failed (the message carries its stderr tail)."""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MediaError(f"{name}: not found on PATH (install the Debian package ffmpeg)")
    return path


def _tail(stderr: bytes, n: int = 400) -> str:
    text = stderr.decode("utf-8", "replace").strip().replace("\n", " | ")
    return text[-n:] if text else "(no stderr)"


def write_wav(path: str, samples: np.ndarray, sample_rate: int = AUDIO_SR) -> None:
    """Write mono int16 samples (or float in [-1, 1]) to a PCM wav file."""
    x = np.asarray(samples)
    if x.dtype != np.int16:
        x = np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(x.tobytes())


def read_wav(path: str) -> "tuple[np.ndarray, int]":
    """Read a mono 16-bit PCM wav: (int16 samples, sample rate)."""
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: expected mono 16-bit PCM wav")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).copy()
        return data, w.getframerate()


@dataclass
class EncodeItem:
    """One mp4 to encode: BGR frames (T, H, W, 3) uint8, mono audio, output path."""

    path: str
    frames: np.ndarray
    samples: np.ndarray
    wav_path: Optional[str] = None  # temporary wav (default: ``path + ".wav"``)


def _output_options(sample_rate: int, crf: int, preset: str, audio_bitrate: str) -> List[str]:
    return [
        "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
        "-threads", "1", "-x264-params", "threads=1:lookahead-threads=1:sliced-threads=0",
        "-c:a", "aac", "-b:a", audio_bitrate, "-ar", str(sample_rate), "-ac", "1",
        "-fflags", "+bitexact", "-flags", "+bitexact", "-map_metadata", "-1",
        "-movflags", "+faststart", "-f", "mp4",
    ]


def _write_all(fd: int, data: memoryview) -> None:
    try:
        while data:
            n = os.write(fd, data)
            data = data[n:]
    except (BrokenPipeError, OSError):
        pass  # ffmpeg exited early; its stderr says why
    finally:
        os.close(fd)


def encode_mp4_batch(
    items: Sequence[EncodeItem],
    sample_rate: int = AUDIO_SR,
    fps: int = VIDEO_FPS,
    crf: int = 23,
    preset: str = "ultrafast",
    audio_bitrate: str = "64k",
) -> None:
    """Encode several mp4 files with one ffmpeg process (its start-up costs ~70 ms).

    Each clip has its own raw-video pipe, wav input, encoders and muxer, so a file is
    byte-identical whether it is encoded alone or in a batch.
    """
    if not items:
        return
    for it in items:
        f = it.frames
        if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8:
            raise ValueError(f"{it.path}: frames must be (T, H, W, 3) uint8, got {f.shape} {f.dtype}")
    cmd = [_tool("ffmpeg"), "-nostdin", "-y", "-hide_banner", "-loglevel", "error"]
    pipes: List[Tuple[int, int]] = []
    wavs: List[str] = []
    try:
        for it in items:
            T, H, W, _ = it.frames.shape
            wav = it.wav_path or it.path + ".wav"
            write_wav(wav, it.samples, sample_rate)
            wavs.append(wav)
            r, w = os.pipe()
            pipes.append((r, w))
            cmd += ["-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{W}x{H}", "-r", str(fps),
                    "-i", f"pipe:{r}", "-i", wav]
        for k, it in enumerate(items):
            cmd += ["-map", f"{2 * k}:v:0", "-map", f"{2 * k + 1}:a:0"]
            cmd += _output_options(sample_rate, crf, preset, audio_bitrate) + [it.path]
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=err, pass_fds=[r for r, _ in pipes])
            for r, _ in pipes:
                os.close(r)
            writers = []
            for (_, w), it in zip(pipes, items):
                data = memoryview(np.ascontiguousarray(it.frames)).cast("B")
                t = threading.Thread(target=_write_all, args=(w, data), daemon=True)
                t.start()
                writers.append(t)
            pipes = []  # the writer threads own (and close) the write ends
            for t in writers:
                t.join()
            rc = proc.wait()
            if rc != 0:
                err.seek(0)
                names = ", ".join(it.path for it in items)
                raise MediaError(f"ffmpeg failed to encode {names} (exit {rc}): {_tail(err.read())}")
    finally:
        for r, w in pipes:
            for fd in (r, w):
                try:
                    os.close(fd)
                except OSError:
                    pass
        for wav in wavs:
            if os.path.exists(wav):
                os.remove(wav)


def encode_mp4(
    path: str,
    frames: np.ndarray,
    samples: np.ndarray,
    sample_rate: int = AUDIO_SR,
    fps: int = VIDEO_FPS,
    crf: int = 23,
    preset: str = "ultrafast",
    audio_bitrate: str = "64k",
    wav_path: Optional[str] = None,
) -> None:
    """Encode BGR frames (T, H, W, 3) uint8 and mono int16 audio into one mp4.

    Raw frames are piped into one ffmpeg call that also reads the audio from a
    temporary wav: H.264 (libx264, yuv420p) + AAC, ``-movflags +faststart``.
    """
    encode_mp4_batch([EncodeItem(path, frames, samples, wav_path)], sample_rate, fps, crf,
                     preset, audio_bitrate)


def decode_video(path: str, gray: bool = False) -> np.ndarray:
    """Decode all frames: (T, H, W, 3) uint8 BGR, or (T, H, W) if ``gray``."""
    info = probe(path)
    v = info["video"]
    W, H = int(v["width"]), int(v["height"])
    pix = "gray" if gray else "bgr24"
    proc = subprocess.run(
        [_tool("ffmpeg"), "-nostdin", "-v", "error", "-i", path, "-map", "0:v:0",
         "-f", "rawvideo", "-pix_fmt", pix, "pipe:1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    if proc.returncode != 0:
        raise MediaError(f"ffmpeg failed to decode video of {path} (exit {proc.returncode}): {_tail(proc.stderr)}")
    c = 1 if gray else 3
    buf = np.frombuffer(proc.stdout, dtype=np.uint8)
    if buf.size % (H * W * c):
        raise MediaError(f"{path}: decoded video size {buf.size} is not a whole number of {W}x{H} frames")
    out = buf.reshape(-1, H, W, c)
    return out[..., 0] if gray else out


def decode_audio(path: str, sample_rate: int = AUDIO_SR) -> np.ndarray:
    """Decode the audio stream to mono int16 at ``sample_rate``."""
    proc = subprocess.run(
        [_tool("ffmpeg"), "-nostdin", "-v", "error", "-i", path, "-map", "0:a:0",
         "-f", "s16le", "-ac", "1", "-ar", str(sample_rate), "pipe:1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    if proc.returncode != 0:
        raise MediaError(f"ffmpeg failed to decode audio of {path} (exit {proc.returncode}): {_tail(proc.stderr)}")
    return np.frombuffer(proc.stdout, dtype=np.int16).copy()


def probe(path: str) -> Dict[str, dict]:
    """ffprobe summary: ``{"video": stream, "audio": stream, "format": format}``."""
    proc = subprocess.run(
        [_tool("ffprobe"), "-v", "error", "-show_streams", "-show_format", "-of", "json", path],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    if proc.returncode != 0:
        raise MediaError(f"ffprobe failed on {path} (exit {proc.returncode}): {_tail(proc.stderr)}")
    info = json.loads(proc.stdout.decode("utf-8"))
    out: Dict[str, dict] = {"format": info.get("format", {})}
    for s in info.get("streams", []):
        kind = s.get("codec_type")
        if kind in ("video", "audio") and kind not in out:
            out[kind] = s
    return out
