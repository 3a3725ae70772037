"""The recipe egs2/lrs3_smile/avsr1: stages 1-13 on the tiny built-in corpus, bad clips."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from helpers_model import toy_config
from espnet2_smile.utils.datadir import read_scp, validate_data_dir

RECIPE = Path(__file__).resolve().parents[1] / "egs2" / "lrs3_smile" / "avsr1"
RECIPE_FILES = ("run.sh", "avsr.sh", "path.sh", "cmd.sh", "db.sh", "conf", "local", "utils")


def recipe_copy(workdir: Path) -> Path:
    """A recipe folder whose outputs (data, dump, exp) go to ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name in RECIPE_FILES:
        (workdir / name).symlink_to(RECIPE / name)
    return workdir


def recipe_env() -> dict:
    """The environment of a recipe run: path.sh activates the project's venv itself."""
    return {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}


def run_recipe(workdir: Path, *args: str, script: str = "./run.sh") -> str:
    proc = subprocess.run([script, *args], cwd=workdir, capture_output=True, text=True, env=recipe_env())
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    return out


def results_rows(results: Path, kind: str):
    """The table rows of one ``### KIND`` section of RESULTS.md."""
    text = results.read_text()
    section = text.split(f"### {kind}\n", 1)[1].split("###", 1)[0]
    return [line for line in section.splitlines() if line.startswith("|") and "dataset" not in line and "---" not in line]


def test_stages_1_to_13_then_ablation_from_stage_10(tiny_corpus: Path, tmp_path: Path):
    work = recipe_copy(tmp_path / "avsr1")
    config = tmp_path / "train_tiny.yaml"
    config.write_text(yaml.safe_dump(toy_config("smile", video_frontend_conf={"downsample": 2, "crop_size": 40})))
    common = [
        "--nbpe", "100",
        "--local_data_opts", f"--corpus_dir {tiny_corpus} --corpus_size tiny",
        "--asr_args", "--max_epoch 1 --batch_size 8 --use_tensorboard false --use_matplotlib false",
        "--inference_args", "--beam_size 2 --maxlenratio 0.5",
    ]
    run_recipe(work, "--stage", "1", "--stop_stage", "13", "--asr_config", str(config), *common)

    for dset in ("train", "dev", "test"):
        assert validate_data_dir(work / "data" / dset) == []
        assert (work / "data" / dset / "skipped.txt").read_text() == ""
    assert (work / "data" / "token_list" / "bpe_unigram100" / "bpe.model").is_file()
    exp = work / "exp" / "asr_train_tiny_raw_bpe100_max_epoch1_batch_size8_use_tensorboardfalse_use_matplotlibfalse"
    assert (exp / "valid.acc.ave.pth").is_file(), sorted(p.name for p in (work / "exp").iterdir())
    tag = "decode_beam_size2_maxlenratio0.5_asr_model_valid.acc.ave"
    decode = exp / tag / "test"
    hyp_keys = list(read_scp(decode / "text"))
    assert hyp_keys == list(read_scp(work / "dump" / "raw" / "test" / "wav.scp"))
    result = (decode / "score_wer" / "result.txt").read_text()
    assert "Sum/Avg" in result and "SYSTEM SUMMARY PERCENTAGES by SPEAKER" in result  # sclite report
    wer_rows = results_rows(work / "RESULTS.md", "WER")
    assert wer_rows and wer_rows[0].startswith(f"|{tag}/test|8|")
    assert results_rows(work / "RESULTS.md", "CER") and results_rows(work / "RESULTS.md", "TER")

    # stage 14 packs the model; transcribe decodes a video of the test set as stage 12 did
    run_recipe(work, "--stage", "14", "--stop_stage", "14", "--asr_config", str(config), *common)
    packed = exp / "packed.zip"
    uttid = hyp_keys[0]
    vid, clip = uttid.rsplit("_", 1)
    video = tiny_corpus / "test" / vid / f"{clip}.mp4"
    silent = tmp_path / "no_audio.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-an", "-c:v", "copy", str(silent)], check=True)
    proc = subprocess.run(
        [sys.executable, "-m", "espnet2_smile.bin.transcribe", "--model", str(packed),
         "--beam_size", "2", "--maxlenratio", "0.5", str(video), str(silent)],
        cwd=tmp_path, capture_output=True, text=True, env=recipe_env(),
    )
    assert proc.returncode == 1, proc.stderr[-3000:]  # the silent copy fails, the clip does not
    assert proc.stdout == f"{video}\t{read_scp(decode / 'text')[uttid]}\n", proc.stderr[-3000:]
    assert f"transcribe: {silent}: no audio stream" in proc.stderr
    assert (packed.parent / "packed.zip.unpacked" / "meta.yaml").is_file()

    # LM stages 6-8 and LM fusion in decoding
    lm_opts = ["--use_lm", "true", "--lm_config", "conf/train_lm.yaml", "--lm_args", "--max_epoch 1",
               "--asr_config", str(config), *common,
               "--inference_args", "--beam_size 2 --maxlenratio 0.5 --lm_weight 0.3"]
    run_recipe(work, "--stage", "6", "--stop_stage", "8", *lm_opts)
    lm_out = run_recipe(work, "--stage", "12", "--stop_stage", "12", *lm_opts)
    lm_exp = work / "exp" / "lm_train_lm_bpe100"
    assert (lm_exp / "valid.loss.ave.pth").is_file()
    assert float((lm_exp / "perplexity_test" / "ppl").read_text()) > 1.0
    lm_decode = exp / "decode_beam_size2_maxlenratio0.5_lm_weight0.3_lm_lm_train_lm_bpe100_valid.loss.ave_asr_model_valid.acc.ave" / "test"
    assert list(read_scp(lm_decode / "text")) == hyp_keys, lm_out[-3000:]
    assert "lm" in (lm_decode / "logdir" / "asr_inference.1.log").read_text()

    # an ablation reuses stages 1-9 and starts at collect stats
    run_recipe(work, "--stage", "10", "--stop_stage", "13",
               "--asr_config", "conf/tuning/train_smile_nofusion.yaml", *common)
    results = (work / "RESULTS.md").read_text()
    assert "## asr_train_smile_nofusion_raw_bpe100" in results
    assert "## asr_train_tiny_raw_bpe100" in results


