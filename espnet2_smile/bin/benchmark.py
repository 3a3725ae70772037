#!/usr/bin/env python3
"""Speed and memory of the recipe against its targets, measured in one run.

    OMP_NUM_THREADS=2 python -m espnet2_smile.bin.benchmark \\
        --dump_dir egs2/lrs3_smile/avsr1/dump/raw/train \\
        --corpus_dirs tiny default=egs2/lrs3_smile/avsr1/downloads/builtin_default_seed1 \\
        [--sections prep,step,loader,memory] [--decoding_json DIR/benchmark.json] \\
        [--out docs/BENCHMARKS.md]

prints one summary table (figure, value, target, met / not met) followed by the
details of each section, and writes the same text to ``--out``. Sections (each can
run alone with ``--sections``; they run in this order):

prep
    Stage 1 (``python -m espnet2_smile.bin.prepare_lrs3`` with local/data.sh's
    options, ``--nj`` jobs) on each corpus of ``--corpus_dirs``: seconds of audio
    written to the data dirs per wall-clock second, divided by nj (target >= 20x per
    core); peak memory of the process tree, compared between the smallest and the
    largest corpus (target: the ratio stays <= 1.25x, i.e. memory does not grow with
    the corpus). A corpus given as a size (``tiny``, ``small``, ``default``) whose
    folder is missing is generated first with ``espnet2_smile.bin.make_corpus`` (not
    timed).
step
    One training step (forward, backward, gradient clipping, optimiser and scheduler
    step, as ESPnet's trainer does) of every variant of ``--config_dir`` on identical
    batches, relative to ``baseline`` (targets: smile <= 1.4x, smile_nosiamese <=
    1.1x), and where the time of a step goes for baseline, smile_nosiamese and smile.
    Batches: ``--num_batches`` batches of the training iterator that the config builds
    on the data dir (batch_type, batch_size, fold lengths of the recipe), evenly spaced
    from the shortest to the longest; without a data dir, one synthetic batch (as
    ``benchmark_variants``). Variants are interleaved batch by batch and repeat by
    repeat, so that a slow period of the machine hits all of them alike.
loader
    ESPnet's training iterator built by ``AVSRTask.build_iter_factory`` from
    ``--config`` (num_workers, batch_type, batch_size, the ``av`` preprocessor) over
    the data dir (wav.scp, video.scp as kaldi_ark, text), one pass, in utterances per
    second; compared with the training throughput of ``--config`` (utterances per
    second of the step section when it ran on the same data, else of a few steps on the
    loader's first batches). Target: loader >= 3x training.
memory
    Peak memory of one training epoch with ``--config``: the recipe's stage-11
    command (``python -m espnet2_smile.bin.avsr_train``, CPU, ``--max_epoch 1``,
    optionally ``--num_iters_per_epoch``), data-loader workers included. Target <=
    4 GiB.

Test-set decoding (stock vs batched) is measured by
``espnet2_smile.bin.benchmark_decoding``; pass its ``benchmark.json`` with
``--decoding_json`` to add its figures to the table (target >= 3x at equal WER).

Memory of a process tree: every 0.1 s the RSS (and PSS, the RSS with shared pages
divided among the processes sharing them) of the process and all its descendants is
summed. The figure compared with the targets is the peak RSS sum, or the kernel's own
maximum RSS of the largest single process (``wait4``) when a sample missed a short
peak and that is larger. RSS counts the pages that forked workers share with their
parent once per process, so it is the larger, conservative figure; the peak PSS sum is
reported next to it.

Where the time of a step goes: the methods of one model instance are wrapped with
wall-clock timers (frontends, masking, ``encoder.forward_streams``, the Siamese
objective's no-grad target pass, CTC, decoder, losses; forward hooks cannot be used
because the encoder is called through ``forward_streams``, not ``forward``); each
region's time excludes the regions inside it, and a region marked opaque (e.g. the
target branch, which runs the encoder) includes everything inside. The timed passes
run after the step timing, so the step times carry no instrumentation.
"""

import argparse
import contextlib
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from espnet2_smile.constants import AUDIO_SR
from espnet2_smile.utils.machine import cpu_name

RECIPE_DIR = Path(__file__).resolve().parents[2] / "egs2" / "lrs3_smile" / "avsr1"
SECTIONS = ("prep", "step", "loader", "memory")  # run order
CORPUS_SIZES = ("tiny", "small", "default")
BREAKDOWN_VARIANTS = ("baseline", "smile_nosiamese", "smile")

# Targets (CPU demo configs).
STEP_TARGETS = {"smile": 1.4, "smile_nosiamese": 1.1}  # ms/step relative to baseline, at most
LOADER_TARGET = 3.0  # loader utterances/s over training utterances/s, at least
PREP_RTF_TARGET = 20.0  # seconds of audio per wall second per job, at least
PREP_GROWTH_LIMIT = 1.25  # peak memory, largest corpus over smallest, at most
TRAIN_MEMORY_TARGET_GIB = 4.0  # peak RSS of a training epoch, at most
DECODING_TARGET = 3.0  # stock / batched decoding wall time, at least
DECODING_WER_TOLERANCE = 0.2  # absolute WER difference, at most
FOLD_LENGTHS = (80000, 150)  # avsr.sh stage 11: --fold_length 80000 --fold_length 150
GIB = 1024**3
MIB = 1024**2


# ---------------------------------------------------------------------------- report
@dataclass
class Row:
    """One line of the summary table."""

    section: str
    figure: str
    value: str
    target: str = "-"
    status: str = "-"


def status(met: bool) -> str:
    return "met" if met else "**not met**"


@dataclass
class SectionResult:
    rows: List[Row] = field(default_factory=list)
    details: List[str] = field(default_factory=list)  # markdown lines


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Optional[str] = None) -> List[str]:
    """A markdown table; ``align``: one character per column, ``l`` or ``r``."""
    align = align or "l" * len(header)
    sep = ["---" if a == "l" else "---:" for a in align]
    return ["| " + " | ".join(header) + " |", "|" + "|".join(sep) + "|"] + [
        "| " + " | ".join(str(c) for c in row) + " |" for row in rows
    ]


def fmt_bytes(n: float) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / MIB:.0f} MiB"


