"""Initialise a SMILE model from a fairseq AV-HuBERT checkpoint, without fairseq.

The checkpoint (``.pt``) is read by :func:`espnet2_smile.utils.checkpoint.load_checkpoint`:
its pickle is scanned first and loaded weights-only, so a file that names anything
but tensors, containers, numbers, strings and the allow-listed data types (fairseq's
legacy ``args`` is an ``argparse.Namespace``; its newer ``cfg`` is a plain dict) is
refused and no code from it runs. A checkpoint that names other types (e.g. an
OmegaConf object) is refused with the names, and so is a file in PyTorch's legacy
(pre-1.6, non-zip) format; re-save its ``"model"`` entry with
``torch.save({"model": ckpt["model"]}, path)`` in an environment that trusts it.

Weights are in ``ckpt["model"]``: a pretrained model's keys at top level, a fine-tuned
(seq2seq) model's encoder keys under ``encoder.w2v_model.`` (its ``decoder.*`` keys
are not used). Base (D=768, 12 layers, 12 heads, FFN 3072) and Large (D=1024, 24
layers, 16 heads, FFN 4096) differ only in sizes: any size is taken over when the
model's sizes agree.

What is initialised from what (model key <- checkpoint key; ``V`` =
``feature_extractor_video.resnet``; ``N`` = layer; ``k`` = trunk block
``sum(layers[:i]) + j`` for stage ``i``, block ``j``; ``D`` = model size):

- ``video_frontend.frontend3d.{0,1,2}.*`` <- ``V.frontend3D.{0,1,2}.*`` (Conv3d,
  BatchNorm3d with its running statistics, PReLU)
- ``video_frontend.trunk.k.{conv1,bn1,conv2,bn2,downsample.0,downsample.1}.*`` <-
  ``V.trunk.layer{i+1}.j.<same>.*``
- ``video_frontend.trunk.k.act{1,2}.weight`` <- ``V.trunk.layer{i+1}.j.relu{1,2}.weight``
  (PReLU slopes)
- ``encoder.audio_proj.*`` <- ``feature_extractor_audio.proj.*`` (Linear 104 -> D)
- ``encoder.video_proj.*`` <- ``feature_extractor_video.proj.*`` (Linear 512 -> D)
- channel layout: ``encoder.channel_norm.*`` <- ``layer_norm.*`` (LayerNorm over
  [audio; video], 2D) and ``encoder.channel_proj.*`` <- ``post_extract_proj.*``
  (Linear 2D -> D)
- temporal layout with ``modality_proj``: ``encoder.modality_norm.audio.*`` <-
  ``layer_norm.*[:D]``, ``encoder.modality_norm.video.*`` <- ``layer_norm.*[D:]``,
  ``encoder.modality_proj.audio.weight`` <- ``post_extract_proj.weight[:, :D]``,
  ``encoder.modality_proj.video.weight`` <- ``post_extract_proj.weight[:, D:]``, and
  both ``modality_proj.*.bias`` <- ``post_extract_proj.bias``
- ``encoder.conv_pos.conv.weight`` <- ``weight_g * weight_v / ||weight_v||`` of
  ``encoder.pos_conv.0`` (the norm over every axis where ``weight_g`` has size 1: per
  kernel tap for fairseq's ``weight_norm(dim=2)``; ``parametrizations.weight.original0``
  / ``original1`` or a plain ``weight`` are read too); ``encoder.conv_pos.conv.bias``
  <- ``encoder.pos_conv.0.bias``
- ``encoder.encoders.N.self_attn.linear_{q,k,v,out}.*`` <-
  ``encoder.layers.N.self_attn.{q,k,v,out}_proj.*`` (fairseq scales q by
  ``head_dim**-0.5``, ESPnet the scores: the same)
- ``encoder.encoders.N.norm1.*`` <- ``encoder.layers.N.self_attn_layer_norm.*``
- ``encoder.encoders.N.feed_forward.w_1.*`` / ``w_2.*`` <- ``encoder.layers.N.fc1.*`` /
  ``fc2.*``
- ``encoder.encoders.N.norm2.*`` <- ``encoder.layers.N.final_layer_norm.*``
- ``encoder.after_norm.*`` <- ``encoder.layer_norm.*``

Not initialised (they have no AV-HuBERT counterpart; listed in the log): the temporal
layout's ``adapters`` (they start as the identity, their output layer being zero) and
``modality_embed``, the final fusion, CTC, the decoder, and the audio normalisation
statistics. Not used (listed in the log): ``mask_emb``, ``final_proj.*``,
``label_embs_concat``, a fine-tuned model's ``decoder.*``, and every key whose
counterpart the model lacks (e.g. ``layer_norm``/``post_extract_proj`` in a temporal
layout without ``modality_proj``, ``pos_conv`` with ``pos_enc: sinusoidal``).

A model computes AV-HuBERT's encoder exactly (channel layout, eval mode, up to the
points below) with: video frontend ``channels: 64``, ``layers: [2, 2, 2, 2]``,
``trunk_activation: prelu``, ``crop_size: 88``, ``downsample: 1``; encoder
``layout: channel``, ``pos_enc: conv``, ``conv_pos_kernel: 128``,
``conv_pos_groups: 16``, ``input_scale: false``, ``ffn_activation: gelu``, AV-HuBERT's
``output_size``/``attention_heads``/``linear_units``/``num_blocks``, fusion ``last``.
Where it cannot:

- Layer norms: ESPnet's ``LayerNorm`` uses ``eps=1e-12``, fairseq's ``1e-5``; outputs
  differ only for vectors whose variance is not large against 1e-5.
- Layer-norm placement: the layers are pre-LN (``normalize_before``) with a final
  norm, which is AV-HuBERT's ``layer_norm_first: true`` (all released models). A
  post-LN checkpoint (``layer_norm_first: false``: norms after each residual sum and a
  norm *before* the first layer) loads, but computes something else; a warning says so.
- Audio features: the audio projection is taken over as is, but its input differs:
  AV-HuBERT reads ``python_speech_features.logfbank`` (pre-emphasis 0.97, rectangular
  window, HTK-style triangles from 0 Hz) normalised per frame by a parameter-free
  layer norm over the 104 dims, this model reads ``StackedFbankFrontend`` (Hann
  window, Slaney mel from ``fmin``, no pre-emphasis) after ESPnet's ``normalize``
  (global or utterance mean/variance). The stacking order (4 frames, frame-major) is
  the same. Fine-tuning has to adapt the audio projection to the new features.
- Temporal layout (SMILE): there is no exact counterpart of AV-HuBERT's channel fusion
  ``post_extract_proj(LN([a; v])) = W_a LN(.)_a + W_v LN(.)_v + b``: each modality's
  token takes its own half, ``W_m LN_m(m) + b``, with ``LN_m`` normalising over that
  modality's D channels (AV-HuBERT's norm takes its statistics over both halves). The
  adapters bridge the difference during fine-tuning.
- An audio-only channel layout (no video stream) takes the audio halves of
  ``layer_norm``/``post_extract_proj`` the same way.
- Only ``modality_fuse: concat`` checkpoints (all released ones) fit; an ``add`` one
  (a D-sized ``layer_norm``, no ``post_extract_proj``) fails the shape check.
- A ``target: ema`` Siamese objective's target encoder is not set here; it copies the
  online (initialised) encoder at the first training step.
"""

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch

from espnet2_smile.utils.checkpoint import CheckpointError, load_checkpoint

FINE_TUNED_PREFIX = "encoder.w2v_model."
"""Prefix of the encoder keys in a fine-tuned (seq2seq) AV-HuBERT checkpoint."""

_POS_CONV = "encoder.pos_conv.0."
_RESNET = "feature_extractor_video.resnet."

# model key suffix -> checkpoint key suffix inside one Transformer layer
_LAYER_KEYS = {
    "self_attn.linear_q.": "self_attn.q_proj.",
    "self_attn.linear_k.": "self_attn.k_proj.",
    "self_attn.linear_v.": "self_attn.v_proj.",
    "self_attn.linear_out.": "self_attn.out_proj.",
    "norm1.": "self_attn_layer_norm.",
    "norm2.": "final_layer_norm.",
    "feed_forward.w_1.": "fc1.",
    "feed_forward.w_2.": "fc2.",
}


@dataclass
class AVHubertInitReport:
    """What an initialisation did.

    Attributes:
        sources: Model state-dict key -> the checkpoint key(s) it was set from.
        unused: Checkpoint keys (full names, as in the file) not used.
        uninitialised: Model state-dict keys (parameters and buffers) not set.
        fine_tuned: Whether the checkpoint was a fine-tuned one (keys under
            ``encoder.w2v_model.``).
        warnings: Computations of the model that differ from AV-HuBERT's.
    """

    sources: Dict[str, Tuple[str, ...]] = field(default_factory=dict)
    unused: List[str] = field(default_factory=list)
    uninitialised: List[str] = field(default_factory=list)
    fine_tuned: bool = False
    warnings: List[str] = field(default_factory=list)


