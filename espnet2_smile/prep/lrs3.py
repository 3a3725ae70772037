"""LRS3 layout -> Kaldi-style data directories (audio wav files + mouth-ROI ark).

Works on real LRS3 and on the built-in corpus (same layout). Sets:

- ``train``: ``trainval/`` minus the valid ids (``trainval``, LRS3's 30 h), or also all
  of ``pretrain/`` (``full``);
- ``dev``: the clips of the valid-id list (held out of ``trainval``);
- ``test``: ``test/``.

Media at other rates is converted: video to 25 fps by timestamps (so variable frame
rate too), audio to 16 kHz mono (downmixed). Transcripts are normalised to LRS3's
characters (:func:`normalize_transcript`). A clip that cannot be used is skipped and
listed with a one-line reason in ``<set>/skipped.txt``: no or malformed ``.txt``, a
transcript with nothing left after normalisation, an utterance id with characters
other than letters, digits, ``_`` and ``-`` or one already taken, an empty or unreadable
mp4, no audio or video stream, no frames or samples, longer than ``ClipLimits.max_sec``,
or audio and video lengths that differ by more than ``ClipLimits.max_av_diff`` frames.
One clip's failure never stops the set.

A set is written to ``<set>.tmp`` and renamed when complete, and marked done with its
options, so an interrupted or repeated run redoes it cleanly or skips it.
"""

import json
import logging
import multiprocessing
import os
import re
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from espnet2_smile.constants import AUDIO_SR, SAMPLES_PER_FRAME, VIDEO_FPS
from espnet2_smile.corpus.lrs3 import list_clips, normalize_text, read_txt, read_valid_ids, utterance_id
from espnet2_smile.prep.media import MediaError, extract_audio, probe, read_mouth_roi
from espnet2_smile.prep.roi import find_landmarks, read_landmark_roi
from espnet2_smile.utils.datadir import spk2utt_from_utt2spk, write_scp

SPLITS = ("pretrain", "trainval", "test")
# trainval: LRS3's 30 h (trainval minus the valid ids); full: plus pretrain, whose clips
# longer than PretrainCut.max_sec are cut at word gaps (LRS3's 433 h). 30h / 433h: the same
# by their usual names.
TRAIN_SUBSETS = ("trainval", "full", "30h", "433h")
SUBSET_ALIASES = {"30h": "trainval", "433h": "full"}
DONE = ".done"


ROI_METHODS = ("fixed", "landmarks", "mediapipe")


@dataclass(frozen=True)
class RoiConfig:
    """Mouth-ROI extraction.

    ``method``: ``fixed`` crops ``size`` pixels around ``center_xy`` of the frame scaled
    to ``frame_size``; ``landmarks`` and ``mediapipe`` align the face with the clip's
    landmark file under ``landmarks_dir`` (:mod:`espnet2_smile.prep.roi`; for
    ``mediapipe`` the files are computed first, see ``prepare_lrs3``).
    """

    center_xy: Tuple[float, float]
    size: int = 96
    frame_size: Optional[int] = 224
    method: str = "fixed"
    landmarks_dir: Optional[Path] = None

    def __post_init__(self):
        if self.method not in ROI_METHODS:
            raise ValueError(f"roi method must be one of {ROI_METHODS}, got {self.method!r}")
        if self.method != "fixed" and self.landmarks_dir is None:
            raise ValueError(f"roi method {self.method!r} needs a landmarks directory")


def read_roi(mp4: Path, rel: str, roi: RoiConfig) -> np.ndarray:
    """(T, size, size) uint8 mouth ROI of clip ``rel`` by ``roi.method``."""
    if roi.method == "fixed":
        return read_mouth_roi(mp4, roi.center_xy, roi.size, roi.frame_size)
    return read_landmark_roi(mp4, find_landmarks(roi.landmarks_dir, rel), roi.size)


@dataclass(frozen=True)
class ClipLimits:
    """Clips outside these limits are skipped.

    Args:
        max_sec: Longest clip in seconds (checked on the container's duration before
            decoding, and on the decoded audio).
        max_av_diff: Largest difference between the audio and the video length, in
            25 fps frames (the model's ``max_av_length_diff`` default).
    """

    max_sec: float = 600.0
    max_av_diff: float = 3.0


