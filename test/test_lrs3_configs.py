"""The LRS3 paper-setup configs: valid task options, ablations that differ only in their
defining keys, and models whose shapes take an AV-HuBERT Base / Large checkpoint."""

from pathlib import Path

import pytest
import torch

from espnet2_smile.asr.pretrained.avhubert import _compatibility_warnings, plan_avhubert_init
from espnet2_smile.tasks.avsr import AVSRTask, check_component_options
from helpers_model import CONF_DIR
from test_avhubert_init import PRETRAINING_ONLY, avhubert_state, model_config
from test_configs import differing_keys

LRS3_DIR = CONF_DIR / "lrs3"
SETUPS = [f"{size}_{hours}" for size in ("base", "large") for hours in ("30h", "433h")]
ABLATIONS = {"nofusion": {"fusion", "fusion_conf"}, "nosiamese": {"objective", "objective_conf"}}
# (D, FFN, layers, heads, max updates, freeze) after AV-HuBERT's fine-tuning configs
EXPECTED = {
    "base_30h": (768, 3072, 12, 12, 30000, 24000),
    "base_433h": (768, 3072, 12, 12, 60000, 48000),
    "large_30h": (1024, 4096, 24, 16, 18000, 14400),
    "large_433h": (1024, 4096, 24, 16, 60000, 48000),
}


def parse(path: Path, *extra: str):
    """The task's parser on the config, as stage 11 runs it (unknown keys are errors)."""
    args = AVSRTask.get_parser().parse_args(["--config", str(path), "--token_list", "x", *extra])
    check_component_options(args)
    return args


def test_every_setup_and_ablation_exists():
    names = sorted(p.stem for p in LRS3_DIR.glob("*.yaml"))
    assert names == sorted(
        f"train_smile_{s}{v}" for s in SETUPS for v in ("", "_nofusion", "_nosiamese")
    )


@pytest.mark.parametrize("setup", SETUPS)
def test_setup_options(setup):
    args = parse(LRS3_DIR / f"train_smile_{setup}.yaml")
    d, ffn, layers, heads, updates, freeze = EXPECTED[setup]
    enc = args.encoder_conf
    assert (enc["output_size"], enc["linear_units"], enc["num_blocks"], enc["attention_heads"]) == (
        d, ffn, layers, heads)
    assert args.max_epoch * args.num_iters_per_epoch == updates == args.scheduler_conf["max_steps"]
    assert args.model_conf["freeze_finetune_updates"] == freeze < updates
    assert args.video_frontend_conf["layers"] == [2, 2, 2, 2] and args.video_frontend_conf["channels"] == 64
    assert args.decoder_conf["num_blocks"] == (6 if setup.startswith("base") else 9)
    assert (args.fusion, args.masking, args.objective) == ("adaptive", "span", "siamese")
    assert args.specaug is None if hasattr(args, "specaug") else True
    assert args.unused_parameters  # frozen parameters under DDP


@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.parametrize("ablation", sorted(ABLATIONS))
def test_ablation_differs_only_in_defining_keys(setup, ablation):
    import yaml

    def load(name):
        with (LRS3_DIR / f"{name}.yaml").open(encoding="utf-8") as f:
            return yaml.safe_load(f)

    full, abl = load(f"train_smile_{setup}"), load(f"train_smile_{setup}_{ablation}")
    assert differing_keys(full, abl) == ABLATIONS[ablation]
    parse(LRS3_DIR / f"train_smile_{setup}_{ablation}.yaml")


@pytest.mark.parametrize("size", ["base", "large"])
def test_model_takes_the_avhubert_checkpoint(size):
    """The configured model maps every AV-HuBERT tensor and computes
    what AV-HuBERT computes (no compatibility warning)."""
    d, ffn, layers, heads, _, _ = EXPECTED[f"{size}_30h"]
    args = parse(LRS3_DIR / f"train_smile_{size}_30h.yaml")
    args.token_list = ["<blank>", "<unk>"] + [f"t{i}" for i in range(997)] + ["<sos/eos>"]
    args.normalize = None
    model = AVSRTask.build_model(args)
    state = avhubert_state(d=d, ffn=ffn, layers=layers, audio_in=104, channels=64, kernel=128,
                           groups=16, final_dim=256, classes=1000, meta=True)
    planned = plan_avhubert_init(model, state)
    used = {k for sources, _ in planned.values() for k in sources}
    assert sorted(set(state) - used) == PRETRAINING_ONLY
    assert any(k.startswith("video_frontend.trunk.") for k in planned)
    assert any(k.startswith(f"encoder.encoders.{layers - 1}.") for k in planned)
    cfg = {"model": model_config(encoder_attention_heads=heads)}
    assert _compatibility_warnings(model, state, cfg) == []