def _make_clip_dir(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src.with_suffix(".mp4"), dst.with_suffix(".mp4"))
    shutil.copy(src.with_suffix(".txt"), dst.with_suffix(".txt"))


def test_stage1_skips_broken_clips(tiny_corpus: Path, tmp_path: Path):
    from espnet2_smile.bin.prepare_lrs3 import main as prepare

    root = tmp_path / "lrs3"
    valid = (tiny_corpus / "lrs3-valid.id").read_text().split()
    trainval = sorted(p.with_suffix("") for p in (tiny_corpus / "trainval").glob("*/*.mp4"))
    train_clips = [c for c in trainval if f"trainval/{c.parent.name}/{c.name}" not in valid]
    good, kept, truncated, silent, empty_txt = train_clips[:5]
    for clip in (good, kept, truncated, silent, empty_txt):
        _make_clip_dir(clip, root / "trainval" / clip.parent.name / clip.name)
    for clip in (tiny_corpus / "test").glob("*/*.mp4"):
        _make_clip_dir(clip.with_suffix(""), root / "test" / clip.parent.name / clip.stem)
    (root / "lrs3-valid.id").write_text(f"trainval/{good.parent.name}/{good.name}\n")
    # the three broken clips
    bad = root / "trainval" / truncated.parent.name / f"{truncated.name}.mp4"
    bad.write_bytes(bad.read_bytes()[:2000])
    mute = root / "trainval" / silent.parent.name / f"{silent.name}.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(silent.with_suffix(".mp4")), "-an", "-c:v", "copy",
                    str(mute)], check=True)
    (root / "trainval" / empty_txt.parent.name / f"{empty_txt.name}.txt").write_text("")

    out = tmp_path / "data"
    assert prepare(["--root", str(root), "--out", str(out), "--nj", "2"]) == 0
    skipped = read_scp(out / "train" / "skipped.txt")
    rel = lambda c: f"trainval/{c.parent.name}/{c.name}"  # noqa: E731
    assert set(skipped) == {rel(truncated), rel(silent), rel(empty_txt)}
    assert "no audio stream" in skipped[rel(silent)]
    assert "missing 'Text:'" in skipped[rel(empty_txt)]
    assert "ffprobe" in skipped[rel(truncated)] or "video" in skipped[rel(truncated)]
    assert all("\n" not in reason and reason for reason in skipped.values())
    for dset in ("train", "dev", "test"):
        assert validate_data_dir(out / dset) == []
    assert list(read_scp(out / "train" / "text")) == [f"{kept.parent.name}_{kept.name}"]
    assert list(read_scp(out / "dev" / "text")) == [f"{good.parent.name}_{good.name}"]


def test_missing_root_fails_before_any_work(tmp_path: Path):
    from espnet2_smile.bin.prepare_lrs3 import main as prepare

    assert prepare(["--root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "data")]) == 1
    assert not (tmp_path / "data").exists()
