"""Shared fixtures: a tiny audio-visual data directory in ESPnet's format.

Tests marked ``long`` (minutes each: recipe runs that are killed and rerun) are
skipped unless ``SMILE_LONG_TESTS=1`` (``make test-long``); tests marked ``slurm`` (a
Slurm cluster on this machine, started by the tests) unless ``SMILE_SLURM_TESTS=1`` (``make test-slurm``).
"""

import os
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest

from espnet2_smile.constants import AUDIO_SR, SAMPLES_PER_FRAME


LONG_TESTS_ENV = "SMILE_LONG_TESTS"
SLURM_TESTS_ENV = "SMILE_SLURM_TESTS"
# marker -> (environment variable that enables it, make target)
OPT_IN_MARKERS = {"long": (LONG_TESTS_ENV, "make test-long"), "slurm": (SLURM_TESTS_ENV, "make test-slurm")}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"long: minutes-long recipe runs; skipped unless {LONG_TESTS_ENV}=1 (make test-long)"
    )
    config.addinivalue_line(
        "markers",
        f"slurm: needs slurm-wlm and munge, starts a local Slurm cluster; skipped unless {SLURM_TESTS_ENV}=1 "
        "(make test-slurm)",
    )


def pytest_collection_modifyitems(config, items):
    for marker, (env, target) in OPT_IN_MARKERS.items():
        if os.environ.get(env) == "1":
            continue
        skip = pytest.mark.skip(reason=f"{marker} test: set {env}=1 or run {target}")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


def run_module(module: str, args: List[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``python -m module args``; fail the test with its output tail on error."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.fail(f"{module} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="session")
def tiny_av_data(tmp_path_factory) -> Path:
    """train/ and test/ data dirs: wav.scp (16 kHz wav), video.scp (uint8 48x48 ROIs in
    a kaldi ark), text; plus a char token list. The video carries a per-word pattern
    so the data is learnable, but the point is the file formats."""
    import kaldiio
    import soundfile

    root = tmp_path_factory.mktemp("tiny_av")
    rng = np.random.default_rng(0)
    words = ["AB", "BA", "CAB", "BAD", "DAB"]
    chars = sorted(set("".join(words)))
    for split, n_utt in (("train", 8), ("test", 3)):
        d = root / split
        (d / "wav").mkdir(parents=True)
        texts = {}
        with kaldiio.WriteHelper(
            f"ark,scp:{d / 'video.ark'},{d / 'video.scp'}", write_function="numpy"
        ) as video_writer:
            for i in range(n_utt):
                uid = f"spk{i % 2}_{split}{i:05d}"
                sent = [words[j] for j in rng.integers(0, len(words), size=3)]
                frames = 10 * len(sent)
                t = np.arange(frames * SAMPLES_PER_FRAME) / AUDIO_SR
                pitch = np.repeat([200.0 + 60 * words.index(w) for w in sent], 10 * SAMPLES_PER_FRAME)
                wav = 0.3 * np.sin(2 * np.pi * pitch * t) + 0.01 * rng.standard_normal(t.size)
                soundfile.write(d / "wav" / f"{uid}.wav", wav.astype(np.float32), AUDIO_SR, subtype="PCM_16")
                video = rng.integers(0, 40, size=(frames, 48, 48)).astype(np.uint8)
                for k, w in enumerate(sent):
                    video[10 * k : 10 * (k + 1), 20:28, 10 : 10 + 8 * (words.index(w) + 1)] = 220
                video_writer[uid] = video
                texts[uid] = " ".join(sent)
        keys = sorted(texts)
        (d / "wav.scp").write_text("".join(f"{k} {d / 'wav' / k}.wav\n" for k in keys))
        (d / "text").write_text("".join(f"{k} {texts[k]}\n" for k in keys))
        (d / "utt2spk").write_text("".join(f"{k} {k.split('_')[0]}\n" for k in keys))
        # video.scp in the same (sorted) order as wav.scp, as IterableESPnetDataset needs
        scp = dict(line.split(maxsplit=1) for line in (d / "video.scp").read_text().splitlines())
        (d / "video.scp").write_text("".join(f"{k} {scp[k]}\n" for k in keys))
    tokens = ["<blank>", "<unk>", "<space>"] + chars + ["<sos/eos>"]
    (root / "tokens.txt").write_text("\n".join(tokens) + "\n")
    return root


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """The built-in corpus at size ``tiny`` (LRS3 layout), generated once per session."""
    from espnet2_smile.corpus.generate import generate_corpus

    out = tmp_path_factory.mktemp("corpus") / "tiny"
    generate_corpus(str(out), size="tiny", seed=1, nj=2, progress=False)
    return out
