"""Generate the synthetic audio-visual corpus in LRS3 layout.

Layout written under ``out_dir``::

    corpus.json                       generation parameters, counts, speakers
    lrs3-valid.id                     validation clips, lines ``trainval/<spk>/<clip>``
    pretrain/<spk>/<00001..>.{mp4,txt}  longer clips (several sentences)
    trainval/<spk>/<50001..>.{mp4,txt}  one sentence per clip
    test/<spk>/<00001..>.{mp4,txt}      one sentence, speakers disjoint from training
    noise/{train,test}/{babble,speech,white,pink}/*.wav   16 kHz mono int16

Every item is a pure function of ``(size, seed, grammar, lead_ms)`` and its index,
so generation order and ``nj`` do not change the output, and a rerun writes only
what is missing (files are written under a temporary name and renamed).
"""

import json
import multiprocessing
import os
import struct
import sys
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from espnet2_smile.constants import AUDIO_SR, SAMPLES_PER_FRAME, VIDEO_FPS
from espnet2_smile.corpus.clip import (
    DEFAULT_LEAD_MS, format_lrs3_txt, speech_stream, synthesize_clip,
)
from espnet2_smile.corpus.grammar import GRAMMARS, sample_sentence, vocabulary
from espnet2_smile.corpus.media import EncodeItem, encode_mp4_batch, probe, write_wav
from espnet2_smile.corpus.render import FRAME_SIZE, MOUTH_CENTER_XY, ROI_SIZE, mouth_roi_box
from espnet2_smile.corpus.speakers import make_speaker, role_rng

CORPUS_VERSION = "1.0"
SPLITS: Tuple[str, ...] = ("pretrain", "trainval", "test")
NOISE_KINDS: Tuple[str, ...] = ("babble", "speech", "white", "pink")
VALID_LIST = "lrs3-valid.id"
MANIFEST = "corpus.json"
_SPLIT_CODE = {"pretrain": 0, "trainval": 1, "test": 2}
_FIRST_CLIP = {"pretrain": 1, "trainval": 50001, "test": 1}  # LRS3 numbering
CLIPS_PER_TASK = 4  # clips encoded by one ffmpeg process


@dataclass(frozen=True)
class SizeConfig:
    """Counts for one corpus size."""

    train_speakers: int
    test_speakers: int
    noise_speakers: int  # held-out talkers per noise split (train / test)
    pretrain_per_speaker: int
    trainval_per_speaker: int
    test_per_speaker: int
    n_valid: int
    pretrain_sentences: Tuple[int, int]  # min, max sentences in a pretrain clip
    noise_files: Tuple[int, int]  # files per noise kind for (train, test)
    noise_seconds: float
    babble_talkers: int


SIZES: Dict[str, SizeConfig] = {
    "tiny": SizeConfig(4, 2, 3, 1, 7, 4, 4, (2, 2), (1, 1), 6.0, 3),
    "small": SizeConfig(12, 4, 4, 2, 20, 15, 24, (2, 3), (3, 2), 10.0, 4),
    "default": SizeConfig(40, 8, 6, 5, 26, 25, 100, (2, 4), (6, 3), 15.0, 6),
}


# ----------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class ClipJob:
    split: str
    role: str
    spk_index: int
    spk_id: str
    clip_no: int  # 0-based within the speaker and split
    clip_id: str  # 5-digit LRS3 clip id

    @property
    def rel(self) -> str:
        return f"{self.split}/{self.spk_id}/{self.clip_id}"


@dataclass(frozen=True)
class NoiseJob:
    split: str  # "train" or "test"
    kind: str
    index: int

    @property
    def rel(self) -> str:
        return f"noise/{self.split}/{self.kind}/{self.kind}_{self.index:03d}.wav"