@dataclass
class _Rule:
    """How one model tensor is computed from checkpoint tensors.

    ``sources`` are checkpoint keys (encoder naming, without the fine-tuned prefix);
    ``shapes`` the shape each must have; ``make`` builds the model tensor from them.
    """

    sources: Tuple[str, ...]
    shapes: Tuple[Tuple[int, ...], ...]
    make: Callable[..., torch.Tensor]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def read_avhubert_checkpoint(
    path: Union[str, Path],
) -> Tuple[Dict[str, torch.Tensor], List[str], Dict[str, Any], bool]:
    """Read an AV-HuBERT checkpoint safely.

    Returns:
        ``(state, other_keys, config, fine_tuned)``: the encoder's tensors in
        pretrained naming (the fine-tuned prefix removed), the checkpoint's other
        ``model`` keys (full names), the model configuration as a plain dict (``{}``
        when the file has none), and whether the keys were under ``encoder.w2v_model.``.

    Raises:
        CheckpointError: refused or unreadable file, or no ``"model"`` dict of tensors.
    """
    ckpt = load_checkpoint(path, map_location="cpu")
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise CheckpointError(
            f"AV-HuBERT checkpoint {path}: expected a dict with a 'model' entry (fairseq's "
            f"layout), got {type(ckpt).__name__}"
            + (f" with keys {sorted(map(str, ckpt))[:10]}" if isinstance(ckpt, dict) else "")
        )
    model = ckpt["model"]
    bad = [k for k, v in model.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"AV-HuBERT checkpoint {path}: 'model' entries that are not tensors: {bad[:10]}"
        )
    fine_tuned = any(k.startswith(FINE_TUNED_PREFIX) for k in model)
    if fine_tuned:
        n = len(FINE_TUNED_PREFIX)
        state = {k[n:]: v for k, v in model.items() if k.startswith(FINE_TUNED_PREFIX)}
        others = sorted(k for k in model if not k.startswith(FINE_TUNED_PREFIX))
    else:
        state, others = dict(model), []
    config = ckpt.get("cfg") or ckpt.get("args") or {}
    return state, others, _plain(config), fine_tuned


