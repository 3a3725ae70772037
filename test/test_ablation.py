"""Ablation study: sclite report parsing, paired bootstrap, the report, local/run_ablations.sh."""

import os
import re
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import pytest

from espnet2_smile.bin.ablation_report import main as report_main
from espnet2_smile.bin.ablation_report import wall_time
from espnet2_smile.utils.bootstrap import paired_bootstrap
from espnet2_smile.utils.sclite import error_rate, utterance_scores

SCLITE = os.environ.get("sclite") or shutil.which("sclite") or "/usr/lib/sctk/bin/sclite"
needs_sclite = pytest.mark.skipif(not os.access(SCLITE, os.X_OK), reason="sclite (Debian sctk) not installed")

WORDS = "ALPHA BRAVO CHARLIE DELTA ECHO FOXTROT GOLF HOTEL INDIA JULIET".split()


def _refs(n_utts: int, n_words: Sequence[int]) -> Dict[str, List[str]]:
    """Utterance id (``<spk>_<clip>``) -> reference words."""
    return {f"spk{i % 3}_{i:05d}": [WORDS[(i + j) % len(WORDS)] for j in range(n_words[i])] for i in range(n_utts)}


def sclite_report(score_dir: Path, refs: Dict[str, List[str]], errors: Sequence[int]) -> Path:
    """result.txt of sclite run as stage 13 runs it, on a hypothesis with ``errors[i]``
    substituted words in utterance i."""
    score_dir.mkdir(parents=True, exist_ok=True)
    with open(score_dir / "ref.trn", "w") as r, open(score_dir / "hyp.trn", "w") as h:
        for (utt, words), e in zip(refs.items(), errors):
            assert 0 <= e <= len(words)
            spk = utt.split("_")[0]
            r.write(f"{' '.join(words)}\t({spk}-{utt})\n")
            h.write(f"{' '.join(['ZULU'] * e + words[e:])}\t({spk}-{utt})\n")
    result = score_dir / "result.txt"
    with open(result, "w") as f:
        subprocess.run([SCLITE, "-r", str(score_dir / "ref.trn"), "trn", "-h", str(score_dir / "hyp.trn"), "trn",
                        "-i", "rm", "-o", "all", "stdout"], stdout=f, check=True)
    return result


# --------------------------------------------------------------------------- bootstrap
@needs_sclite
def test_bootstrap_on_sclite_reports_with_a_known_difference(tmp_path: Path):
    rng = np.random.default_rng(0)
    n = 200
    lengths = rng.integers(4, 11, size=n)
    refs = _refs(n, lengths)
    err_b = rng.binomial(lengths, 0.2)
    err_a = np.minimum(err_b + (np.arange(n) % 2), lengths)  # A: about one more error every other utterance
    known = 100.0 * (err_a.sum() - err_b.sum()) / lengths.sum()
    ra = sclite_report(tmp_path / "a", refs, err_a)
    rb = sclite_report(tmp_path / "b", refs, err_b)
    ids = [f"{u.split('_')[0]}-{u}" for u in refs]  # sclite's ids, in our order
    sa, sb = utterance_scores(ra), utterance_scores(rb)
    assert sorted(sa) == sorted(ids) == sorted(sb)
    assert [sa[i][1] + sa[i][2] + sa[i][3] for i in ids] == err_a.tolist()
    assert [sa[i][0] + sa[i][1] + sa[i][2] for i in ids] == lengths.tolist()
    assert error_rate(ra) == pytest.approx(round(100.0 * err_a.sum() / lengths.sum(), 1))
    words = [sb[i][0] + sb[i][1] + sb[i][2] for i in ids]
    ci = paired_bootstrap([sa[i][1] + sa[i][2] + sa[i][3] for i in ids],
                          [sb[i][1] + sb[i][2] + sb[i][3] for i in ids], words, n_boot=2000)
    assert ci.delta == pytest.approx(known, abs=1e-9)
    assert ci.low <= known <= ci.high and not ci.contains_zero()
    assert ci.high - ci.low < 4.0
    # identical hypotheses: a zero-width interval at 0
    rc = sclite_report(tmp_path / "c", refs, err_b)
    sc = utterance_scores(rc)
    same = paired_bootstrap([sc[i][1] + sc[i][2] + sc[i][3] for i in ids],
                            [sb[i][1] + sb[i][2] + sb[i][3] for i in ids], words, n_boot=500)
    assert (same.delta, same.low, same.high) == (0.0, 0.0, 0.0) and same.contains_zero()