@dataclass(frozen=True)
class PretrainCut:
    """How ``pretrain`` clips longer than ``max_sec`` become utterances.

    The word table is split at pauses longer than ``min_gap`` seconds, and consecutive
    pieces are joined while the utterance stays within ``max_sec``; utterance boundaries
    lie in the middle of the pauses (the clip's start and end for the first and last).
    A piece that alone is longer than ``max_sec`` stays one utterance (the stage-4
    length filter decides about it). Clips up to ``max_sec`` are kept whole.
    """

    max_sec: float = 15.0
    min_gap: float = 0.4


def cut_points(
    words: Sequence[Tuple[float, float]], duration: float, cut: PretrainCut = PretrainCut()
) -> List[Tuple[float, float, int, int]]:
    """Utterances of a long clip: ``(start, end, first word, last word + 1)`` per utterance.

    Args:
        words: (start, end) of each word in seconds, in order.
        duration: Length of the clip in seconds.
    """
    if not words:
        return []
    # pieces: runs of words separated by pauses > min_gap
    pieces: List[Tuple[int, int]] = []
    first = 0
    for i in range(1, len(words)):
        if words[i][0] - words[i - 1][1] > cut.min_gap:
            pieces.append((first, i))
            first = i
    pieces.append((first, len(words)))

    def left(i: int) -> float:  # boundary before word i
        return 0.0 if i == 0 else (words[i - 1][1] + words[i][0]) / 2

    def right(j: int) -> float:  # boundary after word j - 1
        return max(duration, words[-1][1]) if j == len(words) else (words[j - 1][1] + words[j][0]) / 2

    out: List[Tuple[float, float, int, int]] = []
    start_word, end_word = pieces[0]
    for a, b in pieces[1:]:
        if right(b) - left(start_word) <= cut.max_sec:
            end_word = b
        else:
            out.append((left(start_word), right(end_word), start_word, end_word))
            start_word, end_word = a, b
    out.append((left(start_word), right(end_word), start_word, end_word))
    return out


_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u00b4": "'", "`": "'"})
# Latin letters that Unicode does not decompose into a base letter and an accent
_LATIN = str.maketrans({"Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe", "Ø": "O", "ø": "o", "Ł": "L",
                        "ł": "l", "Đ": "D", "đ": "d", "Þ": "TH", "þ": "th", "ı": "i"})
_NOT_LRS3 = re.compile(r"[^A-Z0-9' ]+")
_UTTID = re.compile(r"[A-Za-z0-9_-]+")


def normalize_transcript(text: str) -> str:
    """A transcript in LRS3's characters: ``A-Z``, ``0-9``, ``'`` and single spaces.

    ``{...}`` annotation codes are removed; typographic apostrophes become ``'``;
    accented Latin letters lose their accents (``CAFÉ`` -> ``CAFE``, ``Ø`` -> ``O``); text is
    upper-cased; any other character (punctuation, symbols, other scripts) becomes a
    word break; a word made only of apostrophes is dropped. Digits are kept as written.
    """
    text = normalize_text(text).translate(_APOSTROPHES).translate(_LATIN)
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    words = _NOT_LRS3.sub(" ", text.upper()).split()
    return " ".join(w for w in words if w.strip("'"))


def _one_line(reason: str, *paths: Path) -> str:
    """A skip reason as one deterministic line: file names and ffmpeg's object
    addresses (``[mov,mp4 @ 0x55d...]``) removed."""
    for path in paths:
        reason = reason.replace(str(path), path.suffix.lstrip(".") or path.name)
    reason = re.sub(r" @ 0x[0-9a-fA-F]+", "", reason)
    return " ".join(reason.split()) or "unknown error"


@dataclass
class ClipResult:
    uttid: str
    rel: str
    speaker: str = ""
    text: str = ""
    num_samples: int = 0
    roi: Optional[np.ndarray] = None
    wav: Optional[Path] = None  # the extracted audio, under a name unique to the clip
    reason: str = ""  # non-empty: skipped