def plan(size: str, seed: int) -> Tuple[Dict[str, list], List[ClipJob], List[NoiseJob]]:
    """Speakers per role, clip jobs and noise jobs of a corpus (no synthesis)."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {tuple(SIZES)}, got {size!r}")
    cfg = SIZES[size]
    speakers = {
        "train": [make_speaker(seed, "train", i) for i in range(cfg.train_speakers)],
        "test": [make_speaker(seed, "test", i) for i in range(cfg.test_speakers)],
        "noise_train": [make_speaker(seed, "noise_train", i) for i in range(cfg.noise_speakers)],
        "noise_test": [make_speaker(seed, "noise_test", i) for i in range(cfg.noise_speakers)],
    }
    ids = [s.spk_id for group in speakers.values() for s in group]
    if len(set(ids)) != len(ids):
        raise ValueError(f"speaker id collision for seed {seed}; choose another seed")
    jobs: List[ClipJob] = []
    per = {"pretrain": cfg.pretrain_per_speaker, "trainval": cfg.trainval_per_speaker,
           "test": cfg.test_per_speaker}
    for split in SPLITS:
        role = "test" if split == "test" else "train"
        for spk in speakers[role]:
            for k in range(per[split]):
                jobs.append(ClipJob(split, role, spk.index, spk.spk_id, k, f"{_FIRST_CLIP[split] + k:05d}"))
    noise: List[NoiseJob] = []
    for split, n in (("train", cfg.noise_files[0]), ("test", cfg.noise_files[1])):
        for kind in NOISE_KINDS:
            noise.extend(NoiseJob(split, kind, i) for i in range(n))
    return speakers, jobs, noise


def valid_ids(jobs: Sequence[ClipJob], size: str, seed: int) -> List[str]:
    """Deterministic random subset of trainval clips (``trainval/<spk>/<clip>``)."""
    tv = sorted(j.rel for j in jobs if j.split == "trainval")
    n = min(SIZES[size].n_valid, len(tv))
    rng = np.random.default_rng([int(seed), 104729])
    return sorted(tv[i] for i in rng.choice(len(tv), size=n, replace=False))


def clip_sentences(job: ClipJob, size: str, seed: int, grammar: str) -> Tuple[np.random.Generator, List[List[str]]]:
    """The clip's random stream and its sentences."""
    rng = role_rng(seed, job.role, job.spk_index, _SPLIT_CODE[job.split], job.clip_no)
    if job.split == "pretrain":
        lo, hi = SIZES[size].pretrain_sentences
        n = int(rng.integers(lo, hi + 1))
    else:
        n = 1
    return rng, [sample_sentence(grammar, rng) for _ in range(n)]


# ----------------------------------------------------------------------------- workers
def _atomic_write_text(path: str, text: str) -> None:
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def clip_done(out_dir: str, rel: str) -> bool:
    base = os.path.join(out_dir, rel)
    return os.path.isfile(base + ".mp4") and os.path.isfile(base + ".txt")


def _run_clips(
    out_dir: str, jobs: Sequence[ClipJob], size: str, seed: int, grammar: str, lead_ms: float
) -> List[Tuple[str, int]]:
    """Synthesise clips, encode them with one ffmpeg process, then publish mp4 + txt."""
    items: List[EncodeItem] = []
    texts: List[str] = []
    done: List[Tuple[str, int]] = []
    for job in jobs:
        speaker = make_speaker(seed, job.role, job.spk_index)
        rng, sentences = clip_sentences(job, size, seed, grammar)
        clip = synthesize_clip(sentences, speaker, rng, grammar=grammar, lead_ms=lead_ms)
        d = os.path.join(out_dir, job.split, job.spk_id)
        os.makedirs(d, exist_ok=True)
        items.append(EncodeItem(
            path=os.path.join(d, "." + job.clip_id + ".mp4.tmp"),
            frames=clip.frames,
            samples=clip.audio,
            wav_path=os.path.join(d, "." + job.clip_id + ".wav.tmp"),
        ))
        texts.append(format_lrs3_txt(clip.words, clip.conf))
        done.append((job.rel, clip.n_frames))
    encode_mp4_batch(items)
    for job, item, text in zip(jobs, items, texts):
        d = os.path.join(out_dir, job.split, job.spk_id)
        os.replace(item.path, os.path.join(d, job.clip_id + ".mp4"))
        _atomic_write_text(os.path.join(d, job.clip_id + ".txt"), text)
    return done


def _run_clip(out_dir: str, job: ClipJob, size: str, seed: int, grammar: str, lead_ms: float) -> Tuple[str, int]:
    """Generate one clip (``<split>/<spk>/<clip>.{mp4,txt}``)."""
    return _run_clips(out_dir, [job], size, seed, grammar, lead_ms)[0]


def _pink(rng: np.random.Generator, n: int) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    spec /= np.sqrt(f)
    spec[0] = 0.0
    return np.fft.irfft(spec, n)