def test_bootstrap_coverage_of_a_true_difference():
    """Utterances drawn from a population where A makes 5 points more errors than B,
    with utterance difficulty shared by both (pairing): the 95% interval holds the
    true difference in about 95% of simulated test sets."""
    rng = np.random.default_rng(1)
    hits, paired, unpaired = 0, [], []
    for trial in range(200):
        n_words = rng.integers(5, 16, size=150)
        hard = rng.uniform(0.0, 0.4, size=150)
        a = rng.binomial(n_words, hard + 0.10)
        b = rng.binomial(n_words, hard + 0.05)
        ci = paired_bootstrap(a, b, n_words, n_boot=400, seed=trial)
        hits += ci.low <= 5.0 <= ci.high
        paired.append(ci.high - ci.low)
        if trial < 20:  # resampling the two systems independently ignores the shared difficulty
            i, j = rng.integers(0, 150, size=(2, 400, 150))
            d = 100 * (a[i].sum(1) / n_words[i].sum(1) - b[j].sum(1) / n_words[j].sum(1))
            unpaired.append(np.subtract(*np.quantile(d, [0.975, 0.025])))
    assert 0.88 <= hits / 200 <= 0.99, hits
    assert np.mean(paired[:20]) < 0.8 * np.mean(unpaired)


def test_bootstrap_input_errors():
    with pytest.raises(ValueError, match="equally long"):
        paired_bootstrap([1, 2], [1], [3, 3])
    with pytest.raises(ValueError, match="no words"):
        paired_bootstrap([0], [0], [0])


# --------------------------------------------------------------------------- report
def _exp(root: Path, variant: str, seed: int, video: bool = True, extra: str = "") -> Path:
    exp = root / "exp" / f"asr_{variant}_seed{seed}"
    exp.mkdir(parents=True, exist_ok=True)
    (exp / "config.yaml").write_text(f"max_epoch: 3\nvideo_frontend: {'resnet' if video else 'null'}\n{extra}")
    (exp / "train.log").write_text("... INFO: The training was finished at 3 epochs \n")
    return exp


def _cell(values: Sequence[float], n_seeds: int) -> str:
    if len(values) == 1:
        text = f"{values[0]:.1f}"
    else:
        text = f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"
    return text + (f" ({len(values)}/{n_seeds} seeds)" if len(values) < n_seeds else "")


