"""model_conf modality_dropout: one whole stream zeroed per utterance, in training only."""

import sys
from pathlib import Path

import pytest
import torch

from espnet2_smile.asr.espnet_model import AUDIO_DROPPED, KEPT, VIDEO_DROPPED, drop_modality

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers_model import build_model, forward, make_batch  # noqa: E402


def _spy_online_inputs(monkeypatch, model):
    """Records the (audio, video) of the first encoder call of each forward (the online
    branch; the Siamese target branch is the second call)."""
    calls = []
    orig = model.encoder.forward_streams

    def spy(audio, video, lengths, fuse=True):
        calls.append((audio.detach().clone(), video.detach().clone()))
        return orig(audio, video, lengths, fuse=fuse)

    monkeypatch.setattr(model.encoder, "forward_streams", spy)
    return calls


def _zero(x: torch.Tensor) -> torch.Tensor:
    """(B,) whether each utterance's stream is all zeros."""
    return (x == 0).flatten(1).all(1)


def test_drop_modality_function():
    audio, video = torch.randn(400, 3, 4) + 5, torch.randn(400, 3, 2) + 5
    g = torch.Generator().manual_seed(0)
    a, v, dropped = drop_modality(audio, video, 0.0, generator=g)
    assert torch.equal(a, audio) and torch.equal(v, video) and (dropped == KEPT).all()
    a, v, dropped = drop_modality(audio, video, 1.0, generator=g)
    assert torch.equal(_zero(a), dropped == AUDIO_DROPPED) and torch.equal(_zero(v), dropped == VIDEO_DROPPED)
    assert not (_zero(a) & _zero(v)).any() and (dropped != KEPT).all()
    assert 150 < int((dropped == AUDIO_DROPPED).sum()) < 250  # equal chance
    a, v, dropped = drop_modality(audio, video, 0.3, generator=g)
    kept = dropped == KEPT
    assert 0.2 < 1 - float(kept.float().mean()) < 0.4
    assert torch.equal(a[kept], audio[kept]) and torch.equal(v[kept], video[kept])
    assert torch.equal(a[dropped == VIDEO_DROPPED], audio[dropped == VIDEO_DROPPED])


def test_p0_changes_nothing():
    batch = make_batch()
    model_a, _ = build_model("smile")
    model_b, _ = build_model("smile", model_conf={"modality_dropout": 0.0})
    model_a.train(), model_b.train()
    torch.manual_seed(3)
    loss_a, stats_a = forward(model_a, batch)
    torch.manual_seed(3)
    loss_b, stats_b = forward(model_b, batch)
    assert torch.equal(loss_a, loss_b)
    assert "dropped_audio" not in stats_b


@pytest.mark.parametrize("variant", ["smile", "baseline", "smile_mlm"])
def test_p1_drops_one_stream_in_training_only(monkeypatch, variant):
    model, _ = build_model(variant, model_conf={"modality_dropout": 1.0})
    batch = make_batch(frames=(12, 9, 10, 11), text_lens=(4, 3, 2, 3))
    calls = _spy_online_inputs(monkeypatch, model)
    model.train()
    seen = set()
    for step in range(4):
        calls.clear()
        loss, stats = forward(model, batch)
        assert torch.isfinite(loss)
        audio, video = calls[0]
        za, zv = _zero(audio), _zero(video)
        assert torch.equal(za ^ zv, torch.ones_like(za)), (step, za, zv)  # exactly one stream per utterance
        assert float(stats["dropped_audio"]) + float(stats["dropped_video"]) == pytest.approx(1.0)
        seen |= {"audio" if a else "video" for a in za.tolist()}
        if len(calls) > 1:  # the Siamese targets still see both streams
            ta, tv = calls[1]
            assert not _zero(ta).any() and not _zero(tv).any()
    assert seen == {"audio", "video"}
    model.eval()
    with torch.no_grad():
        calls.clear()
        _, stats = forward(model, batch)
        model.encode(batch["speech"], batch["speech_lengths"], batch["video"], batch["video_lengths"])
    assert "dropped_audio" not in stats
    for audio, video in calls:
        assert not _zero(audio).any() and not _zero(video).any()


def test_bad_modality_dropout():
    with pytest.raises(ValueError, match=r"modality_dropout.*must be in \[0, 1\]"):
        build_model("smile", model_conf={"modality_dropout": 1.5})
    with pytest.raises(ValueError, match="audio-only"):
        build_model("audio_only", model_conf={"modality_dropout": 0.5})