# ---------------------------------------------------------------- process trees
def _children_map() -> Dict[int, List[int]]:
    children: Dict[int, List[int]] = defaultdict(list)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1:
            children[int(fields[1])].append(int(entry.name))
    return children


def process_tree(root: int) -> List[int]:
    """``root`` and all its descendants that are alive now."""
    children = _children_map()
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def _status_kib(pid: int, path: str, key: str) -> int:
    try:
        with open(f"/proc/{pid}/{path}") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class TreeMemorySampler:
    """Peak of the summed RSS and PSS of a process tree, sampled by a thread."""

    def __init__(self, root: int, interval: float = 0.1):
        self.root = root
        self.interval = interval
        self.peak_rss = 0
        self.peak_pss = 0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        pids = process_tree(self.root)
        rss = sum(_status_kib(p, "status", "VmRSS:") for p in pids) * 1024
        pss = sum(_status_kib(p, "smaps_rollup", "Pss:") for p in pids) * 1024
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)
        self.peak_processes = max(self.peak_processes, len(pids))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> "TreeMemorySampler":
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class MeasuredRun:
    wall_s: float
    cpu_s: float  # user + system of the process and its waited-for descendants
    peak_tree_rss: int  # bytes, sampled
    peak_tree_pss: int  # bytes, sampled
    max_process_rss: int  # bytes, the kernel's maximum RSS of the largest single process
    peak_processes: int

    @property
    def peak_rss(self) -> int:
        """Peak RSS of the tree: the sampled sum, at least the largest process's own peak
        (which a sample can miss)."""
        return max(self.peak_tree_rss, self.max_process_rss)


def run_measured(cmd: List[str], cwd: Path, log: Path, env: Optional[Dict[str, str]] = None) -> MeasuredRun:
    """Run ``cmd`` (output to ``log``) and measure its wall time, CPU time and memory.

    Raises:
        RuntimeError: the command failed; the message holds the end of its log.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        with TreeMemorySampler(proc.pid) as sampler:
            _, wait_status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(wait_status)
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed with exit code {proc.returncode} (log {log}):\n{tail}")
    return MeasuredRun(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_tree_rss=sampler.peak_rss,
        peak_tree_pss=sampler.peak_pss,
        max_process_rss=usage.ru_maxrss * 1024,  # KiB on Linux
        peak_processes=sampler.peak_processes,
    )


# ----------------------------------------------------------------- step regions
class RegionTimer:
    """Exclusive wall time of named regions, entered by wrapped methods.

    A region's time excludes the regions entered inside it; inside an ``opaque``
    region no other region is entered, so it keeps everything it calls.
    """

    def __init__(self):
        self.seconds: Dict[str, float] = defaultdict(float)
        self._stack: List[List] = []  # [name, start, seconds of child regions]
        self._opaque = 0
        self._wrapped: List[Tuple[object, str]] = []

    @contextlib.contextmanager
    def region(self, name: str, opaque: bool = False) -> Iterator[None]:
        if self._opaque:
            yield
            return
        frame = [name, time.perf_counter(), 0.0]
        self._stack.append(frame)
        self._opaque += int(opaque)
        try:
            yield
        finally:
            self._opaque -= int(opaque)
            self._stack.pop()
            elapsed = time.perf_counter() - frame[1]
            self.seconds[name] += elapsed - frame[2]
            if self._stack:
                self._stack[-1][2] += elapsed

    def wrap(self, obj: object, method: str, name: str, opaque: bool = False) -> None:
        """Time ``obj.method`` as region ``name`` (an instance attribute shadows the method)."""
        original = getattr(obj, method)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            with self.region(name, opaque):
                return original(*args, **kwargs)

        setattr(obj, method, timed)
        self._wrapped.append((obj, method))

    def unwrap(self) -> None:
        for obj, method in reversed(self._wrapped):
            delattr(obj, method)
        self._wrapped.clear()


# region name -> group of the summary
REGIONS = {
    "audio frontend (fbank)": "frontends",
    "audio normalisation": "frontends",
    "video frontend (ResNet)": "frontends",
    "frontends: length alignment": "frontends",
    "masking": "masking",
    "encoder, online (incl. final fusion)": "encoder",
    "Siamese target branch (no-grad encoder pass)": "Siamese target",
    "objective heads + loss": "losses",
    "CTC (projection + loss)": "losses",
    "decoder": "decoder",
    "attention loss (label smoothing, accuracy)": "losses",
    "forward: rest (stats, gathering)": "other",
    "backward (all parts)": "backward",
    "optimiser (clip, step, scheduler, zero_grad)": "optimiser",
}


def instrument(model, timer: RegionTimer) -> None:
    """Wrap the parts of an ESPnetAVSRModel with the regions of :data:`REGIONS`."""
    timer.wrap(model, "forward", "forward: rest (stats, gathering)")
    timer.wrap(model, "extract_av_feats", "frontends: length alignment")
    timer.wrap(model.frontend, "forward", "audio frontend (fbank)", opaque=True)
    if model.normalize is not None:
        timer.wrap(model.normalize, "forward", "audio normalisation", opaque=True)
    if model.video_frontend is not None:
        timer.wrap(model.video_frontend, "forward", "video frontend (ResNet)", opaque=True)
    if model.masking is not None:
        timer.wrap(model.masking, "forward", "masking", opaque=True)
    timer.wrap(model.encoder, "forward_streams", "encoder, online (incl. final fusion)", opaque=True)
    if model.objective is not None:
        timer.wrap(model.objective, "forward", "objective heads + loss")
        if hasattr(model.objective, "_targets"):  # the Siamese objective's target branch
            timer.wrap(model.objective, "_targets", "Siamese target branch (no-grad encoder pass)", opaque=True)
    timer.wrap(model, "_calc_ctc_loss", "CTC (projection + loss)", opaque=True)
    if model.decoder is not None:
        timer.wrap(model.decoder, "forward", "decoder", opaque=True)
    timer.wrap(model, "_calc_att_loss", "attention loss (label smoothing, accuracy)")


# ------------------------------------------------------------ training set-up
@dataclass
class Trainable:
    model: object
    optimizer: object
    scheduler: object
    grad_clip: float


def load_task():
    import espnet2_smile  # noqa: F401  (offline-safe nltk before ESPnet's tasks)
    from espnet2_smile.tasks.avsr import AVSRTask

    return AVSRTask


def build_trainable(args: argparse.Namespace) -> Trainable:
    """Model, optimiser and scheduler of a parsed training config, as ESPnet builds them."""
    import torch
    from espnet2.tasks.abs_task import scheduler_classes

    task = load_task()
    model = task.build_model(argparse.Namespace(**vars(args)))
    model.train()
    optimizer = task.build_optimizers(args, model)[0]
    scheduler = None
    if getattr(args, "scheduler", None) is not None:
        scheduler = scheduler_classes[args.scheduler](optimizer, **args.scheduler_conf)
    torch.manual_seed(0)
    return Trainable(model, optimizer, scheduler, float(args.grad_clip))


def train_step(t: Trainable, batch: Dict, timer: Optional[RegionTimer] = None) -> float:
    """One step as ESPnet's trainer runs it (accum_grad 1, no AMP); returns seconds."""
    import torch

    region = timer.region if timer is not None else (lambda name, opaque=False: contextlib.nullcontext())
    start = time.perf_counter()
    loss, _, _ = t.model(**batch)
    with region("backward (all parts)"):
        loss.backward()
    with region("optimiser (clip, step, scheduler, zero_grad)"):
        grad_norm = None
        if t.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(t.model.parameters(), max_norm=t.grad_clip)
        if grad_norm is None or torch.isfinite(grad_norm):  # the trainer skips non-finite steps
            t.optimizer.step()
            if t.scheduler is not None:
                t.scheduler.step()
        t.optimizer.zero_grad()
    return time.perf_counter() - start