def plan_sets(root: Path, valid_ids: Path, train_subset: str) -> Dict[str, List[str]]:
    """Clip paths (``<split>/<video id>/<clip id>``) of train, dev and test.

    Raises:
        ValueError: missing root, split or valid-id list, before any work is done.
    """
    if train_subset not in TRAIN_SUBSETS:
        raise ValueError(f"train_subset must be one of {TRAIN_SUBSETS}, got {train_subset!r}")
    train_subset = SUBSET_ALIASES.get(train_subset, train_subset)
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"LRS3 root {root} does not exist")
    needed = ["trainval", "test"] + (["pretrain"] if train_subset == "full" else [])
    for split in needed:
        if not (root / split).is_dir():
            raise ValueError(f"LRS3 root {root} has no {split}/ folder")
    if not Path(valid_ids).is_file():
        raise ValueError(
            f"valid-id list {valid_ids} not found (LRS3: the 1200-id lrs3-valid.id list "
            "distributed with AV-HuBERT's preparation scripts)"
        )
    valid = set(read_valid_ids(valid_ids))
    trainval = [f"trainval/{c}" for c in list_clips(root / "trainval", require_txt=False)]
    missing = sorted(valid - set(trainval))
    if missing:
        logging.warning(f"{len(missing)} valid ids are not in {root}/trainval, e.g. {missing[0]}")
    sets = {
        "train": [c for c in trainval if c not in valid],
        "dev": [c for c in trainval if c in valid],
        "test": [f"test/{c}" for c in list_clips(root / "test", require_txt=False)],
    }
    if train_subset == "full":
        sets["train"] += [f"pretrain/{c}" for c in list_clips(root / "pretrain", require_txt=False)]
    for name, clips in sets.items():
        if not clips:
            raise ValueError(f"no clips for set {name!r} under {root}")
    return sets


def clip_uttid(rel: str) -> str:
    """``trainval/ABC/50001`` -> ``ABC_50001``; pretrain clips get a ``pre`` tag, since
    LRS3 reuses clip numbers across pretrain and trainval."""
    split, video_id, clip_id = rel.split("/")
    return utterance_id(video_id, ("pre" if split == "pretrain" else "") + clip_id)


def process_clip(
    root: Path, rel: str, wav_dir: Path, roi: RoiConfig, limits: ClipLimits = ClipLimits()
) -> ClipResult:
    """Transcript, 16 kHz audio and mouth ROI of one clip.

    The audio goes to ``wav_dir`` under a name made from the clip path (two clips
    with the same utterance id do not overwrite each other's audio).
    Never raises for a bad clip: ``result.reason`` says why it is skipped (and no wav
    file is left behind).
    """
    uttid = clip_uttid(rel)
    result = ClipResult(uttid=uttid, rel=rel, speaker=rel.split("/")[1])
    mp4, txt = root / f"{rel}.mp4", root / f"{rel}.txt"
    wav = wav_dir / (".clip_" + rel.replace("/", "__") + ".wav")
    try:
        if not _UTTID.fullmatch(uttid):
            raise ValueError(
                f"bad utterance id: {uttid!r} has characters other than letters, digits, '_' and '-'"
            )
        if not txt.is_file():
            raise ValueError("no .txt transcript")
        result.text = normalize_transcript(read_txt(txt).text)
        if not result.text:
            raise ValueError("transcript has no letters or digits after normalisation")
        if mp4.stat().st_size == 0:
            raise MediaError("empty mp4 file (0 bytes)")
        info = probe(mp4)
        if not info.has_video:
            raise MediaError("no video stream")
        if not info.has_audio:
            raise MediaError("no audio stream")
        if info.duration > limits.max_sec:
            raise MediaError(f"too long: {info.duration:.1f} s (container) > max_sec {limits.max_sec:g} s")
        result.roi = read_roi(mp4, rel, roi)
        result.num_samples = extract_audio(mp4, wav)
        result.wav = wav
        if result.num_samples > limits.max_sec * AUDIO_SR:
            raise MediaError(
                f"too long: {result.num_samples / AUDIO_SR:.1f} s (audio) > max_sec {limits.max_sec:g} s"
            )
        audio_frames = result.num_samples / SAMPLES_PER_FRAME
        video_frames = result.roi.shape[0]
        if abs(audio_frames - video_frames) > limits.max_av_diff:
            raise MediaError(
                f"A/V length mismatch: audio {audio_frames:.1f} frames, video {video_frames} "
                f"frames at 25 fps (more than max_av_diff {limits.max_av_diff:g} apart)"
            )
    except (ValueError, OSError) as e:
        result.reason = _one_line(str(e).splitlines()[0] if str(e) else type(e).__name__, txt, mp4)
    except Exception as e:  # noqa: BLE001 -- one clip's failure must not stop the set
        result.reason = _one_line(f"unexpected {type(e).__name__}: {e}", txt, mp4)
    if result.reason:
        result.roi, result.wav = None, None
        if wav.exists():
            wav.unlink()
    return result


