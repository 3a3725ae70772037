"""ESPnetAVSRModel built through AVSRTask.build_model from each variant config."""

import sys
from pathlib import Path

import pytest
import torch
import yaml

from espnet2_smile.asr.objective.heads import masked_regression_loss
from espnet2_smile.tasks.avsr import AVSRTask

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers_model import (  # noqa: E402
    VARIANTS,
    build_model,
    forward,
    make_args,
    make_batch,
    select,
    toy_config,
)

AUX_KEYS = {
    "smile": {"loss_mrm_audio", "loss_mrm_video"},
    "smile_nofusion": {"loss_mrm_audio", "loss_mrm_video"},
    "smile_nosiamese": set(),
    "smile_mlm": {"loss_mlm_audio", "loss_mlm_video"},
    "baseline": set(),
    "audio_only": set(),
}
MASKED = {"smile", "smile_nofusion", "smile_nosiamese", "smile_mlm"}
ADAPTIVE = {"smile", "smile_nosiamese", "smile_mlm"}


def _encode(model, batch, **kw):
    return model.encode(
        batch["speech"], batch["speech_lengths"], batch["video"], batch["video_lengths"], **kw
    )


# --------------------------------------------------------------------- structure and stats
@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_components_and_loss_terms(variant):
    model, _ = build_model(variant)
    assert (model.video_frontend is None) == (variant == "audio_only")
    assert (model.masking is not None) == (variant in MASKED)
    assert (model.objective is not None) == bool(AUX_KEYS[variant])
    expected_layout = "channel" if variant in ("baseline", "audio_only") else "temporal"
    assert model.encoder.layout == expected_layout
    batch = make_batch()
    model.train()
    torch.manual_seed(0)
    loss, stats = forward(model, batch)
    assert loss.numel() == 1 and torch.isfinite(loss).all() and loss.requires_grad
    keys = set(stats)
    assert {"loss", "loss_asr", "loss_ctc", "loss_att"} <= keys
    all_aux = {"loss_mrm_audio", "loss_mrm_video", "loss_mlm_audio", "loss_mlm_video"}
    assert keys & all_aux == AUX_KEYS[variant]
    assert ("loss_aux" in keys) == bool(AUX_KEYS[variant])
    mask_keys = {"mask_rate_audio", "mask_rate_video"}
    assert keys & mask_keys == (mask_keys if variant in MASKED else set())
    assert ("fusion_scale" in keys) == (variant in ADAPTIVE)
    if AUX_KEYS[variant]:
        total = stats["loss_asr"] + stats["loss_aux"]
        torch.testing.assert_close(stats["loss"], total)
        assert float(stats["loss_aux"]) > 0
        # loss_aux = alpha * L^audio + beta * L^video
        w = model.objective.weights
        a_key, v_key = sorted(AUX_KEYS[variant])
        torch.testing.assert_close(
            stats["loss_aux"], w["audio"] * stats[a_key] + w["video"] * stats[v_key]
        )
    else:
        torch.testing.assert_close(stats["loss"], stats["loss_asr"])
    ctc_w = model.ctc_weight
    torch.testing.assert_close(
        stats["loss_asr"], ctc_w * stats["loss_ctc"] + (1 - ctc_w) * stats["loss_att"]
    )
    # eval: one branch, no masking, no auxiliary loss
    model.eval()
    with torch.no_grad():
        _, stats = forward(model, batch)
    assert not set(stats) & (mask_keys | all_aux | {"loss_aux"})


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_few_adam_steps_reduce_the_loss(variant):
    model, _ = build_model(variant)
    model.train()
    batch = make_batch()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    def measure():
        torch.manual_seed(123)  # the same masks, crops, flips and dropout each time
        with torch.no_grad():
            return float(forward(model, batch)[0])

    before = measure()
    for step in range(8):
        torch.manual_seed(step)
        loss, _ = forward(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = measure()
    assert after < 0.9 * before, (before, after)


# --------------------------------------------------------------------- padding invariance
@pytest.mark.parametrize("variant", ["smile", "smile_nofusion", "baseline", "audio_only"])
def test_encode_padding_invariance(variant):
    model, _ = build_model(variant)
    if variant == "smile":
        with torch.no_grad():  # a non-trivial adaptive fusion
            torch.manual_seed(5)
            for lin in model.encoder.fusion.scale:
                lin.weight.normal_(0, 0.3)
                lin.bias.normal_(0, 0.3)
            model.encoder.fusion.layer_logits.normal_()
    model.eval()
    batch = make_batch(frames=(12, 7, 9), text_lens=(3, 2, 2), seed=1)
    with torch.no_grad():
        out, lens = _encode(model, batch)
        assert out.shape == (3, 12, model.encoder.output_size())
        assert lens.tolist() == [12, 7, 9]
        for b in range(3):
            one = select(batch, b)
            alone, alone_lens = _encode(model, one)
            assert alone.shape[1] == int(alone_lens[0]) == int(lens[b])
            torch.testing.assert_close(out[b, : lens[b]], alone[0], atol=1e-5, rtol=0)


# --------------------------------------------------------------------- masking in the model
def _spy_encoder(monkeypatch, model):
    calls = []
    orig = model.encoder.forward_streams

    def spy(audio, video, lengths, fuse=True):
        calls.append((audio.detach().clone(), None if video is None else video.detach().clone()))
        return orig(audio, video, lengths, fuse=fuse)

    monkeypatch.setattr(model.encoder, "forward_streams", spy)
    return calls


def test_eval_forward_does_not_mask(monkeypatch):
    model, _ = build_model("smile")
    model.eval()
    batch = make_batch()
    masking_calls = []
    monkeypatch.setattr(model.masking, "forward", lambda *a: masking_calls.append(a))
    calls = _spy_encoder(monkeypatch, model)
    with torch.no_grad():
        audio, video, _ = model.extract_av_feats(
            batch["speech"], batch["speech_lengths"], batch["video"], batch["video_lengths"]
        )
        _, stats = forward(model, batch)
    assert masking_calls == []
    assert len(calls) == 1  # no target branch either
    assert torch.equal(calls[0][0], audio) and torch.equal(calls[0][1], video)
    assert not any(k.startswith("mask_rate") for k in stats)


def test_train_forward_masks_online_branch_only(monkeypatch):
    model, _ = build_model("smile")
    model.train()
    batch = make_batch()
    calls = _spy_encoder(monkeypatch, model)
    torch.manual_seed(0)
    _, stats = forward(model, batch)
    assert len(calls) == 2  # online (masked) + target (unmasked)
    (oa, ov), (ta, tv) = calls
    assert not torch.equal(oa, ta) and not torch.equal(ov, tv)
    changed_a = (oa != ta).any(-1)
    n_valid = int(batch["video_lengths"].sum())
    assert float(stats["mask_rate_audio"]) == pytest.approx(int(changed_a.sum()) / n_valid)
    assert 0.1 < float(stats["mask_rate_audio"]) < 0.5
    assert 0.1 < float(stats["mask_rate_video"]) < 0.5
    emb = model.masking.audio_embed
    assert torch.equal(oa[changed_a], emb.detach().expand(int(changed_a.sum()), -1))


@pytest.mark.parametrize("variant", ["smile", "smile_mlm", "smile_nosiamese"])
def test_utterances_shorter_than_a_span(variant):
    model, _ = build_model(variant)
    model.train()
    batch = make_batch(frames=(4, 3), text_lens=(2, 1))
    torch.manual_seed(0)
    loss, stats = forward(model, batch)
    assert torch.isfinite(loss)
    assert float(stats["mask_rate_audio"]) == 0.0 and float(stats["mask_rate_video"]) == 0.0
    for k in ("loss_mrm_audio", "loss_mrm_video", "loss_mlm_audio", "loss_mlm_video"):
        if k in stats:
            assert float(stats[k]) == 0.0
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


# --------------------------------------------------------------------- Siamese objective
def _aux_grads(model, target_fn):
    """Grads of the MRM loss w.r.t. all trainable params, with the target from target_fn."""
    params = [p for p in model.parameters() if p.requires_grad]
    batch = make_batch()
    torch.manual_seed(0)
    audio, video, lengths = model.extract_av_feats(
        batch["speech"], batch["speech_lengths"], batch["video"], batch["video_lengths"]
    )
    oa, ov, am, vm = model.masking(audio, video, lengths)
    online = model.encoder.forward_streams(oa, ov, lengths)
    loss = target_fn(online, audio, video, lengths, am, vm)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return loss.detach(), [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def test_siamese_target_branch_gets_no_gradient():
    model, _ = build_model("smile")
    model.train()
    obj, enc = model.objective, model.encoder

    def objective(online, audio, video, lengths, am, vm):
        return obj(enc, online, audio, video, lengths, am, vm)[0]

    def manual(detach):
        def fn(online, audio, video, lengths, am, vm):
            enc.eval()
            tgt = enc.forward_streams(audio, video, lengths, fuse=False)  # with a graph
            enc.train()
            ta, tv = (tgt.audio.detach(), tgt.video.detach()) if detach else (tgt.audio, tgt.video)
            la = masked_regression_loss(obj.heads["audio"](online.audio), ta, am, obj.loss)
            lv = masked_regression_loss(obj.heads["video"](online.video), tv, vm, obj.loss)
            return obj.weights["audio"] * la + obj.weights["video"] * lv

        return fn

    loss, grads = _aux_grads(model, objective)
    loss_sg, grads_sg = _aux_grads(model, manual(detach=True))
    loss_full, grads_full = _aux_grads(model, manual(detach=False))
    torch.testing.assert_close(loss, loss_sg)
    torch.testing.assert_close(loss, loss_full)
    # the objective's gradients are the stop-gradient ones ...
    for g, g_sg in zip(grads, grads_sg):
        torch.testing.assert_close(g, g_sg, atol=1e-6, rtol=1e-4)
    # ... which differ from letting the gradient into the target (so the check can fail)
    assert max(float((a - b).abs().max()) for a, b in zip(grads_sg, grads_full)) > 1e-4


def test_siamese_ema_target():
    decay = 0.9
    model, _ = build_model("smile", objective_conf={"target": "ema", "ema_decay": decay})
    obj, enc = model.objective, model.encoder
    target = obj.target_encoder
    assert target is not None and target is not enc
    assert all(not p.requires_grad for p in target.parameters())
    assert any(n.startswith("objective.target_encoder.") for n in model.state_dict())
    assert not bool(obj.ema_synced)
    batch = make_batch()
    model.train()
    torch.manual_seed(0)
    loss, _ = forward(model, batch)
    loss.backward()
    assert bool(obj.ema_synced)
    online = dict(enc.named_parameters())
    for name, p in target.named_parameters():
        assert torch.equal(p, online[name]), name  # first step: a copy
        assert p.grad is None
    # perturb the online encoder, then one more training forward
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    old = {n: p.detach().clone() for n, p in target.named_parameters()}
    torch.manual_seed(1)
    forward(model, batch)
    for name, p in target.named_parameters():
        expected = decay * old[name] + (1 - decay) * online[name].detach()
        torch.testing.assert_close(p, expected, atol=1e-6, rtol=0, msg=name)
    assert any(not torch.equal(p, old[n]) for n, p in target.named_parameters())
    # eval forwards leave the EMA copy alone
    snapshot = {n: p.detach().clone() for n, p in target.named_parameters()}
    model.eval()
    with torch.no_grad():
        forward(model, batch)
    assert all(torch.equal(p, snapshot[n]) for n, p in target.named_parameters())


# --------------------------------------------------------------------- adaptive fusion
def test_adaptive_fusion_in_model():
    model, _ = build_model("smile")
    fusion = model.encoder.fusion
    n_layers = model.encoder.num_blocks
    batch = make_batch()
    model.train()
    torch.manual_seed(0)
    _, stats = forward(model, batch)
    assert float(stats["fusion_scale"]) == pytest.approx(0.5, abs=1e-7)
    for l in range(n_layers):
        assert float(stats[f"fusion_w{l + 1}"]) == pytest.approx(1 / n_layers, abs=1e-7)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(3):
        torch.manual_seed(step)
        loss, _ = forward(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.manual_seed(9)
    _, stats = forward(model, batch)
    scale = float(stats["fusion_scale"])
    assert 0.0 < scale < 1.0 and scale != pytest.approx(0.5, abs=1e-4)
    w = [float(stats[f"fusion_w{l + 1}"]) for l in range(n_layers)]
    assert sum(w) == pytest.approx(1.0, abs=1e-6)
    assert w[0] != pytest.approx(w[1], abs=1e-5)
    torch.testing.assert_close(fusion.layer_weights().sum(), torch.tensor(1.0))
    # S computed directly on the encoder's layer outputs
    model.eval()
    with torch.no_grad():
        audio, video, lengths = model.extract_av_feats(
            batch["speech"], batch["speech_lengths"], batch["video"], batch["video_lengths"]
        )
        captured = []
        orig = fusion.forward
        fusion.forward = lambda layers, lens: captured.append(layers) or orig(layers, lens)
        model.encoder.forward_streams(audio, video, lengths)
        del fusion.forward
        for l, h in enumerate(captured[0]):
            s = torch.sigmoid(fusion.scale[l](torch.cat([h[:, 0], h[:, 1]], -1)))
            assert torch.all((s > 0) & (s < 1))
            assert s.std() > 0  # dynamic: depends on the frame


def test_concat_variant_has_no_adaptive_parameters():
    concat, _ = build_model("smile_nofusion")
    adaptive, _ = build_model("smile")
    keys = list(concat.state_dict())
    assert not any("scale" in k or "layer_logits" in k for k in keys)
    assert "encoder.fusion.proj.weight" in keys
    akeys = set(adaptive.state_dict())
    assert "encoder.fusion.layer_logits" in akeys
    assert "encoder.fusion.scale.0.weight" in akeys


# --------------------------------------------------------------------- build errors
def _build(variant, **overrides):
    return AVSRTask.build_model(make_args(toy_config(variant, **overrides)))


def test_unknown_fusion_name():
    with pytest.raises(ValueError, match="fusion") as e:
        _build("smile", fusion="gated")
    for choice in ("adaptive", "concat", "last"):
        assert choice in str(e.value)


@pytest.mark.parametrize(
    "variant,fusion", [("smile", "last"), ("baseline", "adaptive"), ("baseline", "concat")]
)
def test_fusion_stream_mismatch_at_build(variant, fusion):
    cfg = toy_config(variant, fusion=fusion)
    cfg["fusion_conf"] = {}
    with pytest.raises(ValueError, match="stream"):
        AVSRTask.build_model(make_args(cfg))


def test_unknown_encoder_key():
    with pytest.raises(ValueError, match=r"--encoder smile .*bogus_units"):
        _build("smile", encoder_conf={"bogus_units": 3})


@pytest.mark.parametrize("key", ["input_size", "video_input_size"])
def test_encoder_conf_must_not_set_derived_sizes(key):
    with pytest.raises(ValueError, match=key):
        _build("smile", encoder_conf={key: 104})


def test_args_input_size_rejected():
    args = make_args(toy_config("smile"))
    args.input_size = 104
    with pytest.raises(ValueError, match="input_size"):
        AVSRTask.build_model(args)


def test_objective_without_masking():
    with pytest.raises(ValueError, match="masking"):
        _build("smile", masking=None)


def test_temporal_layout_without_video():
    with pytest.raises(ValueError, match="temporal"):
        _build("smile", video_frontend=None)


# --------------------------------------------------------------------- encode options
def test_encode_modality():
    model, _ = build_model("smile")
    model.eval()
    batch = make_batch()
    with torch.no_grad():
        outs = {m: _encode(model, batch, modality=m)[0] for m in ("av", "audio", "video")}
        feats = {
            m: model.extract_av_feats(
                batch["speech"], batch["speech_lengths"], batch["video"],
                batch["video_lengths"], modality=m,
            )
            for m in ("av", "audio", "video")
        }
    assert torch.equal(feats["audio"][0], feats["av"][0])
    assert torch.all(feats["audio"][1] == 0) and feats["av"][1].abs().sum() > 0
    assert torch.equal(feats["video"][1], feats["av"][1])
    assert torch.all(feats["video"][0] == 0)
    for a, b in (("av", "audio"), ("av", "video"), ("audio", "video")):
        assert (outs[a] - outs[b]).abs().max() > 1e-3, (a, b)
    with pytest.raises(ValueError, match="modality"):
        _encode(model, batch, modality="both")
    audio_only, _ = build_model("audio_only")
    audio_only.eval()
    with pytest.raises(ValueError, match="video"):
        _encode(audio_only, batch, modality="video")


def test_av_length_mismatch_names_the_utterance():
    model, _ = build_model("smile")
    model.eval()
    # utterance 1: 7 video frames but 12 frames of audio
    batch = make_batch(frames=(12, 7), extra_samples=(0, 5 * 640))
    with pytest.raises(ValueError, match=r"utt1.*max_av_length_diff=3"):
        _encode(model, batch, utt_id=["utt0", "utt1"])
    with pytest.raises(ValueError, match="utt1"), torch.no_grad():
        forward(model, batch)
    # within the tolerance: audio is trimmed to the video length
    ok = make_batch(frames=(12, 7), extra_samples=(0, 2 * 640))
    with torch.no_grad():
        out, lens = _encode(model, ok, utt_id=["utt0", "utt1"])
    assert lens.tolist() == [12, 7] and out.shape[1] == 12


# --------------------------------------------------------------------- checkpoints
def test_build_model_from_file_is_strict(tmp_path):
    model, args = build_model("smile")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(vars(args)), encoding="utf-8")
    state = model.state_dict()
    good = tmp_path / "good.pth"
    torch.save(state, good)
    loaded, loaded_args = AVSRTask.build_model_from_file(config, good)
    assert loaded_args.fusion == "adaptive"
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, state[k]), k

    missing = dict(state)
    del missing["encoder.fusion.layer_logits"]
    bad = tmp_path / "missing.pth"
    torch.save(missing, bad)
    with pytest.raises(RuntimeError, match=r"missing keys \['encoder.fusion.layer_logits'\]"):
        AVSRTask.build_model_from_file(config, bad)

    extra = dict(state)
    extra["encoder.extra_weight"] = torch.zeros(1)
    bad = tmp_path / "extra.pth"
    torch.save(extra, bad)
    with pytest.raises(RuntimeError, match="unexpected keys.*encoder.extra_weight"):
        AVSRTask.build_model_from_file(config, bad)
