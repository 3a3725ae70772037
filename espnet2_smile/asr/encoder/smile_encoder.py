"""SMILE's fused audio-visual encoder.

Early fusion (``channel`` as in AV-HuBERT, or ``temporal`` with an AV adapter),
pre-LN mix-attention Transformer layers, and a final fusion module (adaptive dynamic
fusion, concatenation, or the last layer) that turns the per-layer outputs into one
``(B, T, D)`` sequence for CTC and the attention decoder.
"""

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet.nets.pytorch_backend.transformer.attention import MultiHeadedAttention
from espnet.nets.pytorch_backend.transformer.encoder_layer import EncoderLayer
from espnet.nets.pytorch_backend.transformer.layer_norm import LayerNorm
from espnet.nets.pytorch_backend.transformer.positionwise_feed_forward import (
    PositionwiseFeedForward,
)
from typeguard import typechecked

from espnet2_smile.asr.fusion.abs_fusion import AbsFusion

LAYOUTS = ("channel", "temporal")
ATTENTIONS = ("mix", "intra")
POS_ENCS = ("sinusoidal", "conv")
FFN_ACTIVATIONS = {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU}


@dataclass
class StreamEncoderOutput:
    """What one encoder pass produces.

    Attributes:
        out: Fused output (B, T, D) (None when the pass skipped the final fusion).
        lengths: Valid frames (B,).
        audio: Last layer, audio half after the final norm (B, T, D). In the channel
            layout there is one stream, and ``audio`` and ``video`` are that stream.
        video: Last layer, video half after the final norm (B, T, D).
        stats: Diagnostics of the final fusion (scalars).
    """

    out: Optional[torch.Tensor]
    lengths: torch.Tensor
    audio: torch.Tensor
    video: torch.Tensor
    stats: Dict[str, torch.Tensor] = field(default_factory=dict)


class ResidualAdapter(torch.nn.Module):
    """Residual bottleneck MLP: x + W2 gelu(W1 LN(x)); W2 starts at zero (identity)."""

    def __init__(self, size: int, units: int):
        super().__init__()
        self.norm = LayerNorm(size)
        self.down = torch.nn.Linear(size, units)
        self.up = torch.nn.Linear(units, size)
        torch.nn.init.zeros_(self.up.weight)
        torch.nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(torch.nn.functional.gelu(self.down(self.norm(x))))


