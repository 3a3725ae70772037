"""A standard masked objective: predict the encoder's input features at masked frames."""

from typing import Dict, Optional, Tuple

import torch
from typeguard import typechecked

from espnet2_smile.asr.encoder.smile_encoder import SmileEncoder, StreamEncoderOutput
from espnet2_smile.asr.objective.abs_objective import AbsObjective
from espnet2_smile.asr.objective.heads import (
    build_head,
    check_loss,
    check_weights,
    masked_regression_loss,
)


class MaskedPredictionObjective(AbsObjective):
    """Single-branch masked modelling (the ``smile_mlm`` ablation).

    No target branch: the online last-layer output at masked frames predicts the
    unmasked pre-encoder (frontend) features of those frames, with no gradient into
    the target. With ``target_norm`` the targets are layer-normalised per frame
    (without affine), so the frontend cannot shrink the loss by shrinking features::

        L = alpha * L_mlm^audio + beta * L_mlm^video

    Args:
        size: Encoder dimension D.
        audio_size: Audio feature size (target dimension).
        video_size: Video feature size (0: no video stream).
        head: ``mlp``, ``linear`` or ``none``.
        head_units: Hidden units of the ``mlp`` head.
        loss: ``mse`` or ``cosine``.
        target_norm: Layer-normalise the targets.
        audio_weight: alpha.
        video_weight: beta.
    """

    @typechecked
    def __init__(
        self,
        size: int,
        audio_size: int,
        video_size: int,
        head: str = "mlp",
        head_units: int = 1024,
        loss: str = "mse",
        target_norm: bool = True,
        audio_weight: float = 1.0,
        video_weight: float = 1.0,
    ):
        super().__init__()
        check_loss(loss)
        check_weights(audio_weight, video_weight)
        self.loss = loss
        self.target_norm = target_norm
        self.weights = {"audio": audio_weight, "video": video_weight}
        heads = {"audio": build_head(head, size, audio_size, head_units)}
        if video_size > 0:
            heads["video"] = build_head(head, size, video_size, head_units)
        self.heads = torch.nn.ModuleDict(heads)

    def forward(
        self,
        encoder: SmileEncoder,
        online: StreamEncoderOutput,
        audio: torch.Tensor,
        video: Optional[torch.Tensor],
        lengths: torch.Tensor,
        audio_mask: torch.Tensor,
        video_mask: Optional[torch.Tensor],
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        total = audio.new_zeros(())
        stats = {}
        pairs = [("audio", online.audio, audio, audio_mask)]
        if video_mask is not None:
            if "video" not in self.heads:
                raise ValueError("MaskedPredictionObjective was built with video_size=0")
            pairs.append(("video", online.video, video, video_mask))
        for name, pred, feats, mask in pairs:
            tgt = feats.detach()
            if self.target_norm:
                tgt = torch.nn.functional.layer_norm(tgt, tgt.shape[-1:])
            term = masked_regression_loss(self.heads[name](pred), tgt, mask, self.loss)
            stats[f"loss_mlm_{name}"] = term.detach()
            total = total + self.weights[name] * term
        return total, stats
