"""Shared helpers of the model tests: toy-sized models built from the variant configs."""

import copy
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import yaml

from espnet2_smile.constants import SAMPLES_PER_FRAME

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "egs2" / "lrs3_smile" / "avsr1" / "conf" / "tuning"
VARIANTS = (
    "smile",
    "smile_nofusion",
    "smile_nosiamese",
    "smile_mlm",
    "baseline",
    "audio_only",
)
TOKENS = ["<blank>", "<unk>", "a", "b", "c", "d", "e", "f", "<space>", "<sos/eos>"]
VIDEO_SIDE = 96

# Sizes only: every key that defines a variant (layout, fusion, masking, objective,
# target, loss, ...) is kept from the YAML.
TOY_OVERRIDES: Dict[str, Dict[str, Any]] = {
    "frontend_conf": {"n_mels": 10},
    "video_frontend_conf": {"channels": 4},
    "encoder_conf": {
        "output_size": 32,
        "attention_heads": 4,
        "linear_units": 64,
        "num_blocks": 2,
        "adapter_units": 8,
    },
    "objective_conf": {"head_units": 32},
    "decoder_conf": {"attention_heads": 4, "linear_units": 64, "num_blocks": 1},
}


def load_variant(name: str) -> Dict[str, Any]:
    """The variant's YAML as a dict."""
    with (CONF_DIR / f"train_{name}.yaml").open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def toy_config(name: str, **overrides: Any) -> Dict[str, Any]:
    """The variant's config with toy sizes and ``utterance_mvn`` normalisation.

    ``overrides`` replace top-level keys; a dict value for a ``*_conf`` key is merged
    into the (toy) conf instead of replacing it.
    """
    cfg = copy.deepcopy(load_variant(name))
    for key, toy in TOY_OVERRIDES.items():
        if cfg.get(key.replace("_conf", "")) is not None:
            cfg[key] = {**(cfg.get(key) or {}), **toy}
    cfg["normalize"] = "utterance_mvn"
    cfg["normalize_conf"] = {}
    for key, value in overrides.items():
        if key.endswith("_conf") and isinstance(value, dict):
            cfg[key] = {**(cfg.get(key) or {}), **value}
        else:
            cfg[key] = value
    return cfg


def make_args(cfg: Dict[str, Any]):
    """An AVSRTask args namespace: the parser's defaults, then the config's keys."""
    from espnet2_smile.tasks.avsr import AVSRTask

    parser = AVSRTask.get_parser()
    args = parser.parse_args(["--token_list", "x"])
    for k, v in cfg.items():
        setattr(args, k, copy.deepcopy(v))
    args.token_list = list(TOKENS)
    return args


def build_model(name: str, seed: int = 0, **overrides: Any):
    """(model, args) for a toy-sized variant."""
    from espnet2_smile.tasks.avsr import AVSRTask

    torch.manual_seed(seed)
    args = make_args(toy_config(name, **overrides))
    return AVSRTask.build_model(args), args


def make_batch(
    frames: Sequence[int] = (12, 9),
    text_lens: Sequence[int] = (4, 3),
    seed: int = 0,
    extra_samples: Optional[Sequence[int]] = None,
) -> Dict[str, Any]:
    """A toy batch: speech (B, L) at 16 kHz, video (B, T, 96, 96) in [0, 255], text.

    Utterance b has ``frames[b]`` video frames and ``640 * frames[b]`` samples (plus
    ``extra_samples[b]``), zero-padded to the longest.
    """
    g = torch.Generator().manual_seed(seed)
    batch = len(frames)
    extra = list(extra_samples) if extra_samples is not None else [0] * batch
    speech_lengths = torch.tensor(
        [f * SAMPLES_PER_FRAME + e for f, e in zip(frames, extra)], dtype=torch.long
    )
    speech = torch.zeros(batch, int(speech_lengths.max()))
    video = torch.zeros(batch, max(frames), VIDEO_SIDE, VIDEO_SIDE)
    for b in range(batch):
        n = int(speech_lengths[b])
        t = torch.arange(n, dtype=torch.float32) / 16000.0
        tone = torch.sin(2 * torch.pi * (200.0 + 150.0 * b) * t)
        speech[b, :n] = 0.3 * tone + 0.05 * torch.randn(n, generator=g)
        video[b, : frames[b]] = torch.rand(frames[b], VIDEO_SIDE, VIDEO_SIDE, generator=g) * 255.0
    text = torch.full((batch, max(text_lens)), -1, dtype=torch.long)
    for b, u in enumerate(text_lens):
        text[b, :u] = torch.randint(2, len(TOKENS) - 1, (u,), generator=g)
    return dict(
        speech=speech,
        speech_lengths=speech_lengths,
        text=text,
        text_lengths=torch.tensor(list(text_lens), dtype=torch.long),
        video=video,
        video_lengths=torch.tensor(list(frames), dtype=torch.long),
        utt_id=[f"utt{b}" for b in range(batch)],
    )


def forward(model, batch: Dict[str, Any]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """model(...) on a batch from :func:`make_batch`: (loss, stats)."""
    loss, stats, _ = model(
        batch["speech"],
        batch["speech_lengths"],
        batch["text"],
        batch["text_lengths"],
        video=batch["video"],
        video_lengths=batch["video_lengths"],
        utt_id=batch["utt_id"],
    )
    return loss, stats


def select(batch: Dict[str, Any], b: int) -> Dict[str, Any]:
    """Utterance b alone, with its padding removed."""
    n = int(batch["speech_lengths"][b])
    t = int(batch["video_lengths"][b])
    u = int(batch["text_lengths"][b])
    return dict(
        speech=batch["speech"][b : b + 1, :n],
        speech_lengths=batch["speech_lengths"][b : b + 1],
        text=batch["text"][b : b + 1, :u],
        text_lengths=batch["text_lengths"][b : b + 1],
        video=batch["video"][b : b + 1, :t],
        video_lengths=batch["video_lengths"][b : b + 1],
        utt_id=batch["utt_id"][b : b + 1],
    )


def param_names(model: torch.nn.Module) -> List[str]:
    return [n for n, _ in model.named_parameters()]