def process_pretrain_clip(
    root: Path, rel: str, wav_dir: Path, roi: RoiConfig, limits: ClipLimits = ClipLimits(),
    cut: PretrainCut = PretrainCut(),
) -> List[ClipResult]:
    """A ``pretrain`` clip as one utterance, or, when longer than ``cut.max_sec``, as the
    utterances of :func:`cut_points` (ids ``<clip id>_<kk>``, the clip processed once).

    Boundaries are rounded to 25 fps frames and the audio is cut at the same frames, so
    every utterance keeps the clip's audio-visual alignment; the transcript is the word
    table's words of the utterance, normalised. Never raises for a bad clip.
    """
    whole = process_clip(root, rel, wav_dir, roi, limits)
    if whole.reason:
        return [whole]
    duration = whole.num_samples / AUDIO_SR
    if duration <= cut.max_sec:
        return [whole]
    whole_wav = whole.wav
    results: List[ClipResult] = []
    try:
        table = read_txt(root / f"{rel}.txt").words
        if not table:
            raise ValueError(f"longer than {cut.max_sec:g} s ({duration:.1f} s) and no word table to cut it by")
        spans = cut_points([(w.start, w.end) for w in table], duration, cut)
        data, rate = _read_wav(whole.wav)
        for k, (start, end, i, j) in enumerate(spans):
            f0 = int(round(start * VIDEO_FPS))
            f1 = min(int(round(end * VIDEO_FPS)), whole.roi.shape[0])
            text = normalize_transcript(" ".join(w.word for w in table[i:j]))
            seg = ClipResult(uttid=f"{whole.uttid}_{k:02d}", rel=f"{rel}#{k:02d}", speaker=whole.speaker, text=text)
            if not text or f1 <= f0:
                seg.reason = "cut utterance has no words or no frames after normalisation"
                results.append(seg)
                continue
            audio = data[f0 * SAMPLES_PER_FRAME: f1 * SAMPLES_PER_FRAME]
            seg.wav = wav_dir / (".clip_" + seg.rel.replace("/", "__").replace("#", "__") + ".wav")
            _write_wav(seg.wav, audio, rate)
            seg.num_samples = len(audio)
            seg.roi = whole.roi[f0:f1]
            results.append(seg)
        return results
    except (ValueError, OSError) as e:
        for seg in results:
            if seg.wav is not None and seg.wav.exists():
                seg.wav.unlink()
        whole.reason = _one_line(str(e).splitlines()[0] if str(e) else type(e).__name__)
        whole.roi, whole.wav = None, None
        return [whole]
    finally:
        if whole_wav.exists():
            whole_wav.unlink()


def _read_wav(path: Path) -> Tuple[np.ndarray, int]:
    import soundfile

    data, rate = soundfile.read(str(path), dtype="int16")
    return data, rate


def _write_wav(path: Path, data: np.ndarray, rate: int) -> None:
    import soundfile

    soundfile.write(str(path), data, rate, subtype="PCM_16")


def _listing_key(rel: str) -> str:
    """``rel`` as the first field of a ``skipped.txt`` line (whitespace as %20 etc.)."""
    return re.sub(r"\s", lambda m: f"%{ord(m.group()):02X}", rel)


