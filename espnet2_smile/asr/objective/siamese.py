"""Siamese masked interaction learning: masked online branch vs unmasked target branch."""

import copy
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

TARGETS = ("stopgrad", "ema")


class SiameseObjective(AbsObjective):
    """Masked representation modelling (MRM) against a Siamese target branch.

    The online branch (the model's normal pass) sees masked inputs. The target branch
    sees the same utterance unmasked: the encoder (``stopgrad``: the same weights;
    ``ema``: an exponential moving average of them) runs under ``torch.no_grad()``
    and in eval mode on the frontend outputs the online branch computed before
    masking, so it costs one encoder pass and no backward. Per modality, a prediction
    head maps the online last-layer output at masked frames to the target's last-layer
    output at the same frames::

        L = alpha * L_mrm^audio + beta * L_mrm^video

    Args:
        size: Encoder dimension D.
        target: ``stopgrad`` or ``ema``.
        ema_decay: EMA decay per training step (``ema`` only).
        head: ``mlp``, ``linear`` or ``none``.
        head_units: Hidden units of the ``mlp`` head.
        loss: ``cosine`` or ``mse``.
        audio_weight: alpha.
        video_weight: beta.
    """

    @typechecked
    def __init__(
        self,
        size: int,
        target: str = "stopgrad",
        ema_decay: float = 0.999,
        head: str = "mlp",
        head_units: int = 1024,
        loss: str = "cosine",
        audio_weight: float = 1.0,
        video_weight: float = 1.0,
    ):
        super().__init__()
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        if not 0.0 <= ema_decay <= 1.0:
            raise ValueError(f"ema_decay must be in [0, 1], got {ema_decay}")
        check_loss(loss)
        check_weights(audio_weight, video_weight)
        self.target = target
        self.ema_decay = ema_decay
        self.loss = loss
        self.weights = {"audio": audio_weight, "video": video_weight}
        self.heads = torch.nn.ModuleDict(
            {m: build_head(head, size, size, head_units) for m in ("audio", "video")}
        )
        self.target_encoder: Optional[SmileEncoder] = None
        # False until the EMA copy has been synchronised with the online encoder
        self.register_buffer("ema_synced", torch.tensor(False))

    def attach(self, encoder: SmileEncoder) -> None:
        if self.target == "ema":
            self.target_encoder = copy.deepcopy(encoder)
            self.target_encoder.requires_grad_(False)

    @torch.no_grad()
    def update_ema(self, encoder: SmileEncoder) -> None:
        """target <- decay * target + (1 - decay) * online (a copy on the first call)."""
        online = dict(encoder.named_parameters())
        decay = self.ema_decay if bool(self.ema_synced) else 0.0
        for name, p_t in self.target_encoder.named_parameters():
            p_t.mul_(decay).add_(online[name].detach(), alpha=1.0 - decay)
        for (_, b_t), (_, b_o) in zip(self.target_encoder.named_buffers(), encoder.named_buffers()):
            b_t.copy_(b_o)
        self.ema_synced.fill_(True)

    @torch.no_grad()
    def _targets(
        self, encoder: SmileEncoder, audio, video, lengths
    ) -> StreamEncoderOutput:
        net = encoder if self.target == "stopgrad" else self.target_encoder
        was_training = net.training
        net.eval()
        try:
            return net.forward_streams(audio, video, lengths, fuse=False)
        finally:
            net.train(was_training)

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
        if self.target == "ema":
            if self.target_encoder is None:
                raise RuntimeError("SiameseObjective(target='ema') was never attached")
            if self.training:
                self.update_ema(encoder)
        target = self._targets(encoder, audio.detach(), None if video is None else video.detach(), lengths)
        total = audio.new_zeros(())
        stats = {}
        pairs = [("audio", online.audio, target.audio, audio_mask)]
        if video_mask is not None:
            pairs.append(("video", online.video, target.video, video_mask))
        for name, pred, tgt, mask in pairs:
            term = masked_regression_loss(self.heads[name](pred), tgt, mask, self.loss)
            stats[f"loss_mrm_{name}"] = term.detach()
            total = total + self.weights[name] * term
        return total, stats
