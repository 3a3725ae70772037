"""The recipe's variant configs differ from train_smile.yaml only in their defining keys."""

import pytest

from helpers_model import load_variant

DEFINING = {
    "smile_nofusion": {"fusion", "fusion_conf"},
    "smile_nosiamese": {"objective", "objective_conf"},
    "smile_mlm": {"objective", "objective_conf"},
    "smile_moddrop": {"model_conf"},
    "baseline": {"encoder_conf.layout", "fusion", "fusion_conf", "masking", "masking_conf",
                 "objective", "objective_conf"},
    "audio_only": {"video_frontend", "video_frontend_conf", "encoder_conf.layout", "fusion",
                   "fusion_conf", "masking", "masking_conf", "objective", "objective_conf"},
}


def differing_keys(a: dict, b: dict) -> set:
    """Top-level keys whose values differ; for encoder_conf, the inner keys."""
    out = set()
    for key in set(a) | set(b):
        va, vb = a.get(key), b.get(key)
        if va == vb:
            continue
        if key == "encoder_conf" and isinstance(va, dict) and isinstance(vb, dict):
            out |= {f"{key}.{k}" for k in set(va) | set(vb) if va.get(k) != vb.get(k)}
        else:
            out.add(key)
    return out


@pytest.mark.parametrize("variant", sorted(DEFINING))
def test_variant_differs_only_in_defining_keys(variant):
    assert differing_keys(load_variant("smile"), load_variant(variant)) == DEFINING[variant]


def test_moddrop_variant_adds_only_modality_dropout():
    smile, moddrop = load_variant("smile")["model_conf"], load_variant("smile_moddrop")["model_conf"]
    assert moddrop == {**smile, "modality_dropout": 0.25}


def test_default_config_is_smile():
    from helpers_model import CONF_DIR

    train = CONF_DIR.parent / "train.yaml"
    assert train.is_symlink() and train.resolve() == (CONF_DIR / "train_smile.yaml").resolve()
    smile = load_variant("smile")
    assert (smile["fusion"], smile["masking"], smile["objective"]) == ("adaptive", "span", "siamese")
    assert smile["encoder_conf"]["layout"] == "temporal"