def _work(args) -> List[ClipResult]:
    root, rel, wav_dir, roi, limits, cut = args
    if cut is not None and rel.startswith("pretrain/"):
        return process_pretrain_clip(root, rel, wav_dir, roi, limits, cut)
    return [process_clip(root, rel, wav_dir, roi, limits)]


def write_set(
    root: Path,
    out: Path,
    clips: Sequence[str],
    roi: RoiConfig,
    nj: int,
    options: dict,
    limits: ClipLimits = ClipLimits(),
    cut: Optional[PretrainCut] = PretrainCut(),
) -> Tuple[int, int]:
    """Build data directory ``out`` from ``clips``. Returns (kept, skipped).

    ``pretrain`` clips longer than ``cut.max_sec`` become several utterances
    (:func:`process_pretrain_clip`; ``cut=None``: kept whole)."""
    import kaldiio

    out = Path(out)
    marker = out / DONE
    if marker.is_file() and json.loads(marker.read_text()) == options:
        logging.info(f"{out}: already prepared with the same options; skipped")
        kept = sum(1 for _ in open(out / "wav.scp"))
        skipped = sum(1 for _ in open(out / "skipped.txt"))
        return kept, skipped
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "wav").mkdir(parents=True)
    # by utterance id, then clip path: of clips with the same id, the first is kept
    jobs = sorted(((root, rel, tmp / "wav", roi, limits, cut) for rel in clips),
                  key=lambda j: (clip_uttid(j[1]).encode(), j[1].encode()))
    seen: Dict[str, str] = {}
    text, utt2spk, wav, samples, frames, skipped = {}, {}, {}, {}, {}, {}
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(max(1, nj)) as pool, kaldiio.WriteHelper(
        f"ark,scp:{tmp / 'video.ark'},{tmp / 'video.scp.tmp'}", write_function="numpy"
    ) as ark:
        results = (r for rs in pool.imap(_work, jobs, chunksize=4) for r in rs)
        for n, r in enumerate(results, 1):
            if not r.reason and r.uttid in seen:
                r.reason = f"duplicate utterance id: {r.uttid} is also {seen[r.uttid]}, which is kept"
                r.wav.unlink()
            if r.reason:
                skipped[_listing_key(r.rel)] = r.reason
                logging.warning(f"skip {r.rel}: {r.reason}")
                continue
            seen[r.uttid] = r.rel
            os.replace(r.wav, tmp / "wav" / f"{r.uttid}.wav")
            ark[r.uttid] = r.roi
            text[r.uttid] = r.text
            utt2spk[r.uttid] = r.speaker
            wav[r.uttid] = str(out / "wav" / f"{r.uttid}.wav")
            samples[r.uttid] = str(r.num_samples)
            frames[r.uttid] = str(r.roi.shape[0])
            if n % 500 == 0:
                logging.info(f"{out}: {n} utterances done ({len(jobs)} clips)")
    write_scp(tmp / "skipped.txt", skipped)
    if not text:
        raise ValueError(f"{out}: every clip was skipped (reasons in {tmp / 'skipped.txt'})")
    # the ark was written under the temporary name: point video.scp at the final one
    video = {}
    for line in (tmp / "video.scp.tmp").read_text().splitlines():
        key, loc = line.split(" ", 1)
        video[key] = str(out / "video.ark") + loc[loc.rindex(":"):]
    (tmp / "video.scp.tmp").unlink()
    for name, table in (("text", text), ("utt2spk", utt2spk), ("wav.scp", wav), ("video.scp", video),
                        ("utt2num_samples", samples), ("utt2num_frames", frames)):
        write_scp(tmp / name, table)
    write_scp(tmp / "spk2utt", spk2utt_from_utt2spk(utt2spk))
    (tmp / DONE).write_text(json.dumps(options, sort_keys=True))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    kinds: Dict[str, int] = {}
    for reason in skipped.values():
        kind = re.split(r"[:(]", reason, maxsplit=1)[0].strip()
        kinds[kind] = kinds.get(kind, 0) + 1
    by_kind = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    by_kind = f": {by_kind}" if by_kind else ""
    logging.info(f"{out}: {len(text)} utterances, {len(skipped)} skipped{by_kind} (listed in {out / 'skipped.txt'})")
    return len(text), len(skipped)
