"""The benchmark script on tiny inputs: report structure, positive figures, targets."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from espnet2_smile.bin import benchmark

CONF = Path(__file__).resolve().parents[1] / "egs2" / "lrs3_smile" / "avsr1" / "conf" / "tuning"
SUMMARY_HEADER = "| section | figure | value | target | status |"
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def summary_rows(text: str):
    """The summary table's rows as lists of cells."""
    lines = text.splitlines()
    start = lines.index(SUMMARY_HEADER) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def first_number(value: str) -> float:
    match = NUMBER.search(value)
    assert match, f"no number in {value!r}"
    return float(match.group())


def check_status(value: str, target: str, state: str) -> None:
    """met / not met agrees with the value and the target."""
    number = first_number(value)
    if "GiB" in value and "GiB" not in target:
        raise AssertionError(f"units differ: {value} vs {target}")
    bound = first_number(target)
    met = number <= bound if target.startswith("<=") else number >= bound
    assert state == ("met" if met else "**not met**"), (value, target, state)


@pytest.fixture(scope="module")
def report(tiny_corpus: Path, tmp_path_factory):
    """All sections once, on the tiny corpus's test set (8 clips), 1 step each."""
    root = tmp_path_factory.mktemp("benchmark")
    (root / "recipe").mkdir()
    decoding = root / "benchmark.json"
    decoding.write_text(json.dumps({
        "num_utts": 4, "batch_size": 2, "speedup": 3.5, "identical_hyps": 4,
        "stock": {"wall_s": 7.0, "word_errors": 3, "wer": 20.0},
        "batched": {"wall_s": 2.0, "word_errors": 3, "wer": 20.0},
    }))
    out = root / "BENCHMARKS.md"
    start = time.perf_counter()
    result = benchmark.main([
        "--sections", "prep,step,loader,memory",
        "--corpus_dirs", f"tiny={tiny_corpus}", f"tiny_again={tiny_corpus}", "--prep_sets", "test",
        "--recipe_dir", str(root / "recipe"), "--config_dir", str(CONF), "--token_type", "char",
        "--variants", "baseline", "smile",
        "--num_batches", "1", "--repeats", "1", "--warmup", "0", "--memory_iters", "1",
        "--decoding_json", str(decoding), "--work_dir", str(root / "work"), "--out", str(out),
    ])
    return result, out, time.perf_counter() - start


def test_report_structure(report):
    result, out, _ = report
    text = out.read_text()
    assert text == result["text"]
    for head in ("- Command: `python -m espnet2_smile.bin.benchmark --sections prep,step,loader,memory",
                 "- Machine: ", "- Threads: torch ", "- Date: ", "## Summary", SUMMARY_HEADER,
                 "## 1. Training step", "## 2. Data loading", "## 3. Data preparation (stage 1)",
                 "## 4. Training memory", "## 5. Test-set decoding"):
        assert head in text, head
    rows = summary_rows(text)
    assert all(len(r) == 5 for r in rows), rows
    sections = [r[0] for r in rows]
    # sections in the order of the targets, each present
    assert sorted(set(sections), key=sections.index) == [
        "1 training step", "2 data loading", "3 data preparation", "4 training memory", "5 test-set decoding"]
    figures = {r[1]: r for r in rows}
    for key in ("baseline ms/step", "smile / baseline", "smile: share of a step",
                "loader / training", "tiny: peak memory of the process tree",
                "peak RSS tiny_again / tiny (1.0x the audio)"):
        assert key in figures, (key, list(figures))
    # the breakdown of smile names every part of a step
    share = figures["smile: share of a step"][2]
    for group in ("frontends", "encoder", "Siamese target", "decoder", "losses", "backward", "optimiser"):
        assert re.search(rf"{group} \d+%", share), (group, share)
    assert sum(int(p) for p in re.findall(r"(\d+)%", share)) in range(95, 106), share
    assert "| region | group | baseline | smile | share (smile) |" in text


