#!/usr/bin/env python3
"""Transcribe video files with a trained model (the archive of recipe stage 14).

    python -m espnet2_smile.bin.transcribe --model exp/asr_smile/packed.zip talk.mp4 [more.mp4 ...]
    python -m espnet2_smile.bin.transcribe --model packed.zip --modality video --roi_method mediapipe clip.mov

For each video: the first audio stream is extracted as 16 kHz mono (any rate, any
channel count), the video is read at 25 fps (any frame rate, variable too) and the
mouth ROI is cropped as in stage 1 (``--roi_method``: ``fixed`` for LRS3-framed faces
such as the built-in corpus, ``landmarks`` with ``--landmarks FILE``, or ``mediapipe``
for any video with a face; see the recipe README), then ESPnet's beam search decodes
it with the packed decoding options (overridable below). One line per video goes to
stdout: ``<video path><TAB><text>``.

A video that cannot be transcribed (no audio stream, no video stream, no face found,
audio and video lengths too far apart, unreadable file) gets a one-line error on stderr
naming the file and the reason; the others are still transcribed, and the exit status
is 1. ``--modality audio`` needs no video stream and ``--modality video`` no audio
stream (the missing one is zeros, as in the model's single-modality decoding).

The archive is unpacked once into ``--unpack_dir`` (default: ``<archive>.unpacked``
next to it) with ESPnet's ``unpack``; member names that are absolute or contain
``..`` are refused, and the model is loaded weights-only.
"""

import argparse
import contextlib
import inspect
import logging
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import yaml

from espnet2_smile.constants import AUDIO_SR, SAMPLES_PER_FRAME
from espnet2_smile.prep.lrs3 import ROI_METHODS
from espnet2_smile.prep.media import MediaError, extract_audio, probe, read_mouth_roi
from espnet2_smile.prep.roi import default_mediapipe_python, read_landmark_roi, run_mediapipe

# decoding options that may come from the packed decode config or the command line
DECODE_KEYS = ("beam_size", "ctc_weight", "lm_weight", "penalty", "maxlenratio", "minlenratio", "nbest")


class TranscribeError(ValueError):
    """A video that cannot be transcribed (the message is the reason)."""


def archive_members(path: Path) -> List[str]:
    """Names in a .zip / .tar.gz archive; refuses absolute names and ``..`` components."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    elif tarfile.is_tarfile(path):
        with tarfile.open(path) as t:
            members = t.getmembers()
            bad = [m.name for m in members if not (m.isfile() or m.isdir())]
            if bad:
                raise ValueError(f"{path}: archive member {bad[0]!r} is a link or device, refused")
            names = [m.name for m in members]
    else:
        raise ValueError(f"{path}: neither a zip nor a tar archive")
    for name in names:
        p = PurePosixPath(name)
        if p.is_absolute() or ".." in p.parts:
            raise ValueError(f"{path}: archive member {name!r} points outside the archive, refused")
    return names


def unpack_model(archive: Path, out: Optional[Path] = None) -> Dict[str, str]:
    """ESPnet's ``unpack`` of a stage-14 archive (checked first): name -> file path."""
    from espnet2.main_funcs.pack_funcs import unpack

    archive = Path(archive)
    if not archive.is_file():
        raise ValueError(f"model archive {archive} does not exist")
    names = archive_members(archive)
    if not any(PurePosixPath(n).name == "meta.yaml" for n in names):
        raise ValueError(f"{archive}: no meta.yaml: not a packed model (recipe stage 14)")
    out = Path(out) if out is not None else archive.with_name(archive.name + ".unpacked")
    files = unpack(archive, out)
    for key in ("asr_train_config", "asr_model_file"):
        if key not in files:
            raise ValueError(f"{archive}: the archive has no {key}")
    return files


def decode_options(decode_config: Optional[str], overrides: Dict[str, Any]) -> Dict[str, Any]:
    """Speech2Text keyword arguments: the decode config's, then the non-None overrides."""
    from espnet2_smile.bin.avsr_inference import AVSpeech2Text
    import espnet2.bin.asr_inference as asr_inference

    accepted = set(inspect.signature(asr_inference.Speech2Text.__init__).parameters)
    accepted |= set(inspect.signature(AVSpeech2Text.__init__).parameters)
    opts: Dict[str, Any] = {}
    if decode_config:
        with open(decode_config, encoding="utf-8") as f:
            conf = yaml.safe_load(f) or {}
        opts.update({k: v for k, v in conf.items() if k in accepted and k != "batch_decoding"})
    opts.update({k: v for k, v in overrides.items() if v is not None})
    return opts


def load_audio(video: Path, work: Path) -> np.ndarray:
    """(L,) float32 waveform at 16 kHz in [-1, 1], as ESPnet's ``sound`` loader reads it."""
    from espnet2.fileio.sound_scp import soundfile_read

    wav = work / "audio.wav"
    extract_audio(video, wav)
    data, rate = soundfile_read(str(wav), dtype="float32")
    assert rate == AUDIO_SR, rate
    return data


def load_roi(video: Path, args: argparse.Namespace, work: Path) -> np.ndarray:
    """(T, size, size) uint8 mouth ROI at 25 fps by ``args.roi_method``."""
    if args.roi_method == "fixed":
        cx, cy = (float(v) for v in args.roi_center.split(","))
        return read_mouth_roi(video, (cx, cy), args.roi_size, args.frame_size)
    if args.roi_method == "landmarks":
        if args.landmarks is None:
            raise TranscribeError("--roi_method landmarks needs --landmarks FILE")
        return read_landmark_roi(video, args.landmarks, args.roi_size)
    landmarks = work / "landmarks.npz"
    run_mediapipe(args.mediapipe_python or default_mediapipe_python(), [(video, landmarks)])
    if not landmarks.is_file():
        raise TranscribeError("mediapipe could not read the video")
    return read_landmark_roi(video, landmarks, args.roi_size)