@dataclass
class DataSetup:
    """Everything the sections need to build ESPnet's training pieces on a data dir."""

    train_dir: Path
    valid_dir: Path
    token_type: str
    token_list: Path
    bpemodel: Optional[Path]
    feats_stats: Optional[Path]
    shape_dir: Path

    def train_args(self, config: Path, output_dir: Path) -> List[str]:
        """avsr.sh stage 11's arguments (``--ngpu 0``)."""
        cmd = ["--use_preprocessor", "true", "--token_type", self.token_type, "--token_list", str(self.token_list)]
        if self.bpemodel is not None:
            cmd += ["--bpemodel", str(self.bpemodel)]
        cmd += ["--cleaner", "none", "--g2p", "none"]
        for mode, data in (("train", self.train_dir), ("valid", self.valid_dir)):
            cmd += [f"--{mode}_data_path_and_name_and_type", f"{data / 'wav.scp'},speech,sound",
                    f"--{mode}_data_path_and_name_and_type", f"{data / 'video.scp'},video,kaldi_ark",
                    f"--{mode}_data_path_and_name_and_type", f"{data / 'text'},text,text"]
        for mode in ("train", "valid"):
            for name in ("speech_shape", f"text_shape.{self.token_type}"):
                cmd += [f"--{mode}_shape_file", str(self.shape_dir / mode / name)]
        for fold in FOLD_LENGTHS:
            cmd += ["--fold_length", str(fold)]
        cmd += ["--resume", "true", "--ngpu", "0", "--output_dir", str(output_dir), "--config", str(config)]
        if self.feats_stats is not None:
            cmd += ["--normalize", "global_mvn", "--normalize_conf", f"stats_file={self.feats_stats}"]
        else:
            cmd += ["--normalize", "utterance_mvn"]
        return cmd

    def parse(self, config: Path, output_dir: Path, extra: Sequence[str] = ()) -> argparse.Namespace:
        return load_task().get_parser().parse_args(self.train_args(config, output_dir) + list(extra))


def check_data_dir(path: Path) -> None:
    for name in ("wav.scp", "video.scp", "text"):
        if not (path / name).is_file():
            raise FileNotFoundError(f"data dir {path}: {name} does not exist (need wav.scp, video.scp, text)")


