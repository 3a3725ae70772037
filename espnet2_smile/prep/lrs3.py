"""LRS3 layout -> Kaldi-style data directories (audio wav files + mouth-ROI ark).

Works on real LRS3 and on the built-in corpus (same layout). Sets:

- ``train``: ``trainval/`` minus the valid ids (``trainval``, LRS3's 30 h), or also all
  of ``pretrain/`` (``full``);
- ``dev``: the clips of the valid-id list (held out of ``trainval``);
- ``test``: ``test/``.

A clip that cannot be used (no or malformed ``.txt``, unreadable mp4, no audio or video
stream, no frames) is skipped and listed with its reason in ``<set>/skipped.txt``.
A set is written to ``<set>.tmp`` and renamed when complete, and marked done with its
options, so an interrupted or repeated run redoes it cleanly or skips it.
"""

import json
import logging
import multiprocessing
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from espnet2_smile.corpus.lrs3 import list_clips, read_txt, read_valid_ids, utterance_id
from espnet2_smile.prep.media import MediaError, extract_audio, probe, read_mouth_roi
from espnet2_smile.utils.datadir import spk2utt_from_utt2spk, write_scp

SPLITS = ("pretrain", "trainval", "test")
TRAIN_SUBSETS = ("trainval", "full")
DONE = ".done"


@dataclass(frozen=True)
class RoiConfig:
    center_xy: Tuple[float, float]
    size: int = 96
    frame_size: Optional[int] = 224


@dataclass
class ClipResult:
    uttid: str
    rel: str
    speaker: str = ""
    text: str = ""
    num_samples: int = 0
    roi: Optional[np.ndarray] = None
    reason: str = ""  # non-empty: skipped


def plan_sets(root: Path, valid_ids: Path, train_subset: str) -> Dict[str, List[str]]:
    """Clip paths (``<split>/<video id>/<clip id>``) of train, dev and test.

    Raises:
        ValueError: missing root, split or valid-id list, before any work is done.
    """
    if train_subset not in TRAIN_SUBSETS:
        raise ValueError(f"train_subset must be one of {TRAIN_SUBSETS}, got {train_subset!r}")
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


def process_clip(root: Path, rel: str, wav_dir: Path, roi: RoiConfig) -> ClipResult:
    """Transcript, 16 kHz audio (written to ``wav_dir``) and mouth ROI of one clip."""
    uttid = clip_uttid(rel)
    result = ClipResult(uttid=uttid, rel=rel, speaker=rel.split("/")[1])
    mp4, txt = root / f"{rel}.mp4", root / f"{rel}.txt"
    try:
        if not txt.is_file():
            raise ValueError("no .txt transcript")
        transcript = read_txt(txt)
        result.text = transcript.clean_text.upper()
        info = probe(mp4)
        if not info.has_video:
            raise MediaError("no video stream")
        result.roi = read_mouth_roi(mp4, roi.center_xy, roi.size, roi.frame_size)
        if not info.has_audio:
            raise MediaError("no audio stream")
        result.num_samples = extract_audio(mp4, wav_dir / f"{uttid}.wav")
    except (ValueError, OSError) as e:
        # one line: the reason without the file name (the listing names the clip)
        result.reason = str(e).replace(str(txt), "txt").replace(str(mp4), "mp4").splitlines()[0]
        result.roi = None
    return result


def _work(args) -> ClipResult:
    return process_clip(*args)


def write_set(
    root: Path, out: Path, clips: Sequence[str], roi: RoiConfig, nj: int, options: dict
) -> Tuple[int, int]:
    """Build data directory ``out`` from ``clips``. Returns (kept, skipped)."""
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
    jobs = sorted(((root, rel, tmp / "wav", roi) for rel in clips), key=lambda j: clip_uttid(j[1]).encode())
    seen: Dict[str, str] = {}
    text, utt2spk, wav, samples, frames, skipped = {}, {}, {}, {}, {}, {}
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(max(1, nj)) as pool, kaldiio.WriteHelper(
        f"ark,scp:{tmp / 'video.ark'},{tmp / 'video.scp.tmp'}", write_function="numpy"
    ) as ark:
        for n, r in enumerate(pool.imap(_work, jobs, chunksize=4), 1):
            if not r.reason and r.uttid in seen:
                r.reason = f"duplicate utterance id {r.uttid} (also {seen[r.uttid]})"
            if r.reason:
                skipped[r.rel] = r.reason
                logging.warning(f"skip {r.rel}: {r.reason}")
                continue
            seen[r.uttid] = r.rel
            ark[r.uttid] = r.roi
            text[r.uttid] = r.text
            utt2spk[r.uttid] = r.speaker
            wav[r.uttid] = str(out / "wav" / f"{r.uttid}.wav")
            samples[r.uttid] = str(r.num_samples)
            frames[r.uttid] = str(r.roi.shape[0])
            if n % 500 == 0:
                logging.info(f"{out}: {n}/{len(jobs)} clips")
    if not text:
        raise ValueError(f"{out}: every clip was skipped (see {tmp / 'skipped.txt'})")
    # the ark was written under the temporary name: point video.scp at the final one
    video = {}
    for line in (tmp / "video.scp.tmp").read_text().splitlines():
        key, loc = line.split(" ", 1)
        video[key] = str(out / "video.ark") + loc[loc.rindex(":"):]
    (tmp / "video.scp.tmp").unlink()
    for name, table in (("text", text), ("utt2spk", utt2spk), ("wav.scp", wav), ("video.scp", video),
                        ("utt2num_samples", samples), ("utt2num_frames", frames), ("skipped.txt", skipped)):
        write_scp(tmp / name, table)
    write_scp(tmp / "spk2utt", spk2utt_from_utt2spk(utt2spk))
    (tmp / DONE).write_text(json.dumps(options, sort_keys=True))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    logging.info(f"{out}: {len(text)} utterances, {len(skipped)} skipped (listed in {out / 'skipped.txt'})")
    return len(text), len(skipped)