def prepare(video: Path, args: argparse.Namespace) -> Tuple[np.ndarray, np.ndarray]:
    """(speech, roi) of one video for ``args.modality``; raises TranscribeError."""
    if not video.is_file():
        raise TranscribeError("no such file")
    try:
        info = probe(video)
        need_audio = args.modality in ("av", "audio")
        need_video = args.modality in ("av", "video")
        if need_audio and not info.has_audio:
            raise TranscribeError("no audio stream (transcribe it with --modality video)")
        if need_video and not info.has_video:
            raise TranscribeError("no video stream (transcribe it with --modality audio)")
        with tempfile.TemporaryDirectory(prefix="transcribe_") as tmp:
            speech = load_audio(video, Path(tmp)) if need_audio else None
            roi = load_roi(video, args, Path(tmp)) if need_video else None
    except (MediaError, ValueError, OSError) as e:
        if isinstance(e, TranscribeError):
            raise
        raise TranscribeError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    # the stream left out of a single-modality decoding is zeros of the matching length
    if roi is None:
        frames = -(-len(speech) // SAMPLES_PER_FRAME)
        roi = np.zeros((frames, args.roi_size, args.roi_size), dtype=np.uint8)
    if speech is None:
        speech = np.zeros(roi.shape[0] * SAMPLES_PER_FRAME, dtype=np.float32)
    return speech, roi


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="+", type=Path, help="video files (any container ffmpeg reads)")
    model = parser.add_argument_group("model (an archive, or the training config and checkpoint)")
    model.add_argument("--model", type=Path, default=None, help="archive of recipe stage 14 (.zip / .tar.gz)")
    model.add_argument("--unpack_dir", type=Path, default=None, help="default: <archive>.unpacked")
    model.add_argument("--asr_train_config", type=Path, default=None)
    model.add_argument("--asr_model_file", type=Path, default=None)
    model.add_argument("--decode_config", type=Path, default=None,
                       help="decoding options (default: the packed one, else ESPnet's defaults)")
    dec = parser.add_argument_group("decoding")
    dec.add_argument("--modality", default="av", choices=["av", "audio", "video"])
    dec.add_argument("--beam_size", type=int, default=None)
    dec.add_argument("--ctc_weight", type=float, default=None)
    dec.add_argument("--lm_weight", type=float, default=None)
    dec.add_argument("--penalty", type=float, default=None)
    dec.add_argument("--maxlenratio", type=float, default=None)
    dec.add_argument("--minlenratio", type=float, default=None)
    dec.add_argument("--nbest", type=int, default=None, help="print the n best (one line each)")
    dec.add_argument("--device", default="cpu", help="cpu or cuda")
    roi = parser.add_argument_group("mouth ROI")
    roi.add_argument("--roi_method", default="fixed", choices=ROI_METHODS)
    roi.add_argument("--roi_center", default=None, help="fixed: mouth centre x,y in the --frame_size frame")
    roi.add_argument("--frame_size", type=int, default=None, help="fixed: frames scaled to this square first")
    roi.add_argument("--roi_size", type=int, default=None)
    roi.add_argument("--landmarks", type=Path, default=None, help="landmarks: the video's landmark file")
    roi.add_argument("--mediapipe_python", type=Path, default=None,
                     help=f"mediapipe: interpreter of the mediapipe environment (default {default_mediapipe_python()})")
    return parser


def load_model(args: argparse.Namespace):
    """The decoder (AVSpeech2Text) of ``--model`` or of the config and checkpoint."""
    if args.model is not None:
        files = unpack_model(args.model, args.unpack_dir)
        config, model_file = files["asr_train_config"], files["asr_model_file"]
        decode_config = args.decode_config or files.get("decode_config")
        lm = {k: files[k] for k in ("lm_train_config", "lm_file") if k in files}
    elif args.asr_train_config is not None and args.asr_model_file is not None:
        config, model_file, decode_config, lm = args.asr_train_config, args.asr_model_file, args.decode_config, {}
    else:
        raise ValueError("give --model ARCHIVE, or --asr_train_config and --asr_model_file")
    opts = decode_options(decode_config, {k: getattr(args, k) for k in DECODE_KEYS})
    if not lm:
        opts.pop("lm_weight", None)
    from espnet2_smile.bin.avsr_inference import AVSpeech2Text

    return AVSpeech2Text(
        asr_train_config=config, asr_model_file=model_file, device=args.device,
        modality=args.modality, **lm, **opts,
    )


def main(cmd=None) -> int:
    from espnet2_smile.corpus.render import FRAME_SIZE, MOUTH_CENTER_XY, ROI_SIZE

    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    args.roi_center = args.roi_center or f"{MOUTH_CENTER_XY[0]},{MOUTH_CENTER_XY[1]}"
    args.frame_size = args.frame_size or FRAME_SIZE
    args.roi_size = args.roi_size or ROI_SIZE
    try:
        # stdout carries only the transcripts: what the imports print goes to stderr
        with contextlib.redirect_stdout(sys.stderr):
            s2t = load_model(args)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"transcribe: {e}", file=sys.stderr)
        return 2
    failed = 0
    for video in args.videos:
        try:
            speech, roi = prepare(video, args)
            try:
                results = s2t(speech, roi)
            except ValueError as e:  # e.g. audio and video lengths too far apart
                raise TranscribeError(str(e).splitlines()[0]) from None
            texts = [r[0] for r in results] or [""]
            for text in texts:
                print(f"{video}\t{text}", flush=True)
        except TranscribeError as e:
            failed += 1
            print(f"transcribe: {video}: {e}", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