def char_token_list(text_files: Sequence[Path], out: Path) -> Path:
    """A character token list of the transcripts (ESPnet's char tokenizer, <space>)."""
    from espnet2_smile.utils.datadir import read_scp

    chars = set()
    for path in text_files:
        for line in read_scp(path).values():
            chars.update("<space>" if c == " " else c for c in " ".join(line.split()))
    tokens = ["<blank>", "<unk>"] + sorted(chars) + ["<sos/eos>"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return out


def write_shape_files(setup: DataSetup, config: Path) -> None:
    """speech_shape (samples) and text_shape.<token_type> (tokens,vocabulary) of both
    data dirs, as stage 10 (collect_stats) writes them, for the batch sampler."""
    from espnet2.fileio.sound_scp import SoundScpReader

    from espnet2_smile.utils.datadir import read_scp

    args = setup.parse(config, setup.shape_dir / "unused")
    preprocess = load_task().build_preprocess_fn(args, train=False)
    vocab = len(Path(args.token_list).read_text(encoding="utf-8").splitlines())
    for mode, data in (("train", setup.train_dir), ("valid", setup.valid_dir)):
        texts = read_scp(data / "text")
        keys = list(read_scp(data / "wav.scp"))
        n_samples = read_scp(data / "utt2num_samples") if (data / "utt2num_samples").is_file() else {}
        if not all(k in n_samples for k in keys):
            reader = SoundScpReader(str(data / "wav.scp"))
            n_samples = {k: str(reader[k][1].shape[0]) for k in keys}
        out = setup.shape_dir / mode
        out.mkdir(parents=True, exist_ok=True)
        speech, text = [], []
        for key in keys:
            if key not in texts:
                raise ValueError(f"{data / 'text'}: no transcript for utterance {key}")
            sent = texts[key]
            if preprocess.text_cleaner is not None:
                sent = preprocess.text_cleaner(sent)
            n_tokens = len(preprocess.tokenizer.text2tokens(sent))
            speech.append(f"{key} {int(n_samples[key])}\n")
            text.append(f"{key} {n_tokens},{vocab}\n")
        (out / "speech_shape").write_text("".join(speech), encoding="utf-8")
        (out / f"text_shape.{setup.token_type}").write_text("".join(text), encoding="utf-8")


def build_train_iter_factory(setup: DataSetup, config: Path, work: Path, extra: Sequence[str] = ()):
    from espnet2.train.distributed_utils import DistributedOption

    args = setup.parse(config, work / "unused", extra)
    factory = load_task().build_iter_factory(args, DistributedOption(distributed=False), mode="train")
    return args, factory


def real_batches(setup: DataSetup, config: Path, work: Path, n: int) -> List[Dict]:
    """``n`` batches of the training iterator, evenly spaced over its length-sorted
    batches (shortest to longest), read and collated as the trainer's loader does."""
    import numpy as np

    from espnet2_smile.utils.datadir import read_scp

    args, factory = build_train_iter_factory(setup, config, work)
    samples = {k: int(v) for k, v in read_scp(setup.shape_dir / "train" / "speech_shape").items()}
    batches = sorted(factory.sampler, key=lambda b: max(samples[k] for k in b))
    picks = sorted(set(np.linspace(0, len(batches) - 1, min(n, len(batches))).round().astype(int)))
    out = []
    for i in picks:
        keys, batch = factory.collate_fn([factory.dataset[k] for k in batches[i]])
        batch["utt_id"] = keys
        out.append(batch)
    return out


# ------------------------------------------------------------------- sections
def section_prep(opts, work: Path, cwd: Path) -> Tuple[SectionResult, List[Path]]:
    """Stage 1 on each corpus: real-time factor per job and peak memory."""
    from espnet2_smile.utils.datadir import read_scp

    res = SectionResult()
    measured = []
    out_dirs = []
    for label, corpus in opts.corpora:
        ensure_corpus(label, corpus, opts.prep_nj, work)
        out = work / "prep" / label
        if out.exists():
            shutil.rmtree(out)  # the preparation is restartable: start from nothing
        cmd = [sys.executable, "-m", "espnet2_smile.bin.prepare_lrs3", "--root", str(corpus), "--out", str(out),
               "--valid_ids", str(corpus / "lrs3-valid.id"), "--train_subset", opts.prep_train_subset,
               "--roi_method", "fixed", "--nj", str(opts.prep_nj), "--sets", *opts.prep_sets]
        print(f"[prep] {label}: {corpus}", file=sys.stderr)
        run = run_measured(cmd, cwd, work / "logs" / f"prep_{label}.log")
        samples = utts = 0
        for name in opts.prep_sets:
            lengths = read_scp(out / name / "utt2num_samples")
            samples += sum(int(v) for v in lengths.values())
            utts += len(lengths)
        if samples == 0:
            raise RuntimeError(f"stage 1 on {corpus} wrote no utterances (see {work / 'logs' / f'prep_{label}.log'})")
        audio_s = samples / AUDIO_SR
        measured.append((label, corpus, utts, audio_s, run))
        out_dirs.append(out)
        rtf = audio_s / run.wall_s / opts.prep_nj
        res.rows.append(Row("3 data preparation", f"{label}: audio s per wall s per job (nj {opts.prep_nj})",
                            f"{rtf:.2f}x", f">= {PREP_RTF_TARGET:.0f}x", status(rtf >= PREP_RTF_TARGET)))
        res.rows.append(Row("3 data preparation", f"{label}: peak memory of the process tree",
                            f"{fmt_bytes(run.peak_rss)} RSS, {fmt_bytes(run.peak_tree_pss)} PSS"))
    if len(measured) >= 2:
        by_audio = sorted(measured, key=lambda m: m[3])  # stable: the first given of equal ones first
        small, large = by_audio[0], by_audio[-1]
        growth = large[4].peak_rss / max(small[4].peak_rss, 1)
        res.rows.append(Row(
            "3 data preparation",
            f"peak RSS {large[0]} / {small[0]} ({large[3] / small[3]:.1f}x the audio)",
            f"{growth:.2f}x", f"<= {PREP_GROWTH_LIMIT}x (no growth)", status(growth <= PREP_GROWTH_LIMIT)))
    res.details += [
        "## 3. Data preparation (stage 1)", "",
        f"`python -m espnet2_smile.bin.prepare_lrs3 --train_subset {opts.prep_train_subset} --roi_method fixed "
        f"--nj {opts.prep_nj} --sets {' '.join(opts.prep_sets)}` on each corpus, into an empty folder "
        "(corpus generation not included). Audio: the samples of the utterances written "
        "(utt2num_samples). CPU time: user + system time of the whole process tree.", "",
    ]
    res.details += md_table(
        ["corpus", "utterances", "audio (s)", "wall (s)", "audio s / wall s / job", "audio s / CPU s",
         "peak tree RSS", "peak tree PSS", "largest process max RSS", "processes"],
        [[f"{label} (`{corpus}`)", utts, f"{audio_s:.0f}", f"{run.wall_s:.1f}",
          f"{audio_s / run.wall_s / opts.prep_nj:.1f}x", f"{audio_s / max(run.cpu_s, 1e-9):.1f}x",
          fmt_bytes(run.peak_rss), fmt_bytes(run.peak_tree_pss), fmt_bytes(run.max_process_rss),
          run.peak_processes]
         for label, corpus, utts, audio_s, run in measured],
        "lrrrrrrrrr",
    ) + [""]
    return res, out_dirs


def ensure_corpus(label: str, corpus: Path, nj: int, work: Path) -> None:
    manifest = corpus / "corpus.json"
    if manifest.is_file() and json.loads(manifest.read_text(encoding="utf-8")).get("complete"):
        return
    if label not in CORPUS_SIZES:
        raise FileNotFoundError(
            f"corpus {label}={corpus} is missing or incomplete (no complete corpus.json); "
            f"give an existing corpus, or a built-in size {CORPUS_SIZES} to generate"
        )
    print(f"[prep] generating the built-in corpus ({label}) in {corpus}", file=sys.stderr)
    cmd = [sys.executable, "-m", "espnet2_smile.bin.make_corpus", "--out", str(corpus), "--size", label,
           "--seed", "1", "--nj", str(nj), "--no_progress"]
    run_measured(cmd, Path.cwd(), work / "logs" / f"make_corpus_{label}.log")


def section_step(opts, setup: Optional[DataSetup], work: Path, state: Dict) -> SectionResult:
    import torch

    res = SectionResult()
    if setup is not None:
        batches = real_batches(setup, opts.config, work, opts.num_batches)
        source = (f"{len(batches)} batch(es) of the training iterator of `{opts.config.name}` on "
                  f"`{setup.train_dir}` (batch_type/batch_size of the config, fold lengths "
                  f"{FOLD_LENGTHS}), evenly spaced from the shortest to the longest batch")
    else:
        from espnet2_smile.bin.benchmark_variants import make_batch

        batches = [make_batch(opts.synthetic_batch_size, opts.synthetic_frames, 96, 20, opts.vocab_size)]
        source = (f"one synthetic batch: {opts.synthetic_batch_size} utterances of up to "
                  f"{opts.synthetic_frames} frames, 96x96 ROIs, 20 tokens")
    sizes = [int(b["speech"].shape[0]) for b in batches]
    seconds = [float(b["speech_lengths"].sum()) / AUDIO_SR for b in batches]

    trainables: Dict[str, Trainable] = {}
    for name in opts.variants:
        config = opts.config_dir / f"train_{name}.yaml"
        if setup is not None:
            args = setup.parse(config, work / "unused")
        else:
            args = synthetic_args(config, opts.vocab_size)
        torch.manual_seed(0)
        trainables[name] = build_trainable(args)
    # warm-up, then rounds: every batch, every variant, interleaved
    for name, t in trainables.items():
        for _ in range(opts.warmup):
            torch.manual_seed(0)
            train_step(t, batches[0])
    times: Dict[str, List[List[float]]] = {n: [[] for _ in batches] for n in trainables}
    for r in range(opts.repeats):
        for b, batch in enumerate(batches):
            for name, t in trainables.items():
                torch.manual_seed(1000 * r + b)
                times[name][b].append(train_step(t, batch))
        print(f"[step] repeat {r + 1}/{opts.repeats} done", file=sys.stderr)
    # per variant: mean over the batches of the median over the repeats
    per_batch = {n: [statistics.median(ts) for ts in times[n]] for n in trainables}
    ms = {n: 1000 * statistics.fmean(v) for n, v in per_batch.items()}
    base = ms.get("baseline")

    # where the time goes: one instrumented pass over the batches
    breakdown: Dict[str, Dict[str, float]] = {}
    for name in BREAKDOWN_VARIANTS:
        if name not in trainables:
            continue
        timer = RegionTimer()
        instrument(trainables[name].model, timer)
        total = 0.0
        for b, batch in enumerate(batches):
            torch.manual_seed(b)
            total += train_step(trainables[name], batch, timer)
        timer.unwrap()
        breakdown[name] = {k: 1000 * v / len(batches) for k, v in timer.seconds.items()}
        breakdown[name]["step"] = 1000 * total / len(batches)

    if "smile" in trainables:
        rate = sum(sizes) / sum(per_batch["smile"])
        state["train_utts_per_s"] = (rate, "smile", opts.config_dir / "train_smile.yaml")
    for name in trainables:
        if name == "baseline":
            res.rows.append(Row("1 training step", "baseline ms/step", f"{ms[name]:.0f} ms", "reference"))
            continue
        ratio = ms[name] / base if base else None
        target = STEP_TARGETS.get(name)
        res.rows.append(Row(
            "1 training step", f"{name} / baseline",
            f"{ratio:.2f}x ({ms[name]:.0f} ms)" if ratio else f"{ms[name]:.0f} ms",
            f"<= {target}x" if target else "-",
            status(ratio <= target) if (target and ratio) else "-",
        ))
    if "smile" in breakdown:
        groups: Dict[str, float] = defaultdict(float)
        for region, value in breakdown["smile"].items():
            if region != "step":
                groups[REGIONS[region]] += value
        step = breakdown["smile"]["step"]
        order = dict.fromkeys(REGIONS.values())  # the groups in the order of a step
        res.rows.append(Row("1 training step", "smile: share of a step",
                            ", ".join(f"{g} {100 * groups[g] / step:.0f}%" for g in order if g in groups)))

    n_params = {n: sum(p.numel() for p in t.model.parameters() if p.requires_grad) for n, t in trainables.items()}
    res.details += ["## 1. Training step", "",
                    f"Batches: {source}; {sum(sizes)} utterances, {sum(seconds):.1f} s of audio in all "
                    f"(batch sizes {sizes}). Step: forward, backward, gradient clipping, optimiser and "
                    f"scheduler step of the variant's config. Per variant: the median of {opts.repeats} "
                    f"repeat(s) per batch, averaged over the batches, after {opts.warmup} warm-up step(s); "
                    "variants interleaved batch by batch.", ""]
    res.details += md_table(
        ["variant", "trainable parameters", "ms / step", "vs baseline", "utterances / s", "target"],
        [[n, f"{n_params[n]:,}", f"{ms[n]:.0f}", f"{ms[n] / base:.2f}x" if base else "-",
          f"{sum(sizes) / sum(per_batch[n]):.1f}", f"<= {STEP_TARGETS[n]}x" if n in STEP_TARGETS else "-"]
         for n in trainables],
        "lrrrrl",
    ) + [""]
    if breakdown:
        names = list(breakdown)
        res.details += ["Where the time of a step goes (ms per step, one instrumented pass over the same "
                        "batches; wall-clock timers around the methods of each part, exclusive of the "
                        "parts inside them; backward is one call for all parts):", ""]
        rows = []
        for region, group in REGIONS.items():
            if not any(region in breakdown[n] for n in names):
                continue
            cells = [f"{breakdown[n][region]:.1f}" if region in breakdown[n] else "-" for n in names]
            share = breakdown[names[-1]].get(region)
            last_step = breakdown[names[-1]]["step"]
            rows.append([region, group] + cells + [f"{100 * share / last_step:.0f}%" if share else "-"])
        rows.append(["**step (instrumented)**", ""] + [f"{breakdown[n]['step']:.1f}" for n in names] + ["100%"])
        res.details += md_table(["region", "group"] + names + [f"share ({names[-1]})"], rows,
                                "ll" + "r" * (len(names) + 1)) + [""]
    return res


def synthetic_args(config: Path, vocab_size: int) -> argparse.Namespace:
    """A parsed config with a synthetic token list and per-utterance normalisation."""
    args = load_task().get_parser().parse_args(["--config", str(config), "--token_list", "unused"])
    args.normalize, args.normalize_conf = "utterance_mvn", {}
    args.token_list = ["<blank>", "<unk>"] + [f"t{i}" for i in range(vocab_size - 3)] + ["<sos/eos>"]
    return args


def section_loader(opts, setup: DataSetup, work: Path, state: Dict) -> SectionResult:
    import torch

    res = SectionResult()
    args, factory = build_train_iter_factory(setup, opts.config, work)
    n_batches = len(list(factory.sampler))
    limit = opts.loader_batches or n_batches
    kept: List[Dict] = []
    utts = batches = 0
    first = None
    start = time.perf_counter()
    for keys, batch in factory.build_iter(1):
        if first is None:
            first = time.perf_counter() - start
        utts += len(keys)
        batches += 1
        if len(kept) < opts.loader_train_steps + 1:
            batch["utt_id"] = keys
            kept.append(batch)
        if batches >= limit:
            break
    wall = time.perf_counter() - start
    loader_rate = utts / wall

    previous = state.get("train_utts_per_s")
    if previous is not None and previous[2].resolve() == opts.config.resolve():
        train_rate, how = previous[0], f"the step section's `{previous[1]}` steps"
    else:
        t = build_trainable(args)
        torch.manual_seed(0)
        train_step(t, kept[0])  # warm-up
        timed = kept[1:] or kept
        seconds = sum(train_step(t, b) for b in timed)
        train_rate = sum(int(b["speech"].shape[0]) for b in timed) / seconds
        how = f"{len(timed)} training step(s) on the loader's first batches, after one warm-up step"
    ratio = loader_rate / train_rate
    res.rows.append(Row("2 data loading", f"loader utterances/s (num_workers {args.num_workers})",
                        f"{loader_rate:.1f}"))
    res.rows.append(Row("2 data loading", f"training utterances/s ({opts.config.name})", f"{train_rate:.1f}"))
    res.rows.append(Row("2 data loading", "loader / training", f"{ratio:.2f}x", f">= {LOADER_TARGET:.0f}x",
                        status(ratio >= LOADER_TARGET)))
    res.details += [
        "## 2. Data loading", "",
        f"ESPnet's training iterator (`AVSRTask.build_iter_factory`, mode train) of `{opts.config.name}`: "
        f"batch_type {args.batch_type}, batch_size {args.batch_size}, num_workers {args.num_workers}, "
        f"preprocessor `{args.preprocessor}`, on `{setup.train_dir}`; {batches} of {n_batches} batches, "
        f"{utts} utterances in {wall:.2f} s (first batch after {first:.2f} s, worker start included): "
        f"**{loader_rate:.1f} utterances/s**. Training: {train_rate:.1f} utterances/s ({how}). "
        f"Ratio {ratio:.2f}x (target >= {LOADER_TARGET:.0f}x).", "",
    ]
    return res


def section_memory(opts, setup: DataSetup, work: Path) -> SectionResult:
    res = SectionResult()
    exp = work / "memory_exp"
    if exp.exists():
        shutil.rmtree(exp)  # a fresh run, never a resume
    extra = ["--max_epoch", "1"]
    if opts.memory_iters:
        extra += ["--num_iters_per_epoch", str(opts.memory_iters)]
    cmd = [sys.executable, "-m", "espnet2_smile.bin.avsr_train"] + setup.train_args(opts.config, exp) + extra
    env = dict(os.environ, OMP_NUM_THREADS=str(opts.threads))
    print(f"[memory] training one epoch of {opts.config.name}", file=sys.stderr)
    run = run_measured(cmd, opts.recipe_dir, work / "logs" / "train_memory.log", env)
    ok = run.peak_rss <= TRAIN_MEMORY_TARGET_GIB * GIB
    res.rows.append(Row("4 training memory", f"peak RSS of a {opts.config.name} epoch (process tree)",
                        f"{run.peak_rss / GIB:.2f} GiB", f"<= {TRAIN_MEMORY_TARGET_GIB:.0f} GiB", status(ok)))
    iters = f"{opts.memory_iters} iteration(s)" if opts.memory_iters else "the whole epoch"
    res.details += [
        "## 4. Training memory", "",
        f"`python -m espnet2_smile.bin.avsr_train` with avsr.sh stage 11's arguments, `--config {opts.config}`, "
        f"`--ngpu 0 --max_epoch 1{' --num_iters_per_epoch ' + str(opts.memory_iters) if opts.memory_iters else ''}` "
        f"({iters}, then validation on `{setup.valid_dir}`), OMP_NUM_THREADS={opts.threads}, "
        f"normalisation {'global_mvn' if setup.feats_stats else 'utterance_mvn'}.", "",
    ]
    res.details += md_table(
        ["wall (s)", "CPU (s)", "peak tree RSS", "peak tree PSS", "largest process max RSS", "processes", "target"],
        [[f"{run.wall_s:.1f}", f"{run.cpu_s:.1f}", fmt_bytes(run.peak_rss), fmt_bytes(run.peak_tree_pss),
          fmt_bytes(run.max_process_rss), run.peak_processes, f"<= {TRAIN_MEMORY_TARGET_GIB:.0f} GiB RSS"]],
        "rrrrrrl",
    ) + [""]
    return res


def section_decoding(path: Path) -> SectionResult:
    res = SectionResult()
    report = json.loads(path.read_text(encoding="utf-8"))
    try:
        speedup = float(report["speedup"])
        wer_diff = abs(float(report["batched"]["wer"]) - float(report["stock"]["wer"]))
        n = report["num_utts"]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a benchmark_decoding report ({e})") from None
    ok = speedup >= DECODING_TARGET and wer_diff <= DECODING_WER_TOLERANCE
    res.rows.append(Row("5 test-set decoding", f"stock / batched wall time ({n} utterances)",
                        f"{speedup:.2f}x, WER diff {wer_diff:.2f}",
                        f">= {DECODING_TARGET:.0f}x, WER diff <= {DECODING_WER_TOLERANCE}", status(ok)))
    res.details += [
        "## 5. Test-set decoding", "",
        f"From `{path}` (`{report.get('command', 'benchmark_decoding')}`, {report.get('date', '?')}, not rerun here): "
        f"stock {report['stock']['wall_s']:.2f} s, WER {report['stock']['wer']:.2f}%; batched "
        f"(batch size {report.get('batch_size')}) {report['batched']['wall_s']:.2f} s, WER "
        f"{report['batched']['wer']:.2f}%; identical hypotheses {report.get('identical_hyps')}/{n}.", "",
    ]
    return res


# ----------------------------------------------------------------------- main
def machine_line() -> str:
    cpu = cpu_name()
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f", {kib * 1024 / GIB:.0f} GiB RAM"
    except (OSError, IndexError, ValueError):
        pass
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    return f"{cpu}, {os.cpu_count()} CPUs{mem}, {system}"


def code_version() -> str:
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        return f"git {rev}{' with local changes' if dirty else ''}"
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = parser.add_argument
    a("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    a("--out", default="docs/BENCHMARKS.md", help="markdown report (empty: none)")
    a("--recipe_dir", type=Path, default=RECIPE_DIR,
      help="recipe folder: relative paths inside scp files and the default token list, stats and corpora are there")
    a("--dump_dir", type=Path, default=None,
      help="training data dir (wav.scp, video.scp, text) of step/loader/memory, e.g. <recipe>/dump/raw/train; "
           "default: the first set the prep section writes, when it runs; without any, step uses a synthetic batch")
    a("--valid_dump_dir", type=Path, default=None,
      help="validation data dir of the memory section (default: <dump_dir>/../dev when present, else --dump_dir)")
    a("--config_dir", type=Path, default=None,
      help="variant configs train_<variant>.yaml (default: <recipe>/conf/tuning)")
    a("--config", type=Path, default=None, help="config of loader and memory (default: <config_dir>/train_smile.yaml)")
    a("--token_type", default="bpe", choices=["bpe", "char"])
    a("--token_list", type=Path, default=None,
      help="default: bpe: <recipe>/data/token_list/bpe_unigram100/tokens.txt; char: built from the transcripts")
    a("--bpemodel", type=Path, default=None, help="default: bpe.model next to the token list")
    a("--feats_stats", type=Path, default=None,
      help="global_mvn statistics (default: <recipe>/exp/asr_stats_raw_bpe100/train/feats_stats.npz when present, "
           "else utterance_mvn)")
    a("--threads", type=int, default=None, help="torch threads (default: torch's, i.e. OMP_NUM_THREADS)")
    a("--work_dir", type=Path, default=None, help="scratch folder (default: a temporary one, removed at the end)")
    # step
    a("--variants", nargs="+", default=None,
      help="step: variants to time (default: every train_<variant>.yaml of --config_dir, baseline first)")
    a("--num_batches", type=int, default=8, help="step: batches of the data dir (default: %(default)s)")
    a("--repeats", type=int, default=2, help="step: timed steps per variant and batch (default: %(default)s)")
    a("--warmup", type=int, default=1, help="step: untimed steps per variant first (default: %(default)s)")
    a("--synthetic_batch_size", type=int, default=8,
      help="step without a data dir: utterances per batch (default: %(default)s)")
    a("--synthetic_frames", type=int, default=75,
      help="step without a data dir: frames of the longest utterance (default: %(default)s)")
    a("--vocab_size", type=int, default=100, help="step without a data dir: vocabulary size (default: %(default)s)")
    # loader
    a("--loader_batches", type=int, default=0, help="loader: batches to read (0: one whole epoch)")
    a("--loader_train_steps", type=int, default=3,
      help="loader: training steps timed on the loader's batches when the step section did not run "
           "(default: %(default)s)")
    # prep
    a("--corpus_dirs", nargs="+", default=["tiny", "default"],
      help="prep: corpora as LABEL=DIR or SIZE (tiny|small|default: <recipe>/downloads/builtin_<size>_seed1); "
           "a missing corpus whose label is a size is generated first")
    a("--prep_nj", type=int, default=2, help="prep: parallel jobs (local/data.sh's --nj) (default: %(default)s)")
    a("--prep_train_subset", default="full", choices=["trainval", "full"],
      help="prep: local/data.sh's --train_subset (default: %(default)s, as make demo)")
    a("--prep_sets", nargs="+", default=["train", "dev", "test"], help="prep: sets to write (default: all)")
    # memory
    a("--memory_iters", type=int, default=0, help="memory: --num_iters_per_epoch of the epoch (0: the whole epoch)")
    # decoding
    a("--decoding_json", type=Path, default=None, help="benchmark.json written by espnet2_smile.bin.benchmark_decoding")
    return parser


def parse_corpora(entries: Sequence[str], recipe_dir: Path) -> List[Tuple[str, Path]]:
    out = []
    for entry in entries:
        label, sep, path = entry.partition("=")
        if not label:
            raise ValueError(f"--corpus_dirs {entry!r}: expected LABEL=DIR or a size {CORPUS_SIZES}")
        if not sep:
            if label not in CORPUS_SIZES:
                raise ValueError(f"--corpus_dirs {entry!r}: a bare entry must be a size {CORPUS_SIZES}")
            path = str(recipe_dir / "downloads" / f"builtin_{label}_seed1")
        out.append((label, Path(path).resolve()))
    if len({label for label, _ in out}) != len(out):
        raise ValueError(f"--corpus_dirs {list(entries)}: labels must differ")
    return out


def check_options(opts) -> List[str]:
    sections = [s.strip() for s in opts.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown or not sections:
        raise ValueError(f"--sections must be a comma-separated subset of {SECTIONS}, got {opts.sections!r}")
    for name in ("num_batches", "repeats", "prep_nj", "synthetic_batch_size", "synthetic_frames"):
        if getattr(opts, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(opts, name)}")
    for name in ("warmup", "loader_batches", "loader_train_steps", "memory_iters"):
        if getattr(opts, name) < 0:
            raise ValueError(f"--{name} must be >= 0, got {getattr(opts, name)}")
    if opts.vocab_size < 4:
        raise ValueError(f"--vocab_size must be >= 4, got {opts.vocab_size}")
    if opts.dump_dir is None and "prep" not in sections and {"loader", "memory"} & set(sections):
        raise ValueError("sections loader and memory need a data dir: give --dump_dir (or run the prep section)")
    return [s for s in SECTIONS if s in sections]


def check_variants(variants: Optional[Sequence[str]], config_dir: Path) -> List[str]:
    """The variants to time: the given ones or every ``train_<variant>.yaml``; baseline first."""
    found = sorted(p.name[len("train_") : -len(".yaml")] for p in config_dir.glob("train_*.yaml"))
    if variants is None:
        variants = found
    missing = [v for v in variants if v not in found]
    if missing:
        raise FileNotFoundError(f"--variants {missing}: no train_<variant>.yaml in {config_dir} (found {found})")
    if "baseline" not in variants:
        raise ValueError("--variants must include baseline (the reference of the ratios)")
    return ["baseline"] + [v for v in dict.fromkeys(variants) if v != "baseline"]


def resolve_data(opts, data_dir: Path, work: Path) -> DataSetup:
    """Token list, statistics and shape files for ``data_dir``."""
    rd = opts.recipe_dir
    check_data_dir(data_dir)
    valid = opts.valid_dump_dir
    if valid is None:
        valid = data_dir.parent / "dev" if (data_dir.parent / "dev" / "wav.scp").is_file() else data_dir
    check_data_dir(valid)
    if opts.token_type == "char":
        token_list = opts.token_list or char_token_list([data_dir / "text", valid / "text"], work / "tokens_char.txt")
        bpemodel = None
    else:
        token_list = opts.token_list or rd / "data" / "token_list" / "bpe_unigram100" / "tokens.txt"
        bpemodel = opts.bpemodel or token_list.parent / "bpe.model"
        for path, flag in ((token_list, "--token_list"), (bpemodel, "--bpemodel")):
            if not path.is_file():
                raise FileNotFoundError(f"{path} does not exist: give {flag} (or --token_type char)")
    feats_stats = opts.feats_stats
    if feats_stats is None:
        default = rd / "exp" / "asr_stats_raw_bpe100" / "train" / "feats_stats.npz"
        feats_stats = default if default.is_file() else None
    elif not feats_stats.is_file():
        raise FileNotFoundError(f"--feats_stats {feats_stats} does not exist")
    setup = DataSetup(data_dir, valid, opts.token_type, token_list.resolve(),
                      bpemodel.resolve() if bpemodel else None,
                      feats_stats.resolve() if feats_stats else None, work / "shapes")
    write_shape_files(setup, opts.config)
    return setup


def main(cmd: Optional[List[str]] = None) -> Dict:
    argv = list(cmd) if cmd is not None else sys.argv[1:]
    opts = get_parser().parse_args(argv)
    sections = check_options(opts)
    # every path absolute: the sections run in the recipe folder (relative scp entries)
    opts.recipe_dir = opts.recipe_dir.resolve()
    opts.config_dir = (opts.config_dir or opts.recipe_dir / "conf" / "tuning").resolve()
    opts.config = (opts.config or opts.config_dir / "train_smile.yaml").resolve()
    for name in ("dump_dir", "valid_dump_dir", "token_list", "bpemodel", "feats_stats", "decoding_json", "work_dir"):
        if getattr(opts, name) is not None:
            setattr(opts, name, getattr(opts, name).resolve())
    out = Path(opts.out).resolve() if opts.out else None
    if {"step", "loader", "memory"} & set(sections) and not opts.config.is_file():
        raise FileNotFoundError(f"--config {opts.config} does not exist")
    if opts.decoding_json is not None and not opts.decoding_json.is_file():
        raise FileNotFoundError(f"--decoding_json {opts.decoding_json} does not exist")
    opts.corpora = parse_corpora(opts.corpus_dirs, opts.recipe_dir) if "prep" in sections else []
    if "step" in sections:
        opts.variants = check_variants(opts.variants, opts.config_dir)

    import torch

    if opts.threads is not None:
        if opts.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {opts.threads}")
        torch.set_num_threads(opts.threads)
    opts.threads = torch.get_num_threads()
    work = opts.work_dir or Path(tempfile.mkdtemp(prefix="smile_benchmark_"))
    work.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc)
    results: Dict[str, SectionResult] = {}
    state: Dict = {}
    old_cwd = Path.cwd()
    try:
        os.chdir(opts.recipe_dir)
        data_dir = opts.dump_dir
        if "prep" in sections:
            results["prep"], prep_dirs = section_prep(opts, work, opts.recipe_dir)
            if data_dir is None:
                data_dir = prep_dirs[0] / opts.prep_sets[0]
        setup = None
        if data_dir is not None and {"step", "loader", "memory"} & set(sections):
            setup = resolve_data(opts, data_dir, work)
        if "step" in sections:
            results["step"] = section_step(opts, setup, work, state)
        if "loader" in sections:
            results["loader"] = section_loader(opts, setup, work, state)
        if "memory" in sections:
            results["memory"] = section_memory(opts, setup, work)
        if opts.decoding_json is not None:
            results["decoding"] = section_decoding(opts.decoding_json)
    finally:
        os.chdir(old_cwd)
        if opts.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)

    order = ["step", "loader", "prep", "memory", "decoding"]  # numbered as the targets
    rows = [row for key in order if key in results for row in results[key].rows]
    elapsed = (datetime.now(timezone.utc) - started).total_seconds()
    lines = [
        "# Benchmarks", "",
        "Speed and memory of the recipe against its targets (CPU demo configs), measured in one run by "
        "`espnet2_smile.bin.benchmark` (see its `--help` for the method); ratios compare figures of the same run.", "",
        f"- Command: `python -m espnet2_smile.bin.benchmark {' '.join(argv)}`",
        f"- Machine: {machine_line()}",
        f"- Threads: torch {opts.threads} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); "
        f"stage-1 jobs {opts.prep_nj}; data-loader workers as the config",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC ({elapsed / 60:.1f} min); torch {torch.__version__}; "
        f"code {code_version()}",
        f"- Data: {data_dir if setup is not None else 'synthetic batch' if 'step' in results else '-'}", "",
        "## Summary", "",
    ]
    lines += md_table(["section", "figure", "value", "target", "status"],
                      [[r.section, r.figure, r.value, r.target, r.status] for r in rows]) + [""]
    if "decoding" not in results:
        lines += ["Test-set decoding (target 5) is measured by `python -m espnet2_smile.bin.benchmark_decoding`; "
                  "pass its `benchmark.json` with `--decoding_json` to add it here.", ""]
    for key in order:
        if key in results:
            lines += results[key].details
    text = "\n".join(lines).rstrip() + "\n"
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return {"rows": rows, "text": text, "sections": sections}


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"benchmark: error: {e}", file=sys.stderr)
        sys.exit(1)
