"""AV-HuBERT initialisation: key mapping, numerics, logging, shape errors, safety.

Checkpoints are built here from AV-HuBERT's documented key names and shapes (tiny
sizes for the numeric tests; Base and Large sizes as meta tensors, shapes only) and
saved as fairseq saves them: ``{"model": state, "cfg": dict}`` or the legacy
``{"model": state, "args": argparse.Namespace}``.
"""

import argparse
import logging
import os
import shlex
from typing import Dict, Optional, Sequence

import pytest
import torch
import torch.nn.functional as F

from espnet2_smile.asr.encoder.smile_encoder import SmileEncoder
from espnet2_smile.asr.frontend.resnet_video import ResNetVideoFrontend
from espnet2_smile.asr.pretrained.avhubert import (
    FINE_TUNED_PREFIX,
    init_from_avhubert,
    plan_avhubert_init,
)
from espnet2_smile.utils.checkpoint import CheckpointError
from helpers_model import build_model, forward, make_batch

close = torch.testing.assert_close
RESNET = "feature_extractor_video.resnet."
PRETRAINING_ONLY = ["final_proj.bias", "final_proj.weight", "label_embs_concat", "mask_emb"]

# toy sizes (the model side is set by TOY below)
D, FFN, HEADS, LAYERS, AUDIO_IN, CHANNELS, KERNEL, GROUPS = 32, 64, 4, 2, 40, 4, 8, 4
TRUNK = (2, 2, 2, 2)
TOY = dict(
    video_frontend_conf={"channels": CHANNELS, "layers": list(TRUNK), "trunk_activation": "prelu"},
    encoder_conf={
        "output_size": D,
        "attention_heads": HEADS,
        "linear_units": FFN,
        "num_blocks": LAYERS,
        "pos_enc": "conv",
        "conv_pos_kernel": KERNEL,
        "conv_pos_groups": GROUPS,
        "input_scale": False,
        "ffn_activation": "gelu",
        "dropout_rate": 0.0,
    },
)