def test_figures_are_positive_and_statuses_agree(report):
    result, _, _ = report
    rows = summary_rows(result["text"])
    with_target = 0
    for section, figure, value, target, state in rows:
        assert first_number(value) > 0, (figure, value)
        if target not in ("-", "reference"):
            assert state in ("met", "**not met**"), (figure, state)
            if not figure.startswith("stock / batched"):
                check_status(value, target, state)
            with_target += 1
        else:
            assert state == "-", (figure, state)
    # smile, loader, 2 x prep speed, prep growth, memory, decoding
    assert with_target == 7, rows
    decoding = [r for r in rows if r[0] == "5 test-set decoding"][0]
    assert decoding[2].startswith("3.50x") and decoding[4] == "met"


def test_details_hold_measured_numbers(report):
    result, _, elapsed = report
    text = result["text"]
    memory = text.split("## 4. Training memory")[1].split("##")[0]
    cells = [c.strip() for c in memory.strip().splitlines()[-1].strip("|").split("|")]
    wall, cpu = float(cells[0]), float(cells[1])
    assert wall > 0 and cpu > 0
    assert int(cells[5]) >= 1  # processes of the trainer's tree
    prep = text.split("## 3. Data preparation (stage 1)")[1].split("##")[0]
    prep_rows = [line for line in prep.splitlines() if line.startswith("| tiny")]
    assert len(prep_rows) == 2
    for line in prep_rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert int(cells[1]) == 8 and float(cells[2]) > 0 and float(cells[3]) > 0
    print(f"benchmark on tiny inputs: {elapsed:.1f} s")


def test_region_timer_is_exclusive_and_opaque():
    timer = benchmark.RegionTimer()

    class Part:
        def inner(self):
            time.sleep(0.01)

        def outer(self):
            time.sleep(0.01)
            self.inner()

        def hidden(self):
            self.inner()

    part = Part()
    timer.wrap(part, "inner", "inner")
    timer.wrap(part, "outer", "outer")
    timer.wrap(part, "hidden", "hidden", opaque=True)
    start = time.perf_counter()
    with timer.region("step"):
        part.outer()
        part.hidden()
    total = time.perf_counter() - start
    # exclusive times add up to the whole; the opaque region keeps its inner call
    assert sum(timer.seconds.values()) == pytest.approx(total, abs=2e-3)
    assert timer.seconds["hidden"] >= 0.01 and timer.seconds["inner"] >= 0.01
    assert timer.seconds["outer"] >= 0.01 and timer.seconds["step"] < 0.005
    timer.unwrap()
    assert "inner" not in vars(part) and "outer" not in vars(part)


def test_run_measured_counts_descendants(tmp_path: Path):
    # a child that starts a grandchild holding 200 MiB for a while
    grandchild = "b = bytearray(200 * 2**20); import time; time.sleep(0.6)"
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}], check=True)"
    run = benchmark.run_measured([sys.executable, "-c", child], tmp_path, tmp_path / "log")
    assert run.peak_tree_rss >= 200 * 2**20 and run.max_process_rss >= 200 * 2**20
    assert run.peak_processes >= 2 and run.wall_s >= 0.6 and run.cpu_s > 0
    with pytest.raises(RuntimeError, match="exit code 3"):
        benchmark.run_measured([sys.executable, "-c", "import sys; sys.exit(3)"], tmp_path, tmp_path / "log2")


@pytest.mark.parametrize("args, message", [
    (["--sections", "step,bogus"], "--sections"),
    (["--sections", "loader"], "need a data dir"),
    (["--sections", "step", "--variants", "smile"], "must include baseline"),
    (["--sections", "step", "--variants", "baseline", "nope"], "no train_<variant>.yaml"),
    (["--sections", "step", "--repeats", "0"], "--repeats must be >= 1"),
    (["--sections", "prep", "--corpus_dirs", "huge"], "must be a size"),
    (["--sections", "prep", "--corpus_dirs", "mine=/nonexistent/corpus"], "missing or incomplete"),
])
def test_option_errors(args, message, tmp_path: Path):
    with pytest.raises((ValueError, FileNotFoundError), match=re.escape(message)):
        benchmark.main(args + ["--out", "", "--work_dir", str(tmp_path), "--recipe_dir", str(tmp_path),
                               "--config_dir", str(CONF)])


def test_cli_reports_errors_in_one_line(tmp_path: Path):
    proc = subprocess.run([sys.executable, "-m", "espnet2_smile.bin.benchmark", "--sections", "nope", "--out", ""],
                          check=False, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("benchmark: error: --sections must be")
