"""SMILE's adaptive dynamic multimodal fusion."""

from typing import Dict, List, Tuple

import torch
from typeguard import typechecked

from espnet2_smile.asr.fusion.abs_fusion import AbsFusion, check_streams


class AdaptiveDynamicFusion(AbsFusion):
    """Dynamic scaling of the video stream and learned layer weights.

    For each layer l with audio half ``A_l`` and video half ``V_l`` (B, T, D)::

        S_l = sigmoid(Linear_l([A_l ; V_l]))       (B, T, G), one value per group
        F_l = A_l + S_l (x) V_l                     (S_l repeated over D / G channels)
        H   = sum_l softmax(w)_l F_l

    The Linear layers start at zero, so S = 0.5 at initialisation, and w starts
    uniform.

    Args:
        size: Model dimension D.
        num_layers: Encoder layers L (one S_l per layer, len(w) = L).
        num_streams: Streams per layer output (must be 2).
        num_groups: Channel groups G sharing one scale (G must divide D; 1: one scale
            per frame, D: one per channel).
    """

    @typechecked
    def __init__(self, size: int, num_layers: int, num_streams: int, num_groups: int = 1):
        super().__init__()
        check_streams("adaptive", 2, num_streams)
        if num_groups < 1 or size % num_groups:
            raise ValueError(f"num_groups={num_groups} must divide size={size}")
        self.num_streams = num_streams
        self.num_layers = num_layers
        self.num_groups = num_groups
        self.scale = torch.nn.ModuleList(
            [torch.nn.Linear(2 * size, num_groups) for _ in range(num_layers)]
        )
        for lin in self.scale:
            torch.nn.init.zeros_(lin.weight)
            torch.nn.init.zeros_(lin.bias)
        self.layer_logits = torch.nn.Parameter(torch.zeros(num_layers))

    def layer_weights(self) -> torch.Tensor:
        """softmax(w): (L,)."""
        return torch.softmax(self.layer_logits, dim=0)

    def forward(
        self, layers: List[torch.Tensor], lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        assert len(layers) == self.num_layers, (len(layers), self.num_layers)
        weights = self.layer_weights()
        batch, _, time, size = layers[0].shape
        valid = (torch.arange(time, device=lengths.device)[None, :] < lengths[:, None])
        valid = valid.to(layers[0].dtype)  # (B, T)
        out = 0.0
        scale_sum = layers[0].new_zeros(())
        for l, h in enumerate(layers):
            a, v = h[:, 0], h[:, 1]  # (B, T, D) each
            s = torch.sigmoid(self.scale[l](torch.cat([a, v], dim=-1)))  # (B, T, G)
            # (B, T, G) -> (B, T, D)
            s_full = s.repeat_interleave(size // self.num_groups, dim=-1)
            out = out + weights[l] * (a + s_full * v)
            scale_sum = scale_sum + (s.mean(-1) * valid).sum() / valid.sum().clamp(min=1)
        stats = {"fusion_scale": (scale_sum / self.num_layers).detach()}
        for l in range(self.num_layers):
            stats[f"fusion_w{l + 1}"] = weights[l].detach()
        return out, stats