def avhubert_state(
    d: int = D,
    ffn: int = FFN,
    layers: int = LAYERS,
    audio_in: int = AUDIO_IN,
    channels: int = CHANNELS,
    trunk: Sequence[int] = TRUNK,
    kernel: int = KERNEL,
    groups: int = GROUPS,
    final_dim: int = 16,
    classes: int = 24,
    meta: bool = False,
    seed: int = 0,
) -> Dict[str, torch.Tensor]:
    """An AV-HuBERT (pretrained) state dict with the documented names and shapes."""
    g = torch.Generator().manual_seed(seed)

    def t(*shape: int, scale: float = 0.2, offset: float = 0.0) -> torch.Tensor:
        if meta:
            return torch.empty(shape, device="meta")
        return offset + scale * torch.randn(shape, generator=g)

    s: Dict[str, torch.Tensor] = {}

    def linear(name: str, n_out: int, n_in: int) -> None:
        s[f"{name}.weight"] = t(n_out, n_in, scale=n_in**-0.5)
        s[f"{name}.bias"] = t(n_out, scale=0.1)

    def norm(name: str, n: int) -> None:
        s[f"{name}.weight"] = t(n, scale=0.1, offset=1.0)
        s[f"{name}.bias"] = t(n, scale=0.1)

    def bn(name: str, n: int) -> None:
        norm(name, n)
        s[f"{name}.running_mean"] = t(n, scale=0.1)
        s[f"{name}.running_var"] = t(n, scale=0.1, offset=1.0).abs()
        s[f"{name}.num_batches_tracked"] = (
            torch.empty((), dtype=torch.long, device="meta") if meta else torch.tensor(1234)
        )

    s[RESNET + "frontend3D.0.weight"] = t(channels, 1, 5, 7, 7)
    bn(RESNET + "frontend3D.1", channels)
    s[RESNET + "frontend3D.2.weight"] = t(channels, scale=0.05, offset=0.25)
    in_c = channels
    for i, n_blocks in enumerate(trunk):
        out_c = channels * 2**i
        for j in range(n_blocks):
            p = f"{RESNET}trunk.layer{i + 1}.{j}."
            s[p + "conv1.weight"] = t(out_c, in_c, 3, 3, scale=(9 * in_c) ** -0.5)
            bn(p + "bn1", out_c)
            s[p + "relu1.weight"] = t(out_c, scale=0.05, offset=0.25)
            s[p + "conv2.weight"] = t(out_c, out_c, 3, 3, scale=(9 * out_c) ** -0.5)
            bn(p + "bn2", out_c)
            s[p + "relu2.weight"] = t(out_c, scale=0.05, offset=0.25)
            if (i > 0 and j == 0) or in_c != out_c:
                s[p + "downsample.0.weight"] = t(out_c, in_c, 1, 1, scale=in_c**-0.5)
                bn(p + "downsample.1", out_c)
            in_c = out_c
    linear("feature_extractor_video.proj", d, in_c)
    linear("feature_extractor_audio.proj", d, audio_in)
    norm("layer_norm", 2 * d)
    linear("post_extract_proj", d, 2 * d)
    s["mask_emb"] = t(audio_in)
    # weight_norm(dim=2): one gain per kernel tap
    s["encoder.pos_conv.0.weight_g"] = t(1, 1, kernel, scale=0.2, offset=1.0)
    s["encoder.pos_conv.0.weight_v"] = t(d, d // groups, kernel)
    s["encoder.pos_conv.0.bias"] = t(d, scale=0.1)
    for n in range(layers):
        p = f"encoder.layers.{n}."
        for proj in ("q", "k", "v", "out"):
            linear(f"{p}self_attn.{proj}_proj", d, d)
        norm(p + "self_attn_layer_norm", d)
        linear(p + "fc1", ffn, d)
        linear(p + "fc2", d, ffn)
        norm(p + "final_layer_norm", d)
    norm("encoder.layer_norm", d)
    linear("final_proj", final_dim, d)
    s["label_embs_concat"] = t(classes, final_dim)
    return s


def model_config(**extra) -> dict:
    return {
        "encoder_attention_heads": HEADS, "layer_norm_first": True, "activation_fn": "gelu", **extra
    }


def save_fairseq(path, state, legacy_args: bool = False, config: Optional[dict] = None):
    """Save as fairseq does: hydra ``cfg`` (plain dict) or legacy ``args`` (Namespace)."""
    config = config if config is not None else model_config()
    ckpt = {"model": state, "optimizer_history": [], "extra_state": {"epoch": 3}}
    if legacy_args:
        ckpt["args"] = argparse.Namespace(arch="av_hubert", **config)
    else:
        ckpt["cfg"] = {
            "model": {"_name": "av_hubert", **config}, "task": {"modalities": ["audio", "video"]}
        }
        ckpt["args"] = None
    torch.save(ckpt, path)
    return path


@pytest.fixture(scope="module")
def ckpt_file(tmp_path_factory):
    state = avhubert_state()
    return save_fairseq(tmp_path_factory.mktemp("avh") / "base_tiny.pt", state), state


def effective_pos_conv(state, prefix=""):
    """fairseq's weight_norm(dim=2) weight, by PyTorch's own function."""
    return torch._weight_norm(
        state[prefix + "encoder.pos_conv.0.weight_v"], state[prefix + "encoder.pos_conv.0.weight_g"], 2
    )


def reference_encoder(state, audio, vfeats, lengths, eps=1e-12):
    """AV-HuBERT's encoder (layer_norm_first) written from the checkpoint tensors.

    ``eps`` is the layer norms' epsilon (fairseq: 1e-5; ESPnet's LayerNorm: 1e-12).
    """
    s = state
    valid = torch.arange(audio.size(1))[None, :] < lengths[:, None]  # (B, T)

    def lin(x, name):
        return F.linear(x, s[name + ".weight"], s[name + ".bias"])

    def ln(x, name):
        return F.layer_norm(x, x.shape[-1:], s[name + ".weight"], s[name + ".bias"], eps)

    x = torch.cat(
        [lin(audio, "feature_extractor_audio.proj"), lin(vfeats, "feature_extractor_video.proj")], -1
    )
    x = lin(ln(x, "layer_norm"), "post_extract_proj") * valid[..., None]
    conv = F.conv1d(
        x.transpose(1, 2), effective_pos_conv(s), s["encoder.pos_conv.0.bias"],
        padding=KERNEL // 2, groups=GROUPS,
    )[:, :, :-1]  # SamePad: even kernel
    x = x + F.gelu(conv).transpose(1, 2)
    b, t, d = x.shape
    hd = d // HEADS
    for n in range(LAYERS):
        p = f"encoder.layers.{n}."
        h = ln(x, p + "self_attn_layer_norm")
        q = lin(h, p + "self_attn.q_proj") * hd**-0.5
        k, v = lin(h, p + "self_attn.k_proj"), lin(h, p + "self_attn.v_proj")
        # (B, T, D) -> (B, H, T, hd)
        q, k, v = (z.view(b, t, HEADS, hd).transpose(1, 2) for z in (q, k, v))
        scores = (q @ k.transpose(-1, -2)).masked_fill(~valid[:, None, None, :], float("-inf"))
        att = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + lin(att, p + "self_attn.out_proj")
        h = ln(x, p + "final_layer_norm")
        x = x + lin(F.gelu(lin(h, p + "fc1")), p + "fc2")
    return ln(x, "encoder.layer_norm")


def test_channel_layout_maps_every_tensor_and_computes_avhubert(ckpt_file, caplog):
    path, state = ckpt_file
    before, _ = build_model("baseline", seed=0, **TOY)
    with caplog.at_level(logging.INFO):
        model, _ = build_model("baseline", seed=0, pretrained_avhubert=str(path), **TOY)

    # one attention projection, ResNet convolutions, PReLU slopes, BN statistics
    enc, vf = model.encoder, model.video_frontend
    close(
        enc.encoders[1].self_attn.linear_k.weight, state["encoder.layers.1.self_attn.k_proj.weight"]
    )
    close(enc.encoders[0].feed_forward.w_2.bias, state["encoder.layers.0.fc2.bias"])
    close(vf.frontend3d[0].weight, state[RESNET + "frontend3D.0.weight"])
    # trunk block 3 = stage 2 (layer2), block 1; block 4 = layer3.0 with its downsample
    close(vf.trunk[3].conv2.weight, state[RESNET + "trunk.layer2.1.conv2.weight"])
    close(
        vf.trunk[4].downsample[0].weight, state[RESNET + "trunk.layer3.0.downsample.0.weight"]
    )
    close(vf.trunk[7].act2.weight, state[RESNET + "trunk.layer4.1.relu2.weight"])
    close(vf.trunk[5].bn1.running_var, state[RESNET + "trunk.layer3.1.bn1.running_var"])
    assert int(vf.frontend3d[1].num_batches_tracked) == 1234
    # the position convolution's effective weight, g * v / ||v|| per kernel tap
    close(enc.conv_pos.conv.weight, effective_pos_conv(state))
    wn = torch.nn.utils.weight_norm(torch.nn.Conv1d(D, D, KERNEL, groups=GROUPS), dim=2)
    with torch.no_grad():
        wn.weight_g.copy_(state["encoder.pos_conv.0.weight_g"])
        wn.weight_v.copy_(state["encoder.pos_conv.0.weight_v"])
        wn(torch.zeros(1, D, KERNEL))  # recomputes .weight
    close(enc.conv_pos.conv.weight, wn.weight.detach())
    close(enc.channel_proj.weight, state["post_extract_proj.weight"])
    close(enc.channel_norm.bias, state["layer_norm.bias"])
    close(enc.after_norm.weight, state["encoder.layer_norm.weight"])

    # every model tensor of the encoder and video frontend is set; every other key is used
    log = caplog.text
    assert "AV-HuBERT checkpoint keys not used (4): " + ", ".join(PRETRAINING_ONLY) in log
    not_init = log.split("model entries not initialised from AV-HuBERT (")[1].splitlines()[0]
    names = not_init.split(": ", 1)[1].split(", ")
    assert names and all(n.startswith(("decoder.", "ctc.")) for n in names), names
    assert set(names) == {k for k in model.state_dict() if k.startswith(("decoder.", "ctc."))}
    assert "AV-HuBERT initialisation:" not in log  # no computation differences to report

    # the encoder computes AV-HuBERT's encoder (eval mode, ESPnet's LayerNorm epsilon)
    model.eval()
    before.eval()
    batch = make_batch(frames=(9, 6))
    lengths = torch.tensor([9, 6])
    audio = torch.randn(2, 9, AUDIO_IN, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        vfeats, _ = vf(batch["video"], lengths)
        ours = enc.forward_streams(audio, vfeats, lengths, fuse=False).audio
        ref = reference_encoder(state, audio, vfeats, lengths)
        old = before.encoder.forward_streams(audio, vfeats, lengths, fuse=False).audio
    for b, n in enumerate(lengths.tolist()):
        close(ours[b, :n], ref[b, :n], atol=1e-4, rtol=1e-4)
        assert (old[b, :n] - ref[b, :n]).abs().max() > 0.1
    # with fairseq's epsilon the difference stays small
    ref_fs = reference_encoder(state, audio, vfeats, lengths, eps=1e-5)
    assert (ours[0, :9] - ref_fs[0, :9]).abs().max() < 1e-2


def test_temporal_layout_takes_the_halves(ckpt_file, caplog):
    path, state = ckpt_file
    toy = {**TOY, "encoder_conf": {**TOY["encoder_conf"], "modality_proj": True}}
    with caplog.at_level(logging.WARNING):
        model, _ = build_model("smile", seed=0, pretrained_avhubert=str(path), **toy)
    enc = model.encoder
    close(enc.modality_norm["audio"].weight, state["layer_norm.weight"][:D])
    close(enc.modality_norm["video"].bias, state["layer_norm.bias"][D:])
    close(enc.modality_proj["audio"].weight, state["post_extract_proj.weight"][:, :D])
    close(enc.modality_proj["video"].weight, state["post_extract_proj.weight"][:, D:])
    close(enc.modality_proj["video"].bias, state["post_extract_proj.bias"])
    close(enc.audio_proj.weight, state["feature_extractor_audio.proj.weight"])
    close(
        enc.encoders[0].self_attn.linear_out.bias, state["encoder.layers.0.self_attn.out_proj.bias"]
    )
    not_init = caplog.text.split("not initialised from AV-HuBERT (")[1].splitlines()[0]
    assert "encoder.modality_embed" in not_init and "encoder.adapters.audio.up.weight" in not_init
    assert "encoder.encoders" not in not_init and "video_frontend." not in not_init
    assert "checkpoint keys not used (4)" in caplog.text

    # without modality_proj the fusion tensors are unused, and the log says why
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_model("smile", seed=0, pretrained_avhubert=str(path), **TOY)
    unused = caplog.text.split("AV-HuBERT checkpoint keys not used (")[1].splitlines()[0]
    assert "layer_norm.weight" in unused and "post_extract_proj.weight" in unused
    assert "temporal layout without encoder_conf modality_proj" in caplog.text


def test_fine_tuned_checkpoint_with_legacy_args(tmp_path, caplog):
    state = avhubert_state(seed=3)
    model_state = {FINE_TUNED_PREFIX + k: v for k, v in state.items() if k not in PRETRAINING_ONLY}
    model_state["decoder.embed_tokens.weight"] = torch.randn(10, D)
    model_state["decoder.layers.0.fc1.weight"] = torch.randn(FFN, D)
    path = save_fairseq(
        tmp_path / "ft.pt", model_state, legacy_args=True,
        config={"w2v_args": argparse.Namespace(**model_config()), "decoder_layers": 1},
    )
    model, _ = build_model("baseline", seed=0, **TOY)
    with caplog.at_level(logging.WARNING):
        report = init_from_avhubert(model, path)
    assert report.fine_tuned
    assert report.unused == ["decoder.embed_tokens.weight", "decoder.layers.0.fc1.weight"]
    assert report.sources["encoder.encoders.0.self_attn.linear_q.weight"] == (
        FINE_TUNED_PREFIX + "encoder.layers.0.self_attn.q_proj.weight",
    )
    close(
        model.encoder.encoders[0].self_attn.linear_q.weight,
        state["encoder.layers.0.self_attn.q_proj.weight"],
    )
    assert "decoder.embed_tokens.weight, decoder.layers.0.fc1.weight" in caplog.text
    assert report.warnings == []


def test_differences_from_avhubert_are_reported(tmp_path, caplog):
    path = save_fairseq(
        tmp_path / "postln.pt", avhubert_state(),
        config=model_config(layer_norm_first=False, encoder_attention_heads=2),
    )
    model, _ = build_model("baseline", seed=0, **{
        "video_frontend_conf": {**TOY["video_frontend_conf"], "trunk_activation": "relu"},
        "encoder_conf": {**TOY["encoder_conf"], "ffn_activation": "relu", "pos_enc": "sinusoidal"},
    })
    with caplog.at_level(logging.WARNING):
        report = init_from_avhubert(model, path)
    text = "\n".join(report.warnings)
    for expected in ("post-LN", "2 attention heads, the encoder 4", "activation is gelu",
                     "pos_enc is sinusoidal", "PReLU"):
        assert expected in text, text
    assert "encoder.pos_conv.0.weight_g" in report.unused
    assert f"{RESNET}trunk.layer1.0.relu1.weight" in report.unused
    assert "AV-HuBERT initialisation: the checkpoint is post-LN" in caplog.text


def test_shape_mismatch_names_the_key_and_leaves_the_model(tmp_path):
    state = avhubert_state()
    state["encoder.layers.1.fc1.weight"] = torch.randn(FFN + 1, D)
    path = save_fairseq(tmp_path / "bad.pt", state)
    model, _ = build_model("baseline", seed=0, **TOY)
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as err:
        init_from_avhubert(model, path)
    msg = str(err.value)
    assert "encoder.layers.1.fc1.weight" in msg and "encoder.encoders.1.feed_forward.w_1.weight" in msg
    assert f"({FFN + 1}, {D})" in msg and f"({FFN}, {D})" in msg
    assert all(torch.equal(v, snapshot[k]) for k, v in model.state_dict().items())

    # a video frontend narrower than the checkpoint's ResNet
    path = save_fairseq(tmp_path / "wide.pt", avhubert_state(channels=8))
    with pytest.raises(ValueError, match=r"frontend3D\.0\.weight has shape \(8, 1, 5, 7, 7\)"):
        build_model("baseline", seed=0, pretrained_avhubert=str(path), **TOY)


def test_malicious_pickle_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {shlex.quote(str(marker))}",)

    path = tmp_path / "evil.pt"
    torch.save({"model": avhubert_state(), "args": Payload()}, path)
    model, _ = build_model("baseline", seed=0, **TOY)
    with pytest.raises(CheckpointError, match="system"):
        init_from_avhubert(model, path)
    with pytest.raises(CheckpointError, match="refused"):
        build_model("baseline", seed=0, pretrained_avhubert=str(path), **TOY)
    assert not marker.exists()


def test_task_option_and_decoding_build(ckpt_file, tmp_path):
    from espnet2_smile.tasks.avsr import AVSRTask

    path, _ = ckpt_file
    args = AVSRTask.get_parser().parse_args(["--token_list", "x", "--pretrained_avhubert", str(path)])
    assert args.pretrained_avhubert == str(path)
    # collect_stats mode builds the model without reading the checkpoint
    model, _ = build_model("baseline", seed=0, pretrained_avhubert=str(tmp_path / "absent.pt"),
                           collect_stats=True, **TOY)
    assert model is not None


@pytest.mark.parametrize(
    "d, ffn, layers, heads", [(768, 3072, 12, 12), (1024, 4096, 24, 16)], ids=["base", "large"]
)
def test_real_sizes_shapes_only(d, ffn, layers, heads):
    """AV-HuBERT Base / Large shapes map onto the paper-sized model (meta tensors)."""
    state = avhubert_state(
        d=d, ffn=ffn, layers=layers, audio_in=104, channels=64, kernel=128, groups=16,
        final_dim=256, classes=2004, meta=True,
    )
    holder = torch.nn.Module()
    with torch.device("meta"):
        holder.video_frontend = ResNetVideoFrontend(trunk_activation="prelu")
        holder.encoder = SmileEncoder(
            104, holder.video_frontend.output_size(), output_size=d, attention_heads=heads,
            linear_units=ffn, num_blocks=layers, layout="channel", pos_enc="conv",
            ffn_activation="gelu",
        )
    planned = plan_avhubert_init(holder, state)
    assert set(planned) == set(holder.state_dict())
    used = {k for sources, _ in planned.values() for k in sources}
    assert sorted(set(state) - used) == PRETRAINING_ONLY
    assert planned["encoder.conv_pos.conv.weight"][1].shape == (d, d // 16, 128)
    assert planned["video_frontend.trunk.6.conv1.weight"][0] == (RESNET + "trunk.layer4.0.conv1.weight",)
    # the toy-sized model refuses the real sizes, naming the key
    with pytest.raises(ValueError, match="feature_extractor_audio.proj.weight has shape"):
        small = torch.nn.Module()
        with torch.device("meta"):
            small.encoder = SmileEncoder(104, 512, output_size=256, attention_heads=4)
        plan_avhubert_init(small, state)


def test_freeze_then_finetune(ckpt_file, caplog):
    """Parameters set from AV-HuBERT stay fixed for freeze_finetune_updates x accum_grad
    steps while the new parts train; then they train too, and the count is a buffer."""
    path, _ = ckpt_file
    toy = {**TOY, "model_conf": {"freeze_finetune_updates": 2}, "accum_grad": 1}
    model, args = build_model("baseline", seed=0, pretrained_avhubert=str(path), **toy)
    model.train()
    frozen = set(model._frozen_names)
    assert any(n.startswith("video_frontend.") for n in frozen)
    assert any(n.startswith("encoder.encoders.0.") for n in frozen)
    assert not any(n.startswith(("decoder.", "ctc.")) for n in frozen)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-3)
    batch = make_batch()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    with caplog.at_level(logging.INFO):
        for _ in range(2):
            opt.zero_grad()
            loss, _ = forward(model, batch)
            loss.backward()
            opt.step()
    params = dict(model.named_parameters())
    for name in frozen:
        assert torch.equal(params[name], start[name]), name
    assert not torch.equal(params["decoder.output_layer.weight"], start["decoder.output_layer.weight"])
    assert int(model.num_updates) == 2 and "num_updates" in model.state_dict()
    # third step: the freeze is over
    with caplog.at_level(logging.INFO):
        opt.zero_grad()
        loss, _ = forward(model, batch)
        loss.backward()
        opt.step()
    name = sorted(n for n in frozen if n.startswith("encoder.encoders.0."))[0]
    assert not torch.equal(params[name], start[name])
    assert "all parameters train from now on" in caplog.text
    # a resumed run continues the count: loading the state past the freeze trains everything
    resumed, _ = build_model("baseline", seed=0, pretrained_avhubert=str(path), **toy)
    resumed.load_state_dict(model.state_dict())
    resumed.train()
    forward(resumed, batch)[0].backward()
    assert dict(resumed.named_parameters())[name].grad is not None


def test_freeze_counts_accum_grad_and_rejects_negative(ckpt_file):
    path, _ = ckpt_file
    model, _ = build_model("baseline", seed=0, pretrained_avhubert=str(path),
                           **{**TOY, "model_conf": {"freeze_finetune_updates": 3}, "accum_grad": 4})
    assert model._freeze_steps == 12
    with pytest.raises(ValueError, match="freeze_finetune_updates must be >= 0"):
        build_model("baseline", seed=0, **{**TOY, "model_conf": {"freeze_finetune_updates": -1}})