def _run_noise(out_dir: str, job: NoiseJob, size: str, seed: int, grammar: str) -> Tuple[str, int]:
    cfg = SIZES[size]
    n = int(round(cfg.noise_seconds * AUDIO_SR))
    role = "noise_" + job.split
    rng = role_rng(seed, role, 10_000 + NOISE_KINDS.index(job.kind), job.index)
    if job.kind == "white":
        x = rng.standard_normal(n)
    elif job.kind == "pink":
        x = _pink(rng, n)
    elif job.kind == "speech":
        spk = make_speaker(seed, role, int(rng.integers(cfg.noise_speakers)))
        x = speech_stream(spk, rng, n, grammar)
    elif job.kind == "babble":
        k = min(cfg.babble_talkers, cfg.noise_speakers)
        talkers = rng.choice(cfg.noise_speakers, size=k, replace=False)
        x = np.zeros(n)
        for t in talkers:
            x += speech_stream(make_speaker(seed, role, int(t)), rng, n, grammar) * rng.uniform(0.6, 1.0)
    else:  # pragma: no cover - NOISE_KINDS is fixed
        raise ValueError(f"noise kind must be one of {NOISE_KINDS}, got {job.kind!r}")
    x = x / max(float(np.sqrt(np.mean(x ** 2))), 1e-9) * 10 ** (-20.0 / 20.0)  # -20 dBFS RMS
    peak = float(np.max(np.abs(x)))
    if peak > 0.99:
        x *= 0.99 / peak
    path = os.path.join(out_dir, job.rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    write_wav(tmp, x, AUDIO_SR)
    os.replace(tmp, path)
    return job.rel, n


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)
    try:  # keep frame-sized buffers on the heap: fewer page faults per frame
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def _dispatch(args) -> List[Tuple[str, int]]:
    kind, out_dir, jobs, size, seed, grammar, lead_ms = args
    try:
        if kind == "clips":
            return _run_clips(out_dir, jobs, size, seed, grammar, lead_ms)
        return [_run_noise(out_dir, job, size, seed, grammar) for job in jobs]
    except Exception as e:
        names = ", ".join(j.rel for j in jobs)
        raise RuntimeError(f"{names}: {type(e).__name__}: {e}") from None


