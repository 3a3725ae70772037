"""Unit tests of SMILE's components: frontends, encoder, fusion, masking, objectives."""

import math

import pytest
import torch

from espnet2_smile.asr.encoder.smile_encoder import SmileEncoder
from espnet2_smile.asr.frontend.resnet_video import ResNetVideoFrontend
from espnet2_smile.asr.frontend.stacked_fbank import StackedFbankFrontend
from espnet2_smile.asr.fusion.adaptive import AdaptiveDynamicFusion
from espnet2_smile.asr.fusion.concat import ConcatFusion
from espnet2_smile.asr.fusion.last_layer import LastLayerFusion
from espnet2_smile.asr.masking.span_masking import SpanMasking, sample_span_mask
from espnet2_smile.asr.objective.heads import masked_regression_loss
from espnet2_smile.asr.objective.masked_prediction import MaskedPredictionObjective
from espnet2_smile.asr.objective.siamese import SiameseObjective


def _valid(lengths, time):
    return torch.arange(time)[None, :] < lengths[:, None]


def _waves(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(len(lengths), max(lengths))
    for b, n in enumerate(lengths):
        x[b, :n] = torch.randn(n, generator=g)
    return x, torch.tensor(lengths)


def _runs(row):
    """Lengths of the runs of True in a 1-D bool tensor."""
    runs, n = [], 0
    for v in row.tolist() + [False]:
        if v:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs


# --------------------------------------------------------------------- audio frontend
@pytest.mark.parametrize("n_mels,stack", [(26, 4), (10, 2)])
def test_fbank_shapes_lengths_and_zero_padding(n_mels, stack):
    fe = StackedFbankFrontend(n_mels=n_mels, stack=stack)
    assert fe.output_size() == n_mels * stack
    lengths = [6400, 3201, 1000, 159, 641]
    x, lens = _waves(lengths)
    feats, out_lens = fe(x, lens)
    expected = [math.ceil((n // 160) / stack) for n in lengths]
    assert out_lens.tolist() == expected
    assert fe.num_frames(lens).tolist() == expected
    assert feats.shape == (len(lengths), max(expected), n_mels * stack)
    for b, t in enumerate(expected):
        assert torch.all(feats[b, t:] == 0)
        if t:
            assert torch.isfinite(feats[b, :t]).all()
            assert feats[b, :t].abs().sum() > 0


def test_fbank_rejects_other_sample_rate():
    with pytest.raises(ValueError, match="16000"):
        StackedFbankFrontend(fs=8000)


def _fbank_batch_vs_alone(lengths):
    fe = StackedFbankFrontend()
    x, lens = _waves(lengths, seed=3)
    feats, out_lens = fe(x.double(), lens)
    for b, n in enumerate(lengths):
        alone, alone_lens = fe(x[b : b + 1, :n].double(), lens[b : b + 1])
        t = int(alone_lens[0])
        assert t == int(out_lens[b])
        assert alone.shape[1] == t
        torch.testing.assert_close(feats[b, :t], alone[0], atol=1e-5, rtol=1e-5)


def test_fbank_padding_invariance_hop_multiples():
    # lengths that are multiples of the 10 ms hop (160 samples)
    _fbank_batch_vs_alone([6400, 3200, 4160, 640])


def test_fbank_padding_invariance_any_length():
    _fbank_batch_vs_alone([6500, 3450, 3300])


# --------------------------------------------------------------------- video frontend
def _video(frames, side=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.zeros(len(frames), max(frames), side, side)
    for b, t in enumerate(frames):
        v[b, :t] = torch.rand(t, side, side, generator=g) * 255
    return v, torch.tensor(frames)


@pytest.mark.parametrize("channels,layers", [(4, (1, 1, 1)), (2, (1, 2))])
def test_resnet_shapes_lengths_and_zero_padding(channels, layers):
    torch.manual_seed(0)
    fe = ResNetVideoFrontend(channels=channels, layers=layers, crop_size=24).eval()
    assert fe.output_size() == channels * 2 ** (len(layers) - 1)
    video, lens = _video([7, 4, 1])
    out, out_lens = fe(video, lens)
    # time kernel 5, padding 2, stride 1: T_out = T
    assert out.shape == (3, 7, fe.output_size())
    assert out_lens.tolist() == [7, 4, 1]
    for b, t in enumerate([7, 4, 1]):
        assert torch.all(out[b, t:] == 0)
        assert out[b, :t].abs().sum() > 0


def test_resnet_eval_is_deterministic_centre_crop():
    torch.manual_seed(0)
    fe = ResNetVideoFrontend(channels=4, layers=(1, 1), crop_size=24).eval()
    video, lens = _video([5, 3], side=32)
    out1, _ = fe(video, lens)
    out2, _ = fe(video, lens)
    assert torch.equal(out1, out2)
    # same as feeding the centre 24x24 crop ourselves
    centre, _ = fe(video[:, :, 4:28, 4:28].contiguous(), lens)
    torch.testing.assert_close(out1, centre, atol=1e-6, rtol=1e-6)
    assert torch.equal(fe._crop_and_flip(video), video[:, :, 4:28, 4:28])


def _locate_crop(crop, frames, c):
    """(y0, x0, flipped) such that crop is frames' crop at (y0, x0), possibly flipped."""
    h, w = frames.shape[-2:]
    for y0 in range(h - c + 1):
        for x0 in range(w - c + 1):
            win = frames[:, y0 : y0 + c, x0 : x0 + c]
            if torch.equal(crop, win):
                return y0, x0, False
            if torch.equal(crop, win.flip(-1)):
                return y0, x0, True
    return None


def test_resnet_train_random_crop_and_flip():
    c = 6
    video, lens = _video([3, 3, 3, 3], side=10, seed=1)
    fe = ResNetVideoFrontend(channels=2, layers=(1,), crop_size=c, flip_prob=0.5).train()
    found = []
    for seed in range(6):
        torch.manual_seed(seed)
        crops = fe._crop_and_flip(video)
        assert crops.shape == (4, 3, c, c)
        for b in range(4):
            loc = _locate_crop(crops[b], video[b], c)
            assert loc is not None, "a training crop is not a (flipped) window of the input"
            found.append(loc)
    offsets = {(y, x) for y, x, _ in found}
    flips = {f for _, _, f in found}
    assert len(offsets) > 3, offsets
    assert flips == {True, False}
    # flip_prob=0: never flipped
    fe0 = ResNetVideoFrontend(channels=2, layers=(1,), crop_size=c, flip_prob=0.0).train()
    torch.manual_seed(0)
    crops = fe0._crop_and_flip(video)
    assert all(not _locate_crop(crops[b], video[b], c)[2] for b in range(4))


def test_resnet_flip_without_random_crop():
    fe = ResNetVideoFrontend(
        channels=2, layers=(1,), crop_size=6, random_crop=False, flip_prob=1.0
    ).train()
    video, _ = _video([3], side=10, seed=2)
    crops = fe._crop_and_flip(video)
    assert torch.equal(crops, video[:, :, 2:8, 2:8].flip(-1))


def test_resnet_frames_smaller_than_crop():
    fe = ResNetVideoFrontend(channels=2, layers=(1,), crop_size=88).eval()
    video, lens = _video([2], side=64)
    with pytest.raises(ValueError, match="crop_size 88"):
        fe(video, lens)


def test_resnet_padding_invariance_eval():
    torch.manual_seed(0)
    fe = ResNetVideoFrontend(channels=4, layers=(1, 1), crop_size=24).eval()
    video, lens = _video([8, 5, 2], side=28, seed=4)
    out, _ = fe(video, lens)
    for b, t in enumerate([8, 5, 2]):
        alone, _ = fe(video[b : b + 1, :t], lens[b : b + 1])
        torch.testing.assert_close(out[b, :t], alone[0], atol=1e-5, rtol=0)


# --------------------------------------------------------------------- encoder
def _encoder(layout="temporal", attention="mix", video=6, pos_enc="sinusoidal", fusion=True, **kw):
    torch.manual_seed(0)
    enc = SmileEncoder(
        input_size=5,
        video_input_size=video,
        output_size=16,
        attention_heads=2,
        linear_units=32,
        num_blocks=2,
        dropout_rate=0.0,
        layout=layout,
        attention=attention,
        pos_enc=pos_enc,
        conv_pos_kernel=4,
        conv_pos_groups=4,
        adapter_units=4,
        **kw,
    )
    if fusion:
        cls = AdaptiveDynamicFusion if enc.num_streams == 2 else LastLayerFusion
        enc.set_fusion(cls(16, 2, enc.num_streams))
    return enc.eval()


def _feats(lengths, dim, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), max(lengths), dim, generator=g)
    return x * _valid(torch.tensor(lengths), max(lengths)).unsqueeze(-1)


def test_encoder_temporal_mix_shapes():
    enc = _encoder("temporal", "mix")
    assert enc.output_size() == 16 and enc.num_streams == 2
    lens = torch.tensor([7, 4])
    a, v = _feats([7, 4], 5, 0), _feats([7, 4], 6, 1)
    tokens, mask = enc.embed(a, v, lens)
    assert tokens.shape == (2, 14, 16)
    assert mask.shape == (2, 1, 14)
    # both halves are masked: utterance b has 2*T_b valid tokens
    assert mask.sum(-1).flatten().tolist() == [14, 8]
    assert mask[1, 0, :4].all() and not mask[1, 0, 4:7].any()
    assert mask[1, 0, 7:11].all() and not mask[1, 0, 11:].any()
    out = enc.forward_streams(a, v, lens)
    assert out.out.shape == out.audio.shape == out.video.shape == (2, 7, 16)
    assert out.lengths.tolist() == [7, 4]
    assert "fusion_scale" in out.stats
    # the ESPnet interface: channels concatenated
    xs, olens, _ = enc(torch.cat([a, v], -1), lens)
    torch.testing.assert_close(xs, out.out)
    assert olens.tolist() == [7, 4]


def test_encoder_temporal_shared_positions():
    enc = _encoder("temporal", "mix")
    lens = torch.tensor([6])
    # zero features: a_t - v_t is the same for every t (shared position embedding)
    tokens, _ = enc.embed(torch.zeros(1, 6, 5), torch.zeros(1, 6, 6), lens)
    diff = tokens[0, :6] - tokens[0, 6:]
    torch.testing.assert_close(diff, diff[:1].expand_as(diff))
    # while the position embedding varies over t
    assert (tokens[0, 0] - tokens[0, 1]).abs().max() > 1e-3


def test_encoder_intra_mask_blocks_cross_modal():
    enc = _encoder("temporal", "intra")
    lens = torch.tensor([5, 3])
    a, v = _feats([5, 3], 5, 0), _feats([5, 3], 6, 1)
    _, mask = enc.embed(a, v, lens)
    assert mask.shape == (2, 10, 10)
    assert not mask[:, :5, 5:].any() and not mask[:, 5:, :5].any()
    assert mask[0, :5, :5].all() and mask[0, 5:, 5:].all()
    assert mask[1, :, :3].any(-1)[:5].all()
    assert not mask[1, :, 3:5].any() and not mask[1, :, 8:].any()
    # intra: the audio stream does not depend on the video; mix: it does
    v2 = v + torch.randn_like(v) * _valid(lens, 5).unsqueeze(-1)
    out1, out2 = enc.forward_streams(a, v, lens), enc.forward_streams(a, v2, lens)
    torch.testing.assert_close(out1.audio, out2.audio)
    mix = _encoder("temporal", "mix")
    m1, m2 = mix.forward_streams(a, v, lens), mix.forward_streams(a, v2, lens)
    assert (m1.audio - m2.audio).abs().max() > 1e-4


def test_encoder_channel_layout_and_audio_only():
    enc = _encoder("channel", "mix")
    assert enc.num_streams == 1
    lens = torch.tensor([6, 2])
    a, v = _feats([6, 2], 5, 0), _feats([6, 2], 6, 1)
    tokens, mask = enc.embed(a, v, lens)
    assert tokens.shape == (2, 6, 16) and mask.shape == (2, 1, 6)
    assert mask.sum(-1).flatten().tolist() == [6, 2]
    out = enc.forward_streams(a, v, lens)
    assert out.out.shape == (2, 6, 16)
    assert torch.equal(out.audio, out.video)
    # audio-only channel encoder
    ao = _encoder("channel", "mix", video=0)
    assert not ao.has_video and ao.video_proj is None
    out = ao.forward_streams(a, None, lens)
    assert out.out.shape == (2, 6, 16)
    xs, _, _ = ao(a, lens)
    torch.testing.assert_close(xs, out.out)
    with pytest.raises(ValueError, match="temporal"):
        _encoder("temporal", "mix", video=0)
    with pytest.raises(ValueError, match="intra"):
        _encoder("channel", "intra")


@pytest.mark.parametrize("layout", ["temporal", "channel"])
def test_encoder_input_scale(layout):
    """input_scale multiplies the content (not the position table) by sqrt(D)."""
    lens = torch.tensor([5])
    a, v = _feats([5], 5, 0), _feats([5], 6, 1)
    torch.manual_seed(0)
    plain = _encoder(layout, "mix")
    torch.manual_seed(0)
    scaled = _encoder(layout, "mix", input_scale=True)
    scaled.load_state_dict(plain.state_dict())
    zero_a, zero_v = torch.zeros_like(a), torch.zeros_like(v)
    x0, _ = plain.embed(a, v, lens)
    x1, _ = scaled.embed(a, v, lens)
    p0, _ = plain.embed(zero_a, zero_v, lens)
    p1, _ = scaled.embed(zero_a, zero_v, lens)
    if layout == "channel":
        # tokens = content + position, and only the content is scaled by sqrt(16)
        pos = plain._sinusoid(5, a.device, a.dtype)[None]
        torch.testing.assert_close(x1 - pos, 4.0 * (x0 - pos))
        torch.testing.assert_close(p1 - pos, 4.0 * (p0 - pos))
    else:
        # the adapters start as the identity: content = projection, scaled by 4
        pos = plain._sinusoid(5, a.device, a.dtype)
        a0 = plain.audio_proj(a)[0]
        torch.testing.assert_close(x0[0, :5], a0 + plain.modality_embed[0] + pos)
        torch.testing.assert_close(x1[0, :5], 4.0 * a0 + plain.modality_embed[0] + pos)


def test_encoder_requires_fusion():
    enc = _encoder(fusion=False)
    a, v = _feats([3], 5, 0), _feats([3], 6, 1)
    with pytest.raises(RuntimeError, match="set_fusion"):
        enc.forward_streams(a, v, torch.tensor([3]))
    out = enc.forward_streams(a, v, torch.tensor([3]), fuse=False)
    assert out.out is None and out.audio.shape == (1, 3, 16)
    with pytest.raises(ValueError, match="stream"):
        enc.set_fusion(LastLayerFusion(16, 2, 1))
    with pytest.raises(ValueError, match="layers"):
        enc.set_fusion(AdaptiveDynamicFusion(16, 3, 2))


@pytest.mark.parametrize(
    "layout,attention,pos_enc",
    [
        ("temporal", "mix", "sinusoidal"),
        ("temporal", "intra", "sinusoidal"),
        ("temporal", "mix", "conv"),
        ("channel", "mix", "sinusoidal"),
        ("channel", "mix", "conv"),
    ],
)
def test_encoder_padding_invariance(layout, attention, pos_enc):
    enc = _encoder(layout, attention, pos_enc=pos_enc).double()
    if layout == "temporal":
        with torch.no_grad():  # a non-trivial fusion (S != 0.5, w not uniform)
            for lin in enc.fusion.scale:
                lin.weight.normal_(0, 0.3)
            enc.fusion.layer_logits.normal_()
    lengths = [7, 3, 5]
    lens = torch.tensor(lengths)
    a, v = _feats(lengths, 5, 0).double(), _feats(lengths, 6, 1).double()
    out = enc.forward_streams(a, v, lens)
    for b, t in enumerate(lengths):
        alone = enc.forward_streams(a[b : b + 1, :t], v[b : b + 1, :t], lens[b : b + 1])
        torch.testing.assert_close(out.out[b, :t], alone.out[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(out.audio[b, :t], alone.audio[0], atol=1e-5, rtol=0)


# --------------------------------------------------------------------- fusion
def _layers(n_layers=3, streams=2, batch=2, time=5, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, streams, time, size, generator=g) for _ in range(n_layers)]


def test_adaptive_fusion_at_init():
    fus = AdaptiveDynamicFusion(size=8, num_layers=3, num_streams=2, num_groups=2)
    layers = _layers()
    lens = torch.tensor([5, 3])
    out, stats = fus(layers, lens)
    w = fus.layer_weights()
    torch.testing.assert_close(w, torch.full((3,), 1 / 3))
    expected = sum(h[:, 0] + 0.5 * h[:, 1] for h in layers) / 3
    torch.testing.assert_close(out, expected)
    assert out.shape == (2, 5, 8)
    assert float(stats["fusion_scale"]) == pytest.approx(0.5, abs=1e-7)
    for l in range(3):
        assert float(stats[f"fusion_w{l + 1}"]) == pytest.approx(1 / 3, abs=1e-7)
    s = torch.sigmoid(fus.scale[0](torch.cat([layers[0][:, 0], layers[0][:, 1]], -1)))
    assert torch.all(s == 0.5)


def test_adaptive_fusion_formula_and_ranges():
    torch.manual_seed(0)
    fus = AdaptiveDynamicFusion(size=8, num_layers=3, num_streams=2, num_groups=2)
    with torch.no_grad():
        for lin in fus.scale:
            lin.weight.normal_(0, 2.0)
            lin.bias.normal_(0, 2.0)
        fus.layer_logits.copy_(torch.tensor([2.0, -1.0, 0.5]))
    layers = _layers(seed=1)
    lens = torch.tensor([5, 2])
    out, stats = fus(layers, lens)
    w = fus.layer_weights().detach()
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(w, torch.softmax(torch.tensor([2.0, -1.0, 0.5]), 0))
    expected = 0
    scale_means = []
    valid = _valid(lens, 5).float()
    for l, h in enumerate(layers):
        a, v = h[:, 0], h[:, 1]
        s = torch.sigmoid(torch.cat([a, v], -1) @ fus.scale[l].weight.T + fus.scale[l].bias)
        assert s.shape == (2, 5, 2)
        assert torch.all((s > 0) & (s < 1))
        s_full = torch.cat([s[..., :1].expand(-1, -1, 4), s[..., 1:].expand(-1, -1, 4)], -1)
        expected = expected + w[l] * (a + s_full * v)
        scale_means.append(float((s.mean(-1) * valid).sum().detach() / valid.sum()))
    torch.testing.assert_close(out, expected)
    scale = float(stats["fusion_scale"])
    assert 0 < scale < 1 and scale != pytest.approx(0.5, abs=1e-3)
    assert scale == pytest.approx(sum(scale_means) / 3, abs=1e-6)
    assert sum(float(stats[f"fusion_w{l + 1}"]) for l in range(3)) == pytest.approx(1.0)


def test_concat_and_last_fusion():
    torch.manual_seed(0)
    cat = ConcatFusion(size=8, num_layers=3, num_streams=2)
    keys = set(cat.state_dict())
    assert keys == {"proj.weight", "proj.bias"}
    assert not any("scale" in k or "layer_logits" in k for k in keys)
    layers = _layers()
    out, stats = cat(layers, torch.tensor([5, 3]))
    assert stats == {}
    torch.testing.assert_close(out, cat.proj(torch.cat([layers[-1][:, 0], layers[-1][:, 1]], -1)))
    last = LastLayerFusion(size=8, num_layers=3, num_streams=1)
    one = _layers(streams=1)
    out, _ = last(one, torch.tensor([5, 3]))
    assert torch.equal(out, one[-1][:, 0])
    assert len(list(last.parameters())) == 0


@pytest.mark.parametrize(
    "cls,streams", [(LastLayerFusion, 2), (AdaptiveDynamicFusion, 1), (ConcatFusion, 1)]
)
def test_fusion_rejects_wrong_stream_count(cls, streams):
    with pytest.raises(ValueError, match="stream"):
        cls(8, 2, streams)


# --------------------------------------------------------------------- masking
@pytest.mark.parametrize("rate,span", [(0.3, 5), (0.15, 3), (0.5, 10)])
def test_sample_span_mask_rates_and_spans(rate, span):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(100, 201, (400,), generator=g)
    mask = sample_span_mask(lengths, 210, rate, span)
    assert mask.shape == (400, 210) and mask.dtype == torch.bool
    realised = mask.sum(1).float() / lengths.float()
    assert abs(float(realised.mean()) - rate) < 0.03
    for b, t in enumerate(lengths.tolist()):
        assert not mask[b, t:].any(), "a padding frame is masked"
        k = min(int(round(rate * t / span)), t // span)
        assert int(mask[b].sum()) == k * span
        # spans may touch, so runs are whole multiples of the span
        assert all(r % span == 0 for r in _runs(mask[b])), _runs(mask[b])
    # placement is random
    assert not torch.equal(mask[0], sample_span_mask(lengths[:1], 210, rate, span)[0])


def test_sample_span_mask_short_utterances():
    mask = sample_span_mask(torch.tensor([4, 0, 1, 5]), 6, 0.9, 5)
    assert not mask[:3].any()
    assert mask[3, :5].all() and not mask[3, 5]


def _masking_inputs(batch=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(100, 201, (batch,), generator=g)
    valid = _valid(lengths, 200).unsqueeze(-1)
    audio = torch.randn(batch, 200, 6, generator=g) * valid
    video = torch.randn(batch, 200, 4, generator=g) * valid
    return audio, video, lengths


def test_span_masking_rates_per_modality():
    torch.manual_seed(0)
    m = SpanMasking(6, 4, audio_rate=0.3, audio_span=5, video_rate=0.1, video_span=3)
    audio, video, lengths = _masking_inputs()
    _, _, am, vm = m(audio, video, lengths)
    n = lengths.sum().float()
    assert abs(float(am.sum() / n) - 0.3) < 0.03
    assert abs(float(vm.sum() / n) - 0.1) < 0.03
    valid = _valid(lengths, 200)
    assert not (am & ~valid).any() and not (vm & ~valid).any()
    assert all(r % 5 == 0 for b in range(64) for r in _runs(am[b]))
    assert all(r % 3 == 0 for b in range(64) for r in _runs(vm[b]))
    assert any(r % 5 for b in range(64) for r in _runs(vm[b]))  # video spans are not 5


@pytest.mark.parametrize("mask_type", ["learned", "zero", "noise"])
def test_span_masking_replaces_exactly_masked_frames(mask_type):
    torch.manual_seed(0)
    m = SpanMasking(6, 4, mask_type=mask_type)
    audio, video, lengths = _masking_inputs(batch=8)
    ma, mv, am, vm = m(audio, video, lengths)
    assert am.any() and vm.any()
    for x, y, mask, name in ((audio, ma, am, "audio"), (video, mv, vm, "video")):
        assert torch.equal(y[~mask], x[~mask])
        masked = y[mask]
        assert not torch.equal(masked, x[mask])
        if mask_type == "learned":
            embed = getattr(m, f"{name}_embed")
            assert torch.equal(masked, embed.expand_as(masked))
        elif mask_type == "zero":
            assert torch.all(masked == 0)
        else:
            assert (masked - x[mask]).abs().min() > 0
            assert masked.std() == pytest.approx(1.0, abs=0.2)
    if mask_type != "learned":
        assert len(list(m.parameters())) == 0
    # audio only
    ma, mv, am, vm = m(audio, None, lengths)
    assert mv is None and vm is None and am.any()


def test_span_masking_learned_embedding_gets_gradient():
    torch.manual_seed(0)
    m = SpanMasking(6, 4)
    audio, video, lengths = _masking_inputs(batch=4)
    ma, mv, _, _ = m(audio, video, lengths)
    (ma.sum() + mv.sum()).backward()
    assert m.audio_embed.grad.abs().sum() > 0 and m.video_embed.grad.abs().sum() > 0


def test_span_masking_rejects_bad_config():
    with pytest.raises(ValueError, match="mask_type"):
        SpanMasking(6, 4, mask_type="blank")
    with pytest.raises(ValueError, match="audio_rate"):
        SpanMasking(6, 4, audio_rate=1.0)
    with pytest.raises(ValueError, match="video_span"):
        SpanMasking(6, 4, video_span=0)


# --------------------------------------------------------------------- objectives
def test_masked_regression_loss():
    torch.manual_seed(0)
    pred = torch.randn(2, 5, 4, requires_grad=True)
    target = torch.randn(2, 5, 4)
    mask = torch.zeros(2, 5, dtype=torch.bool)
    empty = masked_regression_loss(pred, target, mask, "cosine")
    assert float(empty.detach()) == 0.0 and empty.requires_grad
    mask[0, 1] = mask[1, 3] = True
    assert float(masked_regression_loss(target * 2, target, mask, "cosine")) == pytest.approx(
        0.0, abs=1e-6
    )
    assert float(masked_regression_loss(target, target, mask, "mse")) == 0.0
    # only masked frames count
    other = pred.detach().clone()
    other[~mask] = 100.0
    for kind in ("cosine", "mse"):
        torch.testing.assert_close(
            masked_regression_loss(pred, target, mask, kind),
            masked_regression_loss(other, target, mask, kind),
        )
    expected = (1 - torch.nn.functional.cosine_similarity(pred[mask], target[mask], -1)).mean()
    torch.testing.assert_close(masked_regression_loss(pred, target, mask, "cosine"), expected)


def _stream_output(batch=2, time=6, size=16, seed=0):
    from espnet2_smile.asr.encoder.smile_encoder import StreamEncoderOutput

    g = torch.Generator().manual_seed(seed)
    a = torch.randn(batch, time, size, generator=g).requires_grad_()
    v = torch.randn(batch, time, size, generator=g).requires_grad_()
    return StreamEncoderOutput(out=None, lengths=torch.full((batch,), time), audio=a, video=v)


def test_mlm_objective_targets_are_normalised_inputs_without_gradient():
    torch.manual_seed(0)
    obj = MaskedPredictionObjective(
        size=16, audio_size=5, video_size=6, head="linear", audio_weight=0.5, video_weight=2.0
    )
    online = _stream_output()
    audio = torch.randn(2, 6, 5, requires_grad=True)
    video = torch.randn(2, 6, 6, requires_grad=True)
    am = torch.zeros(2, 6, dtype=torch.bool)
    am[:, 1:3] = True
    vm = torch.zeros(2, 6, dtype=torch.bool)
    vm[0, 4] = True
    loss, stats = obj(None, online, audio, video, torch.tensor([6, 6]), am, vm)
    assert set(stats) == {"loss_mlm_audio", "loss_mlm_video"}
    ln = torch.nn.functional.layer_norm
    ea = masked_regression_loss(obj.heads["audio"](online.audio), ln(audio, (5,)), am, "mse")
    ev = masked_regression_loss(obj.heads["video"](online.video), ln(video, (6,)), vm, "mse")
    torch.testing.assert_close(loss, 0.5 * ea + 2.0 * ev)
    loss.backward()
    assert audio.grad is None and video.grad is None
    assert online.audio.grad.abs().sum() > 0


def test_siamese_objective_rejects_bad_config():
    with pytest.raises(ValueError, match="target"):
        SiameseObjective(16, target="momentum")
    with pytest.raises(ValueError, match="loss"):
        SiameseObjective(16, loss="l1")
    with pytest.raises(ValueError, match="head"):
        SiameseObjective(16, head="deep")
    obj = SiameseObjective(16, target="ema")
    with pytest.raises(RuntimeError, match="attach"):
        obj(None, _stream_output(), torch.zeros(2, 6, 5), None, torch.tensor([6, 6]),
            torch.ones(2, 6, dtype=torch.bool), None)


def test_siamese_objective_stopgrad_targets():
    enc = _encoder("temporal", "mix")
    enc.train()
    obj = SiameseObjective(16, head="linear", head_units=8, audio_weight=1.0, video_weight=0.5)
    obj.attach(enc)
    assert obj.target_encoder is None  # stopgrad: shared weights, no copy
    lens = torch.tensor([6, 4])
    a, v = _feats([6, 4], 5, 0), _feats([6, 4], 6, 1)
    online = enc.forward_streams(a * 0.5, v * 0.5, lens)
    am = torch.zeros(2, 6, dtype=torch.bool)
    am[:, :2] = True
    vm = am.clone()
    seen = []
    orig = enc.forward_streams

    def spy(*args, **kwargs):
        res = orig(*args, **kwargs)
        seen.append((enc.training, torch.is_grad_enabled(), res))
        return res

    enc.forward_streams = spy
    loss, stats = obj(enc, online, a, v, lens, am, vm)
    del enc.forward_streams
    assert set(stats) == {"loss_mrm_audio", "loss_mrm_video"}
    assert len(seen) == 1
    training, grad_enabled, target = seen[0]
    assert not training and not grad_enabled  # eval mode, no graph
    assert not target.audio.requires_grad and not target.video.requires_grad
    assert enc.training  # mode restored
    expected = masked_regression_loss(
        obj.heads["audio"](online.audio), target.audio, am, "cosine"
    ) + 0.5 * masked_regression_loss(obj.heads["video"](online.video), target.video, vm, "cosine")
    torch.testing.assert_close(loss, expected)
