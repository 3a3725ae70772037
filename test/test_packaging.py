"""The installed package: offline-safe import, CLI entry points, registered components."""

import subprocess
import sys

import yaml


def test_import_never_downloads_nltk_data():
    # nltk.download raising proves g2p_en found the data without asking the network
    code = (
        "import nltk\n"
        "def refuse(*a, **k):\n"
        "    raise SystemExit(f'nltk download attempted: {a}')\n"
        "nltk.download = refuse\n"
        "import espnet2_smile.tasks.avsr\n"
        "import espnet2.bin.asr_inference\n"
        "print('imported')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "imported" in proc.stdout


def test_print_config_lists_components():
    proc = subprocess.run(
        [sys.executable, "-m", "espnet2_smile.bin.avsr_train", "--print_config"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = yaml.safe_load(proc.stdout)
    assert config["frontend"] == "stacked_fbank"
    assert config["video_frontend"] == "resnet"
    assert config["encoder"] == "smile"
    assert config["fusion"] == "adaptive"
    assert config["model"] == "avsr"
    assert config["preprocessor"] == "av"
    for group in ("masking", "objective"):
        assert group in config and f"{group}_conf" in config
    assert config["encoder_conf"]["layout"] == "temporal"
    assert "input_size" not in config["encoder_conf"]  # derived from the frontends


def test_unknown_component_name_is_rejected():
    proc = subprocess.run(
        [sys.executable, "-m", "espnet2_smile.bin.avsr_train", "--print_config", "--fusion", "gated"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "invalid choice: 'gated'" in proc.stderr
