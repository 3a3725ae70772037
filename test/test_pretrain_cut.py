"""LRS3 pretrain clips longer than 15 s become utterances cut in pauses between words."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet2_smile.constants import SAMPLES_PER_FRAME
from espnet2_smile.prep.lrs3 import (
    ClipLimits,
    PretrainCut,
    RoiConfig,
    cut_points,
    plan_sets,
    process_clip,
    write_set,
)
from espnet2_smile.utils.datadir import read_scp, validate_data_dir
from test_bad_media import make_clip


def table(spec):
    """[(word count, word length, pause after)] -> (start, end) per word."""
    out, t = [], 0.3
    for count, length, pause in spec:
        for i in range(count):
            out.append((t, t + length))
            t += length + (pause if i == count - 1 else 0.05)
    return out


def test_short_clip_is_one_utterance():
    words = table([(10, 0.4, 0.5)])
    assert cut_points(words, 8.0) == [(0.0, 8.0, 0, 10)]


def test_cut_in_long_pauses_only_and_within_max():
    # pieces of ~4.5 s separated by 0.6 s pauses; short 0.1 s pauses inside
    words = table([(10, 0.4, 0.6)] * 7)
    spans = cut_points(words, words[-1][1] + 0.5, PretrainCut(max_sec=15.0, min_gap=0.4))
    assert len(spans) > 1
    assert [s[2] for s in spans] == [0] + [s[3] for s in spans[:-1]]  # every word once, in order
    assert spans[-1][3] == len(words)
    for start, end, i, j in spans:
        assert end - start <= 15.0
        if i > 0:  # boundaries in the middle of a long pause
            assert words[i][0] - words[i - 1][1] > 0.4
            assert start == pytest.approx((words[i - 1][1] + words[i][0]) / 2)
    assert spans[0][0] == 0.0 and spans[-1][1] == pytest.approx(words[-1][1] + 0.5)
    # greedy: joining the next piece would exceed the maximum
    for (s0, _, _, _), (_, e1, _, _) in zip(spans, spans[1:]):
        assert e1 - s0 > 15.0


def test_a_long_piece_without_pauses_stays_whole():
    words = table([(60, 0.3, 0.1)])  # 20.7 s, no pause > 0.4 s
    assert cut_points(words, 21.5) == [(0.0, 21.5, 0, 60)]


def write_pretrain_txt(path: Path, words) -> list:
    names = [f"W{chr(65 + i % 26)}{i}" for i in range(len(words))]
    rows = "\n".join(f"{n} {s:.2f} {e:.2f} 1.0" for n, (s, e) in zip(names, words))
    path.write_text(f"Text:  {' '.join(names)}\nConf:  3\n\nWORD START END ASDSCORE\n{rows}\n")
    return names


def test_long_pretrain_clip_becomes_aligned_utterances(tmp_path):
    from espnet2_smile.corpus.render import MOUTH_CENTER_XY

    root = tmp_path / "lrs3"
    words = table([(12, 0.4, 0.7)] * 6)  # ~33 s
    seconds = round(words[-1][1] + 0.6, 2)
    rel = "pretrain/vidA/00001"
    make_clip(root / f"{rel}.mp4", seconds=seconds)
    names = write_pretrain_txt(root / f"{rel}.txt", words)
    # the same media as a trainval clip: processed whole, for reference
    (root / "trainval/vidB").mkdir(parents=True)
    shutil.copy(root / f"{rel}.mp4", root / "trainval/vidB/50001.mp4")
    (root / "trainval/vidB/50001.txt").write_text("Text:  HELLO\nConf:  3\n")
    (root / "test/vidC").mkdir(parents=True)
    shutil.copy(root / "trainval/vidB/50001.mp4", root / "test/vidC/00001.mp4")
    (root / "test/vidC/00001.txt").write_text("Text:  HELLO\nConf:  3\n")
    shutil.copy(root / "trainval/vidB/50001.mp4", root / "trainval/vidB/50002.mp4")
    (root / "trainval/vidB/50002.txt").write_text("Text:  HELLO\nConf:  3\n")
    (root / "lrs3-valid.id").write_text("trainval/vidB/50002\n")
    sets = plan_sets(root, root / "lrs3-valid.id", "433h")
    assert sorted(sets["train"]) == [rel, "trainval/vidB/50001"]
    assert plan_sets(root, root / "lrs3-valid.id", "30h")["train"] == ["trainval/vidB/50001"]

    roi = RoiConfig(MOUTH_CENTER_XY)
    out = tmp_path / "data" / "train"
    write_set(root, out, sets["train"], roi, nj=2, options={"x": 1}, limits=ClipLimits(), cut=PretrainCut())
    assert validate_data_dir(out) == []
    text = read_scp(out / "text")
    frames = {k: int(v) for k, v in read_scp(out / "utt2num_frames").items()}
    samples = {k: int(v) for k, v in read_scp(out / "utt2num_samples").items()}
    segs = sorted(k for k in text if k.startswith("vidA_pre00001_"))
    spans = cut_points(words, seconds)
    assert len(segs) == len(spans) >= 3
    assert " ".join(text[k] for k in segs) == " ".join(names)
    whole = process_clip(root, "trainval/vidB/50001", tmp_path, roi)
    ref, _ = soundfile.read(str(whole.wav), dtype="int16")
    for k, (start, end, _, _) in zip(segs, spans):
        assert samples[k] == frames[k] * SAMPLES_PER_FRAME
        assert frames[k] <= 15 * 25
        f0 = int(round(start * 25))
        audio, _ = soundfile.read(read_scp(out / "wav.scp")[k], dtype="int16")
        np.testing.assert_array_equal(audio, ref[f0 * SAMPLES_PER_FRAME: f0 * SAMPLES_PER_FRAME + len(audio)])
    assert not list((out / "wav").glob(".clip_*"))  # no leftovers of the whole clip
    # trainval clips are never cut; cut=None keeps pretrain clips whole
    assert "vidB_50001" in text
    whole_out = tmp_path / "data" / "train_whole"
    write_set(root, whole_out, [rel], roi, nj=1, options={"x": 2}, cut=None)
    assert list(read_scp(whole_out / "text")) == ["vidA_pre00001"]


def test_long_pretrain_clip_without_word_table_is_skipped(tmp_path):
    from espnet2_smile.corpus.render import MOUTH_CENTER_XY

    root = tmp_path / "lrs3"
    rel = "pretrain/vidA/00002"
    make_clip(root / f"{rel}.mp4", seconds=16.5)
    (root / f"{rel}.txt").write_text("Text:  NO TABLE HERE\nConf:  3\n")
    make_clip(root / "pretrain/vidA/00003.mp4", seconds=2.0)
    (root / "pretrain/vidA/00003.txt").write_text("Text:  SHORT ONE\nConf:  3\n")
    out = tmp_path / "data" / "train"
    write_set(root, out, [rel, "pretrain/vidA/00003"], RoiConfig(MOUTH_CENTER_XY), nj=1, options={})
    skipped = read_scp(out / "skipped.txt")
    assert "no word table" in skipped[rel]
    assert list(read_scp(out / "text")) == ["vidA_pre00003"]
    assert not list((out / "wav").glob(".clip_*"))