@needs_sclite
def test_report_from_fixture_result_folders(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refs = _refs(4, [5, 5, 5, 5])  # 20 words: WER = 5 x errors
    # errors per utterance: variant -> seed -> decode dir/set -> list
    plan = {
        "smile": {1: {"decode_av/test": [1, 1, 0, 0], "decode_av/test_babble_snr0": [2, 2, 1, 1],
                      "decode_av/test_babble_snr10": [1, 1, 1, 0], "decode_audio/test": [2, 1, 0, 0],
                      "decode_video/test": [4, 4, 3, 3]},
                  2: {"decode_av/test": [2, 1, 1, 0], "decode_av/test_babble_snr0": [2, 2, 2, 1],
                      "decode_av/test_babble_snr10": [1, 1, 1, 1], "decode_audio/test": [2, 1, 1, 0],
                      "decode_video/test": [4, 4, 4, 3]}},
        "smile_nofusion": {1: {"decode_av/test": [1, 1, 0, 0], "decode_av/test_babble_snr0": [3, 3, 2, 2],
                               "decode_av/test_babble_snr10": [2, 1, 1, 0], "decode_audio/test": [2, 2, 0, 0],
                               "decode_video/test": [5, 4, 3, 3]},
                           2: {"decode_av/test": [2, 1, 1, 0], "decode_av/test_babble_snr0": [3, 3, 3, 2],
                               "decode_av/test_babble_snr10": [2, 1, 1, 1], "decode_audio/test": [2, 2, 1, 0]}},
        "audio_only": {1: {"decode_av/test": [3, 2, 1, 1], "decode_av/test_babble_snr0": [5, 5, 4, 4],
                           "decode_av/test_babble_snr10": [3, 3, 2, 2]}},
        # a variant outside the named ablations, trained with modality dropout and noise
        "smile_moddrop": {1: {"decode_av/test": [1, 0, 0, 0], "decode_av/test_babble_snr0": [1, 1, 1, 0],
                              "decode_av/test_babble_snr10": [1, 0, 0, 0], "decode_audio/test": [1, 1, 0, 0],
                              "decode_video/test": [3, 3, 2, 2]}},
    }
    moddrop = ("model_conf:\n    modality_dropout: 0.25\nnoise_scp: data/noise_train.scp\n"
               "noise_apply_prob: 0.5\nnoise_db_range: '-5_20'\n")
    for variant, seeds in plan.items():
        for seed, dirs in seeds.items():
            exp = _exp(tmp_path, variant, seed, video=variant != "audio_only",
                       extra=moddrop if variant == "smile_moddrop" else "")
            for rel, errs in dirs.items():
                sclite_report(exp / rel / "score_wer", refs, errs)
    (tmp_path / "exp" / "ablation_times.tsv").write_text(
        "prep\t-\t-\tstages 1-10\t60\ntrain\tsmile\t1\t-\t540\ntrain\tsmile\t1\tinterrupted part (by hand)\t60\n"
        # a seed and a variant the report does not cover: not counted in its wall time
        "train\tsmile\t3\t-\t999\ntrain\tbaseline\t1\tinterrupted part\t777\n")
    args = ["--expdir", "exp", "--variants", "smile", "smile_moddrop", "smile_nofusion", "audio_only", "--seeds", "1", "2",
            "--noise_types", "babble", "--snrs", "0", "10", "--out", "out/RESULTS_ABLATION.md", "--n_boot", "500"]
    assert report_main(args) == 0
    md = (tmp_path / "out" / "RESULTS_ABLATION.md").read_text()
    png = tmp_path / "out" / "wer_vs_snr.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![WER against SNR, babble noise](wer_vs_snr.png)" in md
    header = "| variant | clean | babble 0 dB | babble 10 dB | audio only | video only |"
    assert header in md
    cols = ["decode_av/test", "decode_av/test_babble_snr0", "decode_av/test_babble_snr10",
            "decode_audio/test", "decode_video/test"]
    for variant, seeds in plan.items():
        cells = []
        for col in cols:
            # the expected cell: from sclite's own Sum/Avg line of each report
            wers = [error_rate(tmp_path / "exp" / f"asr_{variant}_seed{s}" / col / "score_wer" / "result.txt")
                    for s in (1, 2) if col in seeds.get(s, {})]
            assert wers == [5.0 * sum(seeds[s][col]) for s in (1, 2) if col in seeds.get(s, {})]
            if wers:
                cells.append(_cell(wers, 2))
            else:
                cells.append("n/a" if variant == "audio_only" and "decode_av" not in col else "–")
        assert f"| `{variant}` | " + " | ".join(cells) + " |" in md, (variant, cells, md)
    assert "| `smile` | 15.0 ± 7.1 | 32.5 ± 3.5 | 17.5 ± 3.5 | 17.5 ± 3.5 | 72.5 ± 3.5 |" in md
    # differences: clean is identical per utterance -> [0, 0]; babble 0 dB: +5 points per utterance pair
    section = md.split("### `smile_nofusion` vs `smile`", 1)[1].split("###", 1)[0]
    assert re.search(r"\| clean \| .* \| \+0\.0 \| \[\+0\.0, \+0\.0\] \| CI contains 0", section)
    m = re.search(r"\| babble 0 dB \| .* \| (\+\d+\.\d) \| \[(\S+), (\S+)\] \| worse \|", section)
    assert m and float(m.group(1)) == pytest.approx(100 * (10 + 11 - 6 - 7) / 2 / 20, abs=0.05)
    assert float(m.group(2)) > 0
    # the per-seed column: sclite WER of seed s of the variant minus that of seed s of smile
    assert re.search(r"\| babble 0 dB \| 52\.5 ± 3\.5 \| 32\.5 ± 3\.5 \| \+20\.0, \+20\.0 \| \+20\.0 \| ", section)
    assert re.search(r"\| clean \| [^|]+ \| [^|]+ \| \+0\.0, \+0\.0 \| \+0\.0 \| ", section)
    moddrop = md.split("### `smile_moddrop` vs `smile`", 1)[1].split("##", 1)[0]
    assert "| clean | 5.0 (1/2 seeds) | 15.0 ± 7.1 | -5.0 | " in moddrop  # only seed 1 in both
    assert "there the data do not show a difference between `smile_nofusion` and `smile`" in section
    assert "### `audio_only` vs `smile`" in md
    # named ablations first, then any other variant in the given order
    assert md.index("### `smile_nofusion` vs") < md.index("### `audio_only` vs") < md.index("### `smile_moddrop` vs")
    assert ("`smile`, `smile_nofusion` trained without modality dropout: always with both streams, so their "
            "`audio only` / `video only` columns" in md)
    assert ("- training: max_epoch 3, modality dropout 0, training noise none (`smile`, `smile_nofusion`, "
            "`audio_only`); max_epoch 3, modality dropout 0.25, training noise p 0.5, SNR -5_20 dB from "
            "`data/noise_train.scp` (`smile_moddrop`); finished runs (epochs trained): `smile` 2 (3, 3), "
            "`smile_moddrop` 1 (3), `smile_nofusion` 2 (3, 3), `audio_only` 1 (3)\n") in md
    assert "## Missing results" in md and "`smile_nofusion` seed 2: video only" in md
    assert "`audio_only` seed 2: clean" in md and "audio_only` seed 1: audio only" not in md
    assert "total 0.18 h (prep 1.0 min, train 10.0 min), including 1 interrupted and resumed part(s), 1.0 min" in md
    assert "per variant (training + decoding, seed(s) 1, 2): `smile` 10.0 min\n" in md

    one = ["--expdir", "exp", "--variants", "smile", "smile_moddrop", "--seeds", "1", "--noise_types", "babble",
           "--snrs", "0", "--out", "out/one.md", "--n_boot", "100"]
    assert report_main(one) == 0
    assert ("`smile` trained without modality dropout: always with both streams, so its `audio only`"
            in (tmp_path / "out" / "one.md").read_text())

    # a report whose per-utterance scores disagree with its Sum/Avg line is refused
    bad = tmp_path / "exp" / "asr_smile_seed1" / "decode_av" / "test" / "score_wer" / "result.txt"
    text = bad.read_text()
    edited = re.sub(r"(Sum/Avg\s*\|\s*\d+\s+\d+\s*\|(?:\s+\S+){4}\s+)10\.0", r"\g<1>15.0", text, count=1)
    assert edited != text
    bad.write_text(edited)
    assert error_rate(bad) == 15.0
    assert report_main(args) == 1


def test_report_errors(tmp_path: Path, capsys):
    assert report_main(["--expdir", str(tmp_path / "none")]) == 1
    assert "is not a directory" in capsys.readouterr().err
    out = tmp_path / "R.md"
    assert report_main(["--expdir", str(tmp_path), "--variants", "baseline", "--out", str(out)]) == 0
    assert "`smile` is not among the variants of this study" in out.read_text()
    (tmp_path / "r.txt").write_text("nothing here\n")
    with pytest.raises(ValueError, match="r.txt: no sclite Sum/Avg line"):
        error_rate(tmp_path / "r.txt")
    with pytest.raises(ValueError, match="r.txt: no per-utterance 'Scores:' lines"):
        utterance_scores(tmp_path / "r.txt")


def test_wall_time_names_malformed_lines(tmp_path: Path, capsys):
    times = tmp_path / "ablation_times.tsv"
    times.write_text("prep\t-\t-\tstages 1-10\t60\n\n"
                     "train\tsmile\t1\t-\t540\n"
                     "train\tsmile\t1\t540\n"              # a field missing
                     "decode\tsmile\t1\tav test\tten\n"   # seconds not a number
                     "decode\tsmile\t1\tav test\t120\n")
    lines = wall_time(times, ["smile"], [1])
    assert lines[0] == "total 0.20 h (decode 2.0 min, prep 1.0 min, train 9.0 min); 2 malformed line(s) of the times file left out"
    err = capsys.readouterr().err.splitlines()
    assert err == [f"ablation_report: {times}:4: line left out of the wall time: 4 tab-separated fields, "
                   "expected 5 (kind, variant, seed, what, seconds)",
                   f"ablation_report: {times}:5: line left out of the wall time: seconds 'ten' is not a number"]
    # a well-formed file: no warning, no remark
    times.write_text("prep\t-\t-\tstages 1-10\t60\n")
    assert wall_time(times, ["smile"], [1]) == ["total 0.02 h (prep 1.0 min)"]
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- the study script
def test_run_ablations_on_the_tiny_corpus(tiny_corpus: Path, tmp_path: Path):
    """local/run_ablations.sh: stages 1-10 once, two variants trained 1 epoch, every
    decoding scored, the report written; a rerun skips everything. (Sized for time:
    one SNR, no audio-only decoding; each decoding costs a process start-up.)"""
    import resource
    import time

    import yaml
    from helpers_model import toy_config
    from test_recipe import recipe_copy, run_recipe

    work = recipe_copy(tmp_path / "avsr1")
    confs = tmp_path / "conf"
    confs.mkdir()
    for variant in ("smile", "audio_only"):
        cfg = toy_config(variant, video_frontend_conf={"downsample": 2, "crop_size": 40})
        (confs / f"train_{variant}.yaml").write_text(yaml.safe_dump(cfg))
    opts = [
        "--variants", "smile audio_only", "--seeds", "1", "--config_dir", str(confs),
        "--noise_types", "babble", "--snrs", "0", "--modalities", "av video",
        "--local_data_opts", f"--corpus_dir {tiny_corpus} --corpus_size tiny",
        "--asr_args", "--max_epoch 1 --batch_size 8 --use_tensorboard false --use_matplotlib false",
        "--nbpe", "100", "--nj", "1", "--inference_nj", "1", "--inference_args", "--beam_size 2 --maxlenratio 0.3",
    ]
    # CPU time of all its processes: the wall time on idle cores, whatever else the machine runs
    start, cpu0 = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    run_recipe(work, *opts, script="local/run_ablations.sh")
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime
    assert cpu < 300, f"run_ablations.sh used {cpu:.0f} s of CPU ({time.monotonic() - start:.0f} s wall)"

    assert (work / "dump" / "raw" / "test_babble_snr0" / "wav.scp").is_file()
    smile, audio_only = work / "exp" / "asr_smile_seed1", work / "exp" / "asr_audio_only_seed1"
    decoded = {p.relative_to(work / "exp").parent.parent.as_posix()
               for p in (work / "exp").glob("asr_*_seed1/*/*/score_wer/result.txt")}
    assert decoded == {
        "asr_smile_seed1/decode_av/test", "asr_smile_seed1/decode_av/test_babble_snr0",
        "asr_smile_seed1/decode_video/test", "asr_audio_only_seed1/decode_av/test",
        "asr_audio_only_seed1/decode_av/test_babble_snr0",
    }
    assert yaml.safe_load((smile / "config.yaml").read_text())["seed"] == 1
    report = (work / "RESULTS_ABLATION.md").read_text()
    assert (work / "wer_vs_snr.png").read_bytes()[:4] == b"\x89PNG"
    wer = {d: error_rate(work / "exp" / d / "score_wer" / "result.txt") for d in decoded}
    s = "asr_smile_seed1/decode_"
    assert "| variant | clean | babble 0 dB | video only |" in report
    assert f"| `smile` | {wer[s + 'av/test']:.1f} | {wer[s + 'av/test_babble_snr0']:.1f} | {wer[s + 'video/test']:.1f} |" in report
    a = "asr_audio_only_seed1/decode_av/"
    assert f"| `audio_only` | {wer[a + 'test']:.1f} | {wer[a + 'test_babble_snr0']:.1f} | n/a |" in report
    assert "### `audio_only` vs `smile`" in report and "## Missing results" not in report
    times = (work / "exp" / "ablation_times.tsv").read_text()
    assert times.count("train\t") == 2 and "prep\t" in times

    # a rerun resumes nothing and redoes nothing
    stamps = {p: p.stat().st_mtime_ns for p in [smile / "train.log", audio_only / "train.log",
                                                 *(work / "exp").glob("asr_*/*/*/score_wer/result.txt")]}
    rerun = list(opts)  # decoding options do not touch training; decoding is skipped per inference tag
    rerun[rerun.index("--inference_args") + 1] = "--beam_size 3 --maxlenratio 0.3"
    rerun += ["--report", "RESULTS_AGAIN.md", "--plot", "again.png"]  # a second report beside the first
    again = run_recipe(work, *rerun, script="local/run_ablations.sh")
    assert (work / "again.png").read_bytes()[:4] == b"\x89PNG"
    assert "![WER against SNR, babble noise](again.png)" in (work / "RESULTS_AGAIN.md").read_text()
    assert "Stages 1-10: done before" in again
    assert again.count("finished before; skipped") == 2 and again.count("scored before; skipped") == 3
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    # other training options for a finished run: refused with what to do
    changed = list(opts)
    changed[changed.index("--asr_args") + 1] = "--max_epoch 2"
    with pytest.raises(AssertionError, match="was trained with other options"):
        run_recipe(work, *changed, script="local/run_ablations.sh")
