"""Prediction heads and losses shared by the masked objectives."""

import torch

HEADS = ("mlp", "linear", "none")
LOSSES = ("cosine", "mse")


def build_head(kind: str, in_size: int, out_size: int, units: int) -> torch.nn.Module:
    """``mlp``: Linear-GELU-Linear; ``linear``; ``none`` (identity, sizes must match)."""
    if units < 1:
        raise ValueError(f"head_units must be positive, got {units}")
    if kind == "mlp":
        return torch.nn.Sequential(
            torch.nn.Linear(in_size, units), torch.nn.GELU(), torch.nn.Linear(units, out_size)
        )
    if kind == "linear":
        return torch.nn.Linear(in_size, out_size)
    if kind == "none":
        if in_size != out_size:
            raise ValueError(
                f"head 'none' needs equal sizes, got encoder {in_size} -> target {out_size}"
            )
        return torch.nn.Identity()
    raise ValueError(f"head must be one of {HEADS}, got {kind!r}")


def check_loss(kind: str) -> None:
    if kind not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")


def check_weights(audio_weight: float, video_weight: float) -> None:
    """The loss weights alpha (audio) and beta (video) must be finite and >= 0."""
    for name, w in (("audio_weight", audio_weight), ("video_weight", video_weight)):
        if not 0.0 <= w < float("inf"):
            raise ValueError(f"{name} must be a finite value >= 0, got {w}")


def masked_regression_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, kind: str
) -> torch.Tensor:
    """Mean loss over masked frames.

    ``cosine``: 1 - cos(pred, target) (the negative cosine similarity shifted by 1,
    so the loss is 0 at a perfect prediction); ``mse``: mean squared error per frame.
    With no masked frame the loss is a zero that keeps the graph connected.

    Args:
        pred: (B, T, D); target: (B, T, D), no gradient; mask: (B, T) bool.
    """
    if not bool(mask.any()):
        return pred.sum() * 0.0
    p, t = pred[mask], target[mask]  # (N, D)
    if kind == "cosine":
        return (1.0 - torch.nn.functional.cosine_similarity(p, t, dim=-1, eps=1e-6)).mean()
    return (p - t).pow(2).mean(-1).mean()