def _plain(obj: Any) -> Any:
    """Namespaces -> dicts, recursively (fairseq's legacy ``args``)."""
    if isinstance(obj, argparse.Namespace):
        obj = vars(obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def _find(cfg: Any, key: str) -> Any:
    """First value of ``key`` in a nested config; the pretrained model's own config
    (``w2v_args`` of a fine-tuned checkpoint) is searched before the rest."""
    if not isinstance(cfg, dict):
        return None
    if "w2v_args" in cfg:
        found = _find(cfg["w2v_args"], key)
        if found is not None:
            return found
    if key in cfg:
        return cfg[key]
    for name, value in cfg.items():
        if name != "w2v_args":
            found = _find(value, key)
            if found is not None:
                return found
    return None


def _weight_norm_rule(state: Dict[str, torch.Tensor], shape: Tuple[int, ...]) -> Optional[_Rule]:
    """The effective convolution weight of fairseq's weight-normalised ``pos_conv``."""
    for g_key, v_key in (
        ("weight_g", "weight_v"),
        ("parametrizations.weight.original0", "parametrizations.weight.original1"),
    ):
        g_name, v_name = _POS_CONV + g_key, _POS_CONV + v_key
        if g_name in state and v_name in state:
            g, v = state[g_name], state[v_name]
            # g keeps v's size on the normalised-over axis (fairseq: dim=2, the kernel
            # taps), 1 elsewhere; the norm runs over the axes where g has size 1
            if g.dim() != v.dim() or any(gs not in (1, vs) for gs, vs in zip(g.shape, v.shape)):
                raise ValueError(
                    f"AV-HuBERT key {g_name} has shape {tuple(g.shape)}, which does not fit "
                    f"{v_name} of shape {tuple(v.shape)} (a weight-norm gain)"
                )
            dims = [d for d in range(v.dim()) if g.shape[d] == 1 and v.shape[d] != 1] or list(
                range(v.dim())
            )
            g_shape = tuple(g.shape)

            def make(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
                g, v = g.float(), v.float()
                return v * (g / v.norm(dim=dims, keepdim=True))

            return _Rule((g_name, v_name), (g_shape, shape), make)
    if _POS_CONV + "weight" in state:
        return _Rule((_POS_CONV + "weight",), (shape,), _identity)
    return None


def _half(index: int, size: int, axis: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Select channel half ``index`` (0: audio, 1: video) of size ``size`` on ``axis``."""

    def make(x: torch.Tensor) -> torch.Tensor:
        return x.narrow(axis, index * size, size)

    return make


def _encoder_rule(
    name: str, shape: Tuple[int, ...], encoder: Any, state: Dict[str, torch.Tensor]
) -> Optional[_Rule]:
    """Rule for the encoder's state-dict entry ``name`` (without ``encoder.``)."""
    d = encoder.output_size()
    for ours, theirs in (
        ("audio_proj.", "feature_extractor_audio.proj."),
        ("video_proj.", "feature_extractor_video.proj."),
        ("after_norm.", "encoder.layer_norm."),
    ):
        if name.startswith(ours):
            return _Rule((theirs + name[len(ours):],), (shape,), _identity)
    if name.startswith("encoders."):
        _, n, rest = name.split(".", 2)
        for ours, theirs in _LAYER_KEYS.items():
            if rest.startswith(ours):
                key = f"encoder.layers.{n}.{theirs}{rest[len(ours):]}"
                return _Rule((key,), (shape,), _identity)
        return None
    if name == "conv_pos.conv.weight":
        return _weight_norm_rule(state, shape)
    if name == "conv_pos.conv.bias":
        return _Rule((_POS_CONV + "bias",), (shape,), _identity)
    if name.startswith(("channel_norm.", "channel_proj.")):
        group, param = name.split(".", 1)
        key = ("layer_norm." if group == "channel_norm" else "post_extract_proj.") + param
        if encoder.has_video:
            return _Rule((key,), (shape,), _identity)
        # audio-only channel layout: the audio half
        return _half_rule(key, shape, 0, d)
    if name.startswith(("modality_norm.", "modality_proj.")):
        group, modality, param = name.split(".")
        half = 0 if modality == "audio" else 1
        key = ("layer_norm." if group == "modality_norm" else "post_extract_proj.") + param
        return _half_rule(key, shape, half, d)
    return None


def _half_rule(key: str, shape: Tuple[int, ...], half: int, d: int) -> _Rule:
    """A half of AV-HuBERT's 2D-channel ``layer_norm`` / ``post_extract_proj``."""
    if key == "post_extract_proj.bias":
        return _Rule((key,), (shape,), _identity)
    if key == "post_extract_proj.weight":
        # (D, 2D) -> (D, D): the columns that read modality ``half``
        return _Rule((key,), ((shape[0], 2 * d),), _half(half, d, 1))
    # layer_norm.{weight,bias}: (2D,) -> (D,)
    return _Rule((key,), ((2 * d,),), _half(half, d, 0))


def _video_frontend_rule(name: str, shape: Tuple[int, ...], frontend: Any) -> Optional[_Rule]:
    """Rule for the video frontend's state-dict entry ``name`` (without ``video_frontend.``)."""
    if name.startswith("frontend3d."):
        return _Rule((_RESNET + "frontend3D." + name[len("frontend3d."):],), (shape,), _identity)
    layers = getattr(frontend, "layers", None)
    if name.startswith("trunk.") and layers is not None:
        _, block, rest = name.split(".", 2)
        block = int(block)
        start = 0
        for stage, n_blocks in enumerate(layers):
            if block < start + n_blocks:
                head, _, tail = rest.partition(".")
                head = {"act1": "relu1", "act2": "relu2"}.get(head, head)
                key = f"{_RESNET}trunk.layer{stage + 1}.{block - start}.{head}.{tail}"
                return _Rule((key,), (shape,), _identity)
            start += n_blocks
    return None


def _compatibility_warnings(
    model: torch.nn.Module, state: Dict[str, torch.Tensor], cfg: Dict[str, Any]
) -> List[str]:
    """Computations of ``model`` that differ from the checkpoint's AV-HuBERT."""
    encoder = model.encoder
    out = []
    if _find(cfg, "layer_norm_first") is False:
        out.append(
            "the checkpoint is post-LN (layer_norm_first: false); the encoder's layers are "
            "pre-LN, so the loaded layers compute something else"
        )
    heads = _find(cfg, "encoder_attention_heads")
    ours = encoder.encoders[0].self_attn.h if len(encoder.encoders) else None
    if isinstance(heads, int) and ours is not None and heads != ours:
        out.append(f"the checkpoint's layers have {heads} attention heads, the encoder {ours}")
    act = _find(cfg, "activation_fn") or "gelu"
    if isinstance(act, str) and encoder.ffn_activation != act:
        out.append(
            f"the checkpoint's feed-forward activation is {act}, the encoder's "
            f"{encoder.ffn_activation} (encoder_conf ffn_activation)"
        )
    if encoder.xscale != 1.0:
        out.append("encoder_conf input_scale is true: AV-HuBERT does not scale its input")
    if encoder.conv_pos is None and any(k.startswith(_POS_CONV) for k in state):
        out.append(
            "encoder_conf pos_enc is sinusoidal: the convolutional position embedding is not used"
        )
    if encoder.layout == "temporal" and encoder.modality_proj is None:
        out.append(
            "temporal layout without encoder_conf modality_proj: AV-HuBERT's layer_norm and "
            "post_extract_proj are not used"
        )
    frontend = getattr(model, "video_frontend", None)
    if (
        frontend is not None
        and getattr(frontend, "trunk_activation", "prelu") != "prelu"
        and any(".relu1." in k for k in state)
    ):
        out.append(
            "the checkpoint's ResNet trunk has PReLU activations, the video frontend ReLU "
            "(video_frontend_conf trunk_activation: prelu)"
        )
    return out


def init_from_avhubert(model: torch.nn.Module, path: Union[str, Path]) -> AVHubertInitReport:
    """Set ``model``'s video frontend and encoder from an AV-HuBERT checkpoint.

    ``model`` has an ``encoder`` (:class:`SmileEncoder`) and optionally a
    ``video_frontend`` (:class:`ResNetVideoFrontend`), as ``ESPnetAVSRModel``. Every
    shape is checked before anything is copied, so a failed call leaves the model as
    it was. The checkpoint keys not used and the model entries not initialised are
    logged (warning level), with the checkpoint's differences from the model's
    computation.

    Raises:
        CheckpointError: refused or unreadable checkpoint.
        ValueError: a shape mismatch, naming the checkpoint key, the model key and
            both shapes.
    """
    state, others, cfg, fine_tuned = read_avhubert_checkpoint(path)
    prefix = FINE_TUNED_PREFIX if fine_tuned else ""
    target = model.state_dict()
    planned = plan_avhubert_init(model, state, prefix=prefix, source=str(path))

    report = AVHubertInitReport(fine_tuned=fine_tuned)
    with torch.no_grad():
        for name, (sources, value) in planned.items():
            target[name].copy_(value.to(target[name].dtype))
            report.sources[name] = tuple(prefix + k for k in sources)
    used = {k for sources, _ in planned.values() for k in sources}
    report.unused = sorted([prefix + k for k in state if k not in used] + others)
    report.uninitialised = [k for k in target if k not in planned]
    report.warnings = _compatibility_warnings(model, state, cfg)

    logging.info(
        f"AV-HuBERT initialisation from {path} ({'fine-tuned' if fine_tuned else 'pretrained'} "
        f"checkpoint): {len(planned)} model entries set from {len(used)} checkpoint keys"
    )
    if report.unused:
        logging.warning(
            f"AV-HuBERT checkpoint keys not used ({len(report.unused)}): {', '.join(report.unused)}"
        )
    if report.uninitialised:
        logging.warning(
            f"model entries not initialised from AV-HuBERT ({len(report.uninitialised)}): "
            f"{', '.join(report.uninitialised)}"
        )
    for line in report.warnings:
        logging.warning(f"AV-HuBERT initialisation: {line}")
    return report


def plan_avhubert_init(
    model: torch.nn.Module,
    state: Dict[str, torch.Tensor],
    prefix: str = "",
    source: str = "checkpoint",
) -> Dict[str, Tuple[Tuple[str, ...], torch.Tensor]]:
    """The model entries an AV-HuBERT state sets, with every shape checked.

    Works on meta tensors too (shapes only).

    Args:
        model: Has ``encoder`` and optionally ``video_frontend``.
        state: AV-HuBERT tensors in pretrained naming.
        prefix: Prefix of the keys in the file (for messages).
        source: The file (for messages).

    Returns:
        Model state-dict key -> (checkpoint keys used, the value to copy).

    Raises:
        ValueError: shape mismatches (the first ten), each naming the checkpoint key,
            the model key and both shapes.
    """
    encoder = model.encoder
    frontend = getattr(model, "video_frontend", None)
    planned: Dict[str, Tuple[Tuple[str, ...], torch.Tensor]] = {}
    mismatches: List[str] = []
    for name, tensor in model.state_dict().items():
        shape = tuple(tensor.shape)
        rule = None
        if name.startswith("encoder."):
            rule = _encoder_rule(name[len("encoder."):], shape, encoder, state)
        elif name.startswith("video_frontend.") and frontend is not None:
            rule = _video_frontend_rule(name[len("video_frontend."):], shape, frontend)
        if rule is None or not all(k in state for k in rule.sources):
            continue
        bad = [
            f"key {prefix}{key} has shape {tuple(state[key].shape)}, model entry {name} "
            f"(shape {shape}) needs {want}"
            for key, want in zip(rule.sources, rule.shapes)
            if tuple(state[key].shape) != want
        ]
        if bad:
            mismatches.extend(bad)
            continue
        value = rule.make(*(state[k] for k in rule.sources))
        if tuple(value.shape) != shape:  # a rule that does not produce the model's shape
            raise ValueError(
                f"AV-HuBERT checkpoint {source}: key(s) "
                f"{', '.join(prefix + k for k in rule.sources)} give shape "
                f"{tuple(value.shape)}, model entry {name} has {shape}"
            )
        planned[name] = (rule.sources, value)
    if mismatches:
        more = f" (and {len(mismatches) - 10} more)" if len(mismatches) > 10 else ""
        raise ValueError(
            f"AV-HuBERT checkpoint {source}: {len(mismatches)} shape mismatch(es): "
            + "; ".join(mismatches[:10])
            + more
        )
    return planned
