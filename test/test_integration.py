"""End to end through ESPnet's machinery: collect_stats, 2 training steps, decoding."""

from pathlib import Path

import pytest
import yaml

from conftest import run_module
from helpers_model import toy_config


def data_args(flag: str, d: Path, with_text: bool = True):
    args = [
        flag, f"{d / 'wav.scp'},speech,sound",
        flag, f"{d / 'video.scp'},video,kaldi_ark",
    ]
    if with_text:
        args += [flag, f"{d / 'text'},text,text"]
    return args


@pytest.mark.parametrize("variant", ["smile", "smile_nofusion"])
def test_collect_stats_train_decode(tiny_av_data: Path, tmp_path: Path, variant: str):
    cfg = toy_config(variant, video_frontend_conf={"downsample": 2, "crop_size": 20})
    cfg.update(max_epoch=1, num_iters_per_epoch=2, batch_size=2, use_matplotlib=False,
               use_tensorboard=False, best_model_criterion=[["valid", "acc", "max"]])
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(cfg))
    train, test = tiny_av_data / "train", tiny_av_data / "test"
    common = ["--config", config, "--token_list", tiny_av_data / "tokens.txt",
              "--token_type", "char", "--ngpu", 0, "--num_workers", 0]

    # 1. collect_stats: shapes of every input and global normalisation statistics
    keys = tmp_path / "keys"
    keys.write_text("".join(f"{line.split()[0]} 1\n" for line in (train / "text").read_text().splitlines()))
    stats = tmp_path / "stats"
    run_module("espnet2_smile.bin.avsr_train", common + [
        "--collect_stats", "true", "--output_dir", stats, "--batch_size", 2,
        *data_args("--train_data_path_and_name_and_type", train),
        *data_args("--valid_data_path_and_name_and_type", train),
        "--train_shape_file", keys, "--valid_shape_file", keys,
    ], cwd=tmp_path)
    for name in ("speech_shape", "video_shape", "text_shape", "feats_stats.npz"):
        assert (stats / "train" / name).is_file(), name
    video_shape = (stats / "train" / "video_shape").read_text().split()
    assert video_shape[1].endswith(",48,48"), video_shape[:2]

    # 2. two training steps with ESPnet's trainer
    exp = tmp_path / "exp"
    run_module("espnet2_smile.bin.avsr_train", common + [
        "--output_dir", exp,
        "--normalize", "global_mvn", "--normalize_conf", f"stats_file={stats / 'train' / 'feats_stats.npz'}",
        *data_args("--train_data_path_and_name_and_type", train),
        *data_args("--valid_data_path_and_name_and_type", train),
        "--train_shape_file", stats / "train" / "speech_shape",
        "--valid_shape_file", stats / "valid" / "speech_shape",
        "--fold_length", 80000,
    ], cwd=tmp_path)
    model_file = exp / "1epoch.pth"
    assert model_file.is_file() and (exp / "config.yaml").is_file()
    log = (exp / "train.log").read_text() if (exp / "train.log").exists() else ""
    saved = yaml.safe_load((exp / "config.yaml").read_text())
    assert saved["fusion"] == cfg["fusion"] and saved["objective"] == cfg["objective"], log[-2000:]

    # 3. decoding with BatchBeamSearch, CTC + attention
    out = tmp_path / "decode"
    proc = run_module("espnet2_smile.bin.avsr_inference", [
        "--asr_train_config", exp / "config.yaml", "--asr_model_file", model_file,
        "--output_dir", out, "--beam_size", 3, "--ctc_weight", 0.3, "--maxlenratio", 0.5,
        "--ngpu", 0, *data_args("--data_path_and_name_and_type", test, with_text=False),
    ], cwd=tmp_path)
    assert "BatchBeamSearch" in proc.stderr
    test_keys = [line.split()[0] for line in (test / "wav.scp").read_text().splitlines()]
    for name in ("text", "token", "token_int", "score"):
        lines = (out / "1best_recog" / name).read_text().splitlines()
        assert [line.split(" ", 1)[0] for line in lines] == test_keys, (name, lines)