class _Progress:
    """tqdm when available, else a plain counter on stderr."""

    def __init__(self, total: int, enabled: bool, desc: str) -> None:
        self.total, self.n, self.enabled, self.bar = total, 0, enabled, None
        self.t0 = time.time()
        self.desc = desc
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=desc, file=sys.stderr, unit="item", mininterval=1.0)
            except ImportError:
                self.bar = None

    def update(self, n: int = 1) -> None:
        step = max(1, self.total // 20)
        crossed = (self.n + n) // step > self.n // step
        self.n += n
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(n)
        elif self.n == self.total or crossed:
            print(f"{self.desc}: {self.n}/{self.total} ({time.time() - self.t0:.0f} s)", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ----------------------------------------------------------------------------- durations
def mp4_duration(path: str) -> float:
    """Duration in seconds from the mp4 ``mvhd`` box (ffprobe as a fallback)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        i = head.find(b"mvhd")
        if i >= 0:
            version = head[i + 4]
            if version == 1:
                timescale, duration = struct.unpack(">IQ", head[i + 24:i + 36])
            else:
                timescale, duration = struct.unpack(">II", head[i + 16:i + 24])
            if timescale > 0:
                return duration / timescale
    except OSError:
        pass
    return float(probe(path)["format"]["duration"])


# ----------------------------------------------------------------------------- main entry
def generate_corpus(
    out_dir: str,
    size: str = "tiny",
    seed: int = 0,
    grammar: str = "lrs3",
    lead_ms: float = DEFAULT_LEAD_MS,
    nj: int = 1,
    progress: bool = True,
) -> dict:
    """Generate (or complete) the corpus under ``out_dir`` and return its manifest.

    Args:
        out_dir: corpus root (created).
        size: ``"tiny"`` (test fixture), ``"small"`` or ``"default"`` (the demo).
        seed: random seed; the same seed gives the same corpus.
        grammar: ``"lrs3"`` (talk-style sentences) or ``"grid"`` (GRID commands).
        lead_ms: lead of the lips over the audio in milliseconds.
        nj: number of worker processes.
        progress: show a progress bar on stderr.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {tuple(SIZES)}, got {size!r}")
    if grammar not in GRAMMARS:
        raise ValueError(f"grammar must be one of {GRAMMARS}, got {grammar!r}")
    if nj < 1:
        raise ValueError(f"nj must be >= 1, got {nj}")
    if not (0.0 <= lead_ms <= 400.0):
        raise ValueError(f"lead_ms must be in 0..400, got {lead_ms}")
    params = {"size": size, "seed": int(seed), "grammar": grammar, "lead_ms": float(lead_ms),
              "version": CORPUS_VERSION}
    os.makedirs(out_dir, exist_ok=True)
    manifest_path = os.path.join(out_dir, MANIFEST)
    if os.path.exists(manifest_path):
        with open(manifest_path, encoding="utf-8") as f:
            try:
                old = json.load(f).get("params", {})
            except json.JSONDecodeError:
                old = {}
        if old and old != params:
            raise ValueError(
                f"{out_dir}: holds a corpus generated with {old}, not {params}; use another --out"
            )
    t0 = time.time()
    speakers, jobs, noise_jobs = plan(size, seed)
    _atomic_write_text(manifest_path, json.dumps({"params": params, "complete": False}, indent=2) + "\n")

    todo_clips = [j for j in jobs if not clip_done(out_dir, j.rel)]
    todo_noise = [j for j in noise_jobs if not os.path.isfile(os.path.join(out_dir, j.rel))]
    # clips go in batches (one ffmpeg start per batch); long items first for load balance
    tasks = []
    for split in SPLITS:
        todo = [j for j in todo_clips if j.split == split]
        rank = 0 if split == "pretrain" else 2
        for i in range(0, len(todo), CLIPS_PER_TASK):
            tasks.append((rank, ("clips", out_dir, todo[i:i + CLIPS_PER_TASK], size, seed, grammar, lead_ms)))
    for j in todo_noise:
        rank = 1 if j.kind in ("babble", "speech") else 3
        tasks.append((rank, ("noise", out_dir, [j], size, seed, grammar, lead_ms)))
    pending = [t for _, t in sorted(tasks, key=lambda x: x[0])]
    n_items = len(todo_clips) + len(todo_noise)
    bar = _Progress(n_items, progress, f"corpus {size}")
    frames: Dict[str, int] = {}
    try:
        if nj == 1 or len(pending) <= 1:
            _worker_init()
            for done in map(_dispatch, pending):
                frames.update(done)
                bar.update(len(done))
        else:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(nj, initializer=_worker_init) as pool:
                for done in pool.imap_unordered(_dispatch, pending, chunksize=1):
                    frames.update(done)
                    bar.update(len(done))
    finally:
        bar.close()

    valid = valid_ids(jobs, size, seed)
    _atomic_write_text(os.path.join(out_dir, VALID_LIST), "".join(v + "\n" for v in valid))
    # statistics (clips generated by an earlier run: duration from the mp4 header)
    seconds: Dict[str, float] = {}
    for j in jobs:
        if j.rel in frames:
            seconds[j.rel] = frames[j.rel] / VIDEO_FPS
        else:
            seconds[j.rel] = mp4_duration(os.path.join(out_dir, j.rel + ".mp4"))
    valid_set = set(valid)
    counts = {}
    for split in SPLITS:
        rels = [j.rel for j in jobs if j.split == split]
        counts[split] = {
            "clips": len(rels),
            "speakers": len({j.spk_id for j in jobs if j.split == split}),
            "hours": round(sum(seconds[r] for r in rels) / 3600.0, 4),
        }
    tv_train = [j.rel for j in jobs if j.split == "trainval" and j.rel not in valid_set]
    counts["valid"] = {"clips": len(valid), "hours": round(sum(seconds[r] for r in valid) / 3600.0, 4)}
    counts["train_hours"] = round(
        (sum(seconds[r] for r in tv_train) + sum(seconds[j.rel] for j in jobs if j.split == "pretrain")) / 3600.0, 4
    )
    words = vocabulary(grammar)
    manifest = {
        "name": "espnet2_smile synthetic audio-visual corpus (LRS3 layout)",
        "params": params,
        "complete": True,
        "audio_sr": AUDIO_SR,
        "video_fps": VIDEO_FPS,
        "samples_per_frame": SAMPLES_PER_FRAME,
        "frame_size": FRAME_SIZE,
        "mouth_center_xy": list(MOUTH_CENTER_XY),
        "roi_box_96": list(mouth_roi_box(ROI_SIZE)),
        "valid_list": VALID_LIST,
        "vocabulary_size": len(words),
        "counts": counts,
        "noise": {
            split: {kind: sorted(j.rel for j in noise_jobs if j.split == split and j.kind == kind)
                    for kind in NOISE_KINDS}
            for split in ("train", "test")
        },
        "speakers": {role: [s.summary() for s in group] for role, group in speakers.items()},
        # the only fields that differ between runs of the same command
        "last_run": {"generated_items": n_items, "wall_seconds": round(time.time() - t0, 1), "nj": nj},
    }
    _atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")
    return manifest


def summary_lines(manifest: dict) -> Iterable[str]:
    """Human-readable summary of a manifest (printed by the CLI)."""
    c = manifest["counts"]
    for split in SPLITS:
        yield f"{split:9s} {c[split]['clips']:5d} clips {c[split]['speakers']:3d} speakers {c[split]['hours']:.3f} h"
    yield f"valid     {c['valid']['clips']:5d} clips (subset of trainval) {c['valid']['hours']:.3f} h"
    yield f"training speech (pretrain + trainval - valid): {c['train_hours']:.3f} h"
    run = manifest["last_run"]
    yield f"generated {run['generated_items']} items in {run['wall_seconds']:.1f} s with nj={run['nj']}"


def load_manifest(corpus_dir: str) -> Optional[dict]:
    path = os.path.join(corpus_dir, MANIFEST)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


__all__ = [
    "CORPUS_VERSION", "SIZES", "SPLITS", "NOISE_KINDS", "VALID_LIST", "MANIFEST", "SizeConfig",
    "ClipJob", "NoiseJob", "plan", "valid_ids", "clip_sentences", "generate_corpus",
    "mp4_duration", "summary_lines", "load_manifest",
]
