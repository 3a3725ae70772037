"""kill -9 during recipe stages 1, 11 and 12 of the tiny built-in corpus, then the rerun.

The recipe runs in its own process group, which is killed as a whole (SIGKILL), as a
cluster scheduler or a lost node does: no cleanup handler runs. Long (minutes): marked
``long``, run by ``make test-long``.
"""

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict

import pytest
import torch
import yaml

from helpers_model import toy_config
from test_recipe import recipe_copy, recipe_env, run_recipe
from espnet2_smile.utils.checkpoint import load_checkpoint
from espnet2_smile.utils.datadir import read_scp

pytestmark = pytest.mark.long

CORPUS_OPTS = "--corpus_size tiny --corpus_seed 1"
MAX_EPOCH = 3


def run_and_kill(workdir: Path, when: Callable[[], bool], *args: str, timeout: float = 600) -> str:
    """Start ``./run.sh args`` and SIGKILL its whole process group as soon as
    ``when()`` holds. Fails if the run ends first (the kill point was missed)."""
    log = workdir / f"killed_run_{time.monotonic_ns()}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["./run.sh", *args], cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                                env=recipe_env(), start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not when():
            if proc.poll() is not None:
                pytest.fail(f"the run ended (exit {proc.returncode}) before the kill point:\n"
                            f"{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no kill point within {timeout} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.returncode
    return log.read_text()


def tree(root: Path, work: Path) -> Dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), with the work folder's
    absolute path replaced, so that two runs in two folders compare equal."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(root))] = path.read_bytes().replace(str(work).encode(), b"<work>")
    return out


def count_files(folder: Path, pattern: str) -> int:
    return len(list(folder.glob(pattern))) if folder.is_dir() else 0


# ------------------------------------------------------------------------ stage 1
@pytest.fixture(scope="module")
def stage1_reference(tmp_path_factory) -> Path:
    """Stage 1 uninterrupted: corpus generation, then data/{train,dev,test}."""
    work = recipe_copy(tmp_path_factory.mktemp("stage1_ref") / "avsr1")
    run_recipe(work, "--stage", "1", "--stop_stage", "1", "--local_data_opts", CORPUS_OPTS)
    return work


CORPUS = "downloads/builtin_tiny_seed1"
KILL_POINTS = {
    # half of the clips of the corpus are encoded
    "corpus_generation": lambda w: count_files(w / CORPUS / "trainval", "*/*.mp4") >= 14,
    # data/train is being written
    "data_preparation": lambda w: count_files(w / "data" / "train.tmp" / "wav", "*.wav") >= 5,
}


@pytest.mark.parametrize("kill_point", sorted(KILL_POINTS))
def test_stage1_killed_then_rerun_gives_identical_data(stage1_reference, tmp_path, kill_point):
    work = recipe_copy(tmp_path / "avsr1")
    args = ("--stage", "1", "--stop_stage", "1", "--local_data_opts", CORPUS_OPTS)
    run_and_kill(work, lambda: KILL_POINTS[kill_point](work), *args)
    assert not (work / "data" / "train" / ".done").exists()
    run_recipe(work, *args)
    assert not list((work / "data").glob("*.tmp"))
    reference = tree(stage1_reference / "data", stage1_reference)
    rerun = tree(work / "data", work)
    assert sorted(rerun) == sorted(reference)
    different = [name for name in reference if rerun[name] != reference[name]]
    assert different == []


# ------------------------------------------------------------------------ stages 11 and 12
@pytest.fixture(scope="module")
def prepared(tiny_corpus, tmp_path_factory):
    """A recipe copy after stages 1-10 on the tiny corpus, and its common options."""
    root = tmp_path_factory.mktemp("recipe")
    work = recipe_copy(root / "avsr1")
    config = root / "train_tiny.yaml"
    config.write_text(yaml.safe_dump(toy_config("smile", video_frontend_conf={"downsample": 2, "crop_size": 40})))
    common = [
        "--nbpe", "100", "--asr_config", str(config), "--asr_tag", "tiny",
        "--local_data_opts", f"--corpus_dir {tiny_corpus} --corpus_size tiny",
        # every epoch's model is averaged at the end: a missing epoch file would stop it
        "--asr_args", f"--max_epoch {MAX_EPOCH} --keep_nbest_models {MAX_EPOCH} --batch_size 2 "
                      "--use_tensorboard false --use_matplotlib false",
        "--inference_args", "--beam_size 2 --maxlenratio 0.5",
    ]
    run_recipe(work, "--stage", "1", "--stop_stage", "10", *common)
    return work, common


def test_stage11_killed_then_rerun_resumes_and_ends_at_max_epoch(prepared):
    work, common = prepared
    exp = work / "exp" / "asr_tiny"
    log = exp / "train.log"

    def in_epoch_2() -> bool:
        return (exp / "checkpoint.pth").is_file() and log.is_file() and f"2/{MAX_EPOCH}epoch started" in log.read_text()

    run_and_kill(work, in_epoch_2, "--stage", "11", "--stop_stage", "11", *common)
    epoch = load_checkpoint(exp / "checkpoint.pth")["reporter"]["epoch"]
    assert 1 <= epoch < MAX_EPOCH, epoch
    # the worst moment: checkpoint.pth written, <epoch>epoch.pth not yet
    (exp / f"{epoch}epoch.pth").unlink(missing_ok=True)

    run_recipe(work, "--stage", "11", "--stop_stage", "11", *common)
    text = log.read_text()
    assert "The training was resumed using" in text
    assert f"1/{MAX_EPOCH}epoch started" not in text  # finished epochs are not trained again
    assert f"{epoch + 1}/{MAX_EPOCH}epoch started" in text
    assert f"The training was finished at {MAX_EPOCH} epochs" in text
    final = load_checkpoint(exp / "checkpoint.pth")["reporter"]
    assert final["epoch"] == MAX_EPOCH
    assert sorted(final["stats"]) == list(range(1, MAX_EPOCH + 1))  # the killed run's epochs kept
    assert (exp / f"{MAX_EPOCH}epoch.pth").is_file() and (exp / f"{epoch}epoch.pth").is_file()
    averaged = load_checkpoint(exp / "valid.acc.ave.pth")
    assert all(torch.isfinite(v).all() for v in averaged.values() if v.is_floating_point())


def test_stage12_killed_then_rerun_decodes_every_utterance_once(prepared):
    work, common = prepared
    exp = work / "exp" / "asr_tiny"
    if not (exp / "valid.acc.ave.pth").is_file():
        run_recipe(work, "--stage", "11", "--stop_stage", "11", *common)
    keys = list(read_scp(work / "dump" / "raw" / "test" / "wav.scp"))
    run_recipe(work, "--stage", "12", "--stop_stage", "12", "--inference_tag", "reference", *common)

    decode = exp / "killed" / "test"

    def decoding() -> bool:  # the jobs have loaded the model and are decoding
        log = decode / "logdir" / "asr_inference.1.log"
        return log.is_file() and "Decoding device" in log.read_text()

    args = ("--stage", "12", "--stop_stage", "12", "--inference_tag", "killed", *common)
    run_and_kill(work, decoding, *args)
    assert not (decode / "text").exists()
    run_recipe(work, *args)
    for name in ("text", "token", "token_int", "score"):
        lines = (decode / name).read_text().splitlines()
        assert [line.split(" ", 1)[0] for line in lines] == keys, name  # each once, in order
    assert (decode / "text").read_text() == (exp / "reference" / "test" / "text").read_text()