class ConvPositionalEmbedding(torch.nn.Module):
    """Convolutional relative position embedding (wav2vec 2.0 / AV-HuBERT style).

    Padding frames must be zero on input; an even kernel drops the last output frame
    so that the output keeps the input length.
    """

    def __init__(self, size: int, kernel: int, groups: int):
        super().__init__()
        if size % groups:
            raise ValueError(f"conv_pos_groups={groups} must divide output_size={size}")
        self.kernel = kernel
        self.conv = torch.nn.Conv1d(size, size, kernel, padding=kernel // 2, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, T, D) -> (B, D, T) -> conv -> (B, T, D)
        y = self.conv(x.transpose(1, 2))
        if self.kernel % 2 == 0:
            y = y[:, :, :-1]
        return torch.nn.functional.gelu(y).transpose(1, 2)


class SmileEncoder(AbsEncoder):
    """Audio-visual Transformer encoder with SMILE's early and final fusion.

    ``layout``:
        - ``channel``: AV-HuBERT's fusion: per-modality projections to D,
          concatenation on channels (B, T, 2D), LayerNorm, Linear 2D -> D. One stream.
          With ``video_input_size=0`` this is an audio-only encoder.
        - ``temporal``: SMILE's fusion: per-modality projections to D and a residual
          bottleneck adapter per modality, plus a modality embedding; the layers see
          ``a_1..a_T, v_1..v_T`` (B, 2T, D), and ``a_t`` and ``v_t`` share the
          position embedding of time t. Two streams.
    ``attention``: ``mix`` (full attention over all tokens) or ``intra`` (tokens attend
    within their own modality only; a diagnostic).

    Every layer output goes through the shared final LayerNorm and is handed, split
    into streams (B, S, T, D), to ``fusion`` (set by :meth:`set_fusion`), which
    returns the encoder output (B, T, D).

    Args:
        input_size: Audio feature size (the audio frontend's output size).
        video_input_size: Video feature size (0: no video stream).
        output_size: Model dimension D.
        attention_heads: Attention heads.
        linear_units: Feed-forward hidden units.
        num_blocks: Transformer layers L.
        dropout_rate: Dropout in the layers and on the input embeddings.
        attention_dropout_rate: Dropout on attention weights.
        layout: ``channel`` or ``temporal``.
        attention: ``mix`` or ``intra``.
        pos_enc: ``sinusoidal`` (absolute, by time index) or ``conv``
            (convolutional, applied to each stream with shared weights).
        conv_pos_kernel: Kernel of the convolutional position embedding.
        conv_pos_groups: Groups of the convolutional position embedding.
        adapter_units: Bottleneck units of the AV adapter (temporal layout; 0: none).
        input_scale: Multiply the projected features by sqrt(D) before the position
            embedding is added (as ESPnet's Transformer embeddings do), so that the
            content, not the position table, dominates the first layer's input.
        ffn_activation: Activation of the feed-forward blocks, ``relu`` or ``gelu``
            (AV-HuBERT: ``gelu``).
        modality_proj: Temporal layout only: after each modality's projection, a
            per-modality LayerNorm(D) and Linear(D, D) (``modality_norm``,
            ``modality_proj``), the per-modality counterpart of the channel layout's
            ``channel_norm``/``channel_proj``; an AV-HuBERT checkpoint initialises
            them from the two halves of its ``layer_norm``/``post_extract_proj``.
    """

    @typechecked
    def __init__(
        self,
        input_size: int,
        video_input_size: int,
        output_size: int = 256,
        attention_heads: int = 4,
        linear_units: int = 1024,
        num_blocks: int = 6,
        dropout_rate: float = 0.1,
        attention_dropout_rate: float = 0.0,
        layout: str = "temporal",
        attention: str = "mix",
        pos_enc: str = "sinusoidal",
        conv_pos_kernel: int = 128,
        conv_pos_groups: int = 16,
        adapter_units: int = 64,
        input_scale: bool = False,
        ffn_activation: str = "relu",
        modality_proj: bool = False,
    ):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        if pos_enc not in POS_ENCS:
            raise ValueError(f"pos_enc must be one of {POS_ENCS}, got {pos_enc!r}")
        if ffn_activation not in FFN_ACTIVATIONS:
            raise ValueError(
                f"ffn_activation must be one of {tuple(FFN_ACTIVATIONS)}, got {ffn_activation!r}"
            )
        if modality_proj and layout != "temporal":
            raise ValueError("modality_proj needs layout 'temporal'")
        if input_size < 1:
            raise ValueError(f"input_size must be positive, got {input_size}")
        if video_input_size < 0:
            raise ValueError(f"video_input_size must be >= 0, got {video_input_size}")
        if layout == "temporal" and video_input_size == 0:
            raise ValueError(
                "layout 'temporal' needs a video stream (video_input_size > 0); "
                "use layout 'channel' for an audio-only encoder"
            )
        if attention == "intra" and layout != "temporal":
            raise ValueError("attention 'intra' needs layout 'temporal'")
        if output_size % attention_heads:
            raise ValueError(
                f"attention_heads={attention_heads} must divide output_size={output_size}"
            )
        self._output_size = output_size
        self.layout = layout
        self.attention = attention
        self.ffn_activation = ffn_activation
        self.num_blocks = num_blocks
        self.has_video = video_input_size > 0
        self.num_streams = 2 if layout == "temporal" else 1

        self.audio_proj = torch.nn.Linear(input_size, output_size)
        self.video_proj = (
            torch.nn.Linear(video_input_size, output_size) if self.has_video else None
        )
        if layout == "channel":
            n_in = output_size * (2 if self.has_video else 1)
            self.channel_norm = LayerNorm(n_in)
            self.channel_proj = torch.nn.Linear(n_in, output_size)
            self.adapters = None
            self.modality_embed = None
            self.modality_norm = None
            self.modality_proj = None
        else:
            self.modality_norm = (
                torch.nn.ModuleDict({m: LayerNorm(output_size) for m in ("audio", "video")})
                if modality_proj
                else None
            )
            self.modality_proj = (
                torch.nn.ModuleDict(
                    {m: torch.nn.Linear(output_size, output_size) for m in ("audio", "video")}
                )
                if modality_proj
                else None
            )
            self.adapters = torch.nn.ModuleDict(
                {
                    m: ResidualAdapter(output_size, adapter_units)
                    if adapter_units > 0
                    else torch.nn.Identity()
                    for m in ("audio", "video")
                }
            )
            # (2, D): row 0 audio, row 1 video
            self.modality_embed = torch.nn.Parameter(torch.randn(2, output_size) * 0.02)
        self.conv_pos = (
            ConvPositionalEmbedding(output_size, conv_pos_kernel, conv_pos_groups)
            if pos_enc == "conv"
            else None
        )
        self.input_dropout = torch.nn.Dropout(dropout_rate)
        self.xscale = math.sqrt(output_size) if input_scale else 1.0
        self.encoders = torch.nn.ModuleList(
            [
                EncoderLayer(
                    output_size,
                    MultiHeadedAttention(attention_heads, output_size, attention_dropout_rate),
                    PositionwiseFeedForward(
                        output_size, linear_units, dropout_rate, FFN_ACTIVATIONS[ffn_activation]()
                    ),
                    dropout_rate,
                    normalize_before=True,
                )
                for _ in range(num_blocks)
            ]
        )
        self.after_norm = LayerNorm(output_size)
        self.fusion: Optional[AbsFusion] = None

    def output_size(self) -> int:
        return self._output_size

    def set_fusion(self, fusion: AbsFusion) -> None:
        """Attach the final fusion module; its stream count must match the layout."""
        if fusion.num_streams != self.num_streams:
            raise ValueError(
                f"fusion {type(fusion).__name__} expects {fusion.num_streams} stream(s), "
                f"but encoder layout {self.layout!r} gives {self.num_streams}"
            )
        if fusion.num_layers != self.num_blocks:
            raise ValueError(
                f"fusion {type(fusion).__name__} was built for {fusion.num_layers} "
                f"layers, the encoder has {self.num_blocks}"
            )
        self.fusion = fusion

    def _sinusoid(self, time: int, device, dtype) -> torch.Tensor:
        """(T, D) absolute sinusoidal position table."""
        d = self._output_size
        pos = torch.arange(time, device=device, dtype=torch.float32)[:, None]
        div = torch.exp(
            torch.arange(0, d, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / d)
        )
        table = torch.zeros(time, d, device=device)
        table[:, 0::2] = torch.sin(pos * div)
        table[:, 1::2] = torch.cos(pos * div[: d // 2])
        return table.to(dtype)

    def _add_position(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Add the position embedding by time index to one stream (B, T, D)."""
        x = x * valid.unsqueeze(-1).to(x.dtype)
        if self.conv_pos is None:
            return x + self._sinusoid(x.size(1), x.device, x.dtype)[None]
        return x + self.conv_pos(x)

    def embed(
        self, audio: torch.Tensor, video: Optional[torch.Tensor], lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Early fusion: features -> layer input tokens and their attention mask.

        Args:
            audio: (B, T, input_size); video: (B, T, video_input_size) or None.
            lengths: (B,) valid frames, the same for both streams.

        Returns:
            tokens (B, S*T, D) and mask (B, 1, S*T) or (B, S*T, S*T) (True = attend).
        """
        batch, time = audio.shape[:2]
        if self.has_video:
            assert video is not None and video.shape[:2] == (batch, time), (
                "audio and video must be aligned: "
                f"{tuple(audio.shape)} vs {None if video is None else tuple(video.shape)}"
            )
        valid = torch.arange(time, device=audio.device)[None, :] < lengths[:, None]  # (B, T)
        a = self.audio_proj(audio)
        if self.layout == "channel":
            x = a if not self.has_video else torch.cat([a, self.video_proj(video)], dim=-1)
            # (B, T, S*D) -> (B, T, D)
            x = self.channel_proj(self.channel_norm(x)) * self.xscale
            x = self._add_position(x, valid)
            mask = valid.unsqueeze(1)  # (B, 1, T)
        else:
            v = self.video_proj(video)
            if self.modality_proj is not None:
                # per modality: (B, T, D) -> LayerNorm -> Linear -> (B, T, D)
                a = self.modality_proj["audio"](self.modality_norm["audio"](a))
                v = self.modality_proj["video"](self.modality_norm["video"](v))
            a = a * self.xscale
            v = v * self.xscale
            a = self.adapters["audio"](a) + self.modality_embed[0]
            v = self.adapters["video"](v) + self.modality_embed[1]
            a = self._add_position(a, valid)
            v = self._add_position(v, valid)
            # (B, T, D) x2 -> (B, 2T, D): a_1..a_T, v_1..v_T
            x = torch.cat([a, v], dim=1)
            keys = torch.cat([valid, valid], dim=1)  # (B, 2T)
            if self.attention == "mix":
                mask = keys.unsqueeze(1)  # (B, 1, 2T)
            else:
                half = torch.arange(2 * time, device=x.device) >= time  # (2T,)
                same = half[:, None] == half[None, :]  # (2T, 2T)
                mask = same[None] & keys[:, None, :]  # (B, 2T, 2T)
        return self.input_dropout(x), mask

    def forward_streams(
        self,
        audio: torch.Tensor,
        video: Optional[torch.Tensor],
        lengths: torch.Tensor,
        fuse: bool = True,
    ) -> StreamEncoderOutput:
        """Encode aligned audio and video features.

        Args:
            audio: (B, T, input_size) audio features.
            video: (B, T, video_input_size) video features, or None without video.
            lengths: (B,) valid frames.
            fuse: Run the final fusion (False: only the last layer's streams).

        Returns:
            A :class:`StreamEncoderOutput`.
        """
        if fuse and self.fusion is None:
            raise RuntimeError("SmileEncoder has no fusion module: call set_fusion()")
        x, mask = self.embed(audio, video, lengths)
        batch, time = audio.shape[:2]
        layers: List[torch.Tensor] = []
        for layer in self.encoders:
            x, _ = layer(x, mask)
            if fuse or len(layers) == self.num_blocks - 1:
                # (B, S*T, D) -> (B, S, T, D)
                layers.append(self.after_norm(x).view(batch, self.num_streams, time, -1))
            else:
                layers.append(None)
        last = layers[-1]
        out, stats = None, {}
        if fuse:
            out, stats = self.fusion(layers, lengths)
        return StreamEncoderOutput(
            out=out, lengths=lengths, audio=last[:, 0], video=last[:, -1], stats=stats
        )

    def split_input(self, xs_pad: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(B, T, input_size + video_input_size) -> audio (B, T, Da), video (B, T, Dv)."""
        n_audio = self.audio_proj.in_features
        n_video = self.video_proj.in_features if self.has_video else 0
        assert xs_pad.size(-1) == n_audio + n_video, (
            f"expected {n_audio}+{n_video} channels, got {tuple(xs_pad.shape)}"
        )
        return xs_pad[..., :n_audio], (xs_pad[..., n_audio:] if self.has_video else None)

    def forward(
        self,
        xs_pad: torch.Tensor,
        ilens: torch.Tensor,
        prev_states: torch.Tensor = None,
    ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """ESPnet encoder interface.

        Args:
            xs_pad: Aligned audio and video features concatenated on channels,
                (B, T, input_size + video_input_size).
            ilens: (B,) valid frames.
            prev_states: Unused.

        Returns:
            Fused output (B, T, D), lengths (B,), None.
        """
        audio, video = self.split_input(xs_pad)
        enc = self.forward_streams(audio, video, ilens)
        return enc.out, enc.lengths, None
