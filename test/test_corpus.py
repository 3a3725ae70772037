"""Tests of the LRS3 reader and the synthetic audio-visual corpus generator."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from espnet2_smile.constants import AUDIO_SR, SAMPLES_PER_FRAME, VIDEO_FPS
from espnet2_smile.corpus import lrs3

HAVE_FFMPEG = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None
needs_ffmpeg = pytest.mark.skipif(not HAVE_FFMPEG, reason="ffmpeg/ffprobe not installed")

SEED = 3
SPK_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")


def _espeak_available() -> bool:
    try:
        from espnet2_smile.corpus import espeak

        espeak.engine_sample_rate()
        return True
    except Exception:  # noqa: BLE001
        return False


needs_espeak = pytest.mark.skipif(not _espeak_available(), reason="libespeak-ng not available")


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> Path:
    """The tiny corpus, generated once (two worker processes)."""
    if not _espeak_available() or not HAVE_FFMPEG:
        pytest.skip("libespeak-ng or ffmpeg not available")
    from espnet2_smile.corpus import generate_corpus

    root = tmp_path_factory.mktemp("corpus") / "tiny"
    generate_corpus(str(root), size="tiny", seed=SEED, nj=2, progress=False)
    return root


def _mp4s(root: Path, split: str):
    return sorted((root / split).glob("*/*.mp4"))


# ----------------------------------------------------------------------------- layout
def test_layout_and_manifest(tiny_corpus):
    from espnet2_smile.corpus import SIZES

    cfg = SIZES["tiny"]
    manifest = json.loads((tiny_corpus / "corpus.json").read_text())
    assert manifest["complete"] is True
    assert manifest["params"] == {"size": "tiny", "seed": SEED, "grammar": "lrs3",
                                  "lead_ms": 60.0, "version": manifest["params"]["version"]}
    speakers = {}
    for split in ("pretrain", "trainval", "test"):
        clips = lrs3.list_clips(tiny_corpus / split)
        assert len(clips) == manifest["counts"][split]["clips"] > 0
        speakers[split] = {c.split("/")[0] for c in clips}
        for c in clips:
            spk, clip = c.split("/")
            assert SPK_ID.match(spk), spk
            assert re.fullmatch(r"\d{5}", clip), clip
            if split == "trainval":
                assert clip.startswith("5")
    n_clips = sum(len(lrs3.list_clips(tiny_corpus / s)) for s in ("pretrain", "trainval", "test"))
    assert n_clips == cfg.train_speakers * (cfg.pretrain_per_speaker + cfg.trainval_per_speaker) \
        + cfg.test_speakers * cfg.test_per_speaker
    assert len(speakers["trainval"]) == cfg.train_speakers
    assert speakers["test"].isdisjoint(speakers["trainval"] | speakers["pretrain"])
    # valid list: LRS3 format, subset of trainval
    valid = lrs3.read_valid_ids(tiny_corpus / "lrs3-valid.id")
    assert len(valid) == cfg.n_valid
    for v in valid:
        assert v.startswith("trainval/")
        assert (tiny_corpus / (v + ".mp4")).is_file() and (tiny_corpus / (v + ".txt")).is_file()
    # noise: separate train/test files of each kind, 16 kHz mono
    from espnet2_smile.corpus.media import read_wav

    for split in ("train", "test"):
        for kind in ("babble", "speech", "white", "pink"):
            files = sorted((tiny_corpus / "noise" / split / kind).glob("*.wav"))
            assert len(files) == (cfg.noise_files[0] if split == "train" else cfg.noise_files[1])
            x, sr = read_wav(str(files[0]))
            assert sr == AUDIO_SR and len(x) == int(cfg.noise_seconds * AUDIO_SR)
            assert x.std() > 100
    # no temporary files left behind
    assert not list(tiny_corpus.rglob(".*.tmp"))


def test_txt_format_and_word_times(tiny_corpus):
    from espnet2_smile.corpus.media import probe

    n_words = 0
    for split in ("pretrain", "trainval", "test"):
        for mp4 in _mp4s(tiny_corpus, split):
            txt = mp4.with_suffix(".txt")
            content = txt.read_text()
            lines = content.split("\n")
            assert lines[0].startswith("Text:  ") and lines[1].startswith("Conf:  ")
            assert lines[2] == "" and lines[3] == "WORD START END ASDSCORE"
            tr = lrs3.read_txt(txt)
            words = tr.text.split()
            assert tr.text == tr.text.upper() and tr.text == tr.clean_text
            assert [w.word for w in tr.words] == words
            if split != "pretrain":
                assert 4 <= len(words) <= 12
            duration = float(probe(str(mp4))["format"]["duration"])
            prev_end = 0.0
            for w in tr.words:
                assert prev_end <= w.start <= w.end <= duration + 1e-6, (txt, w)
                prev_end = w.end
            assert tr.words[-1].end > tr.words[0].start
            n_words += len(words)
    assert n_words > 100


def test_ffprobe_streams(tiny_corpus):
    from espnet2_smile.corpus.media import probe

    mp4s = _mp4s(tiny_corpus, "trainval")[:3] + _mp4s(tiny_corpus, "pretrain")[:1]
    for mp4 in mp4s:
        info = probe(str(mp4))
        v, a = info["video"], info["audio"]
        assert v["codec_name"] == "h264" and v["pix_fmt"] == "yuv420p"
        assert (int(v["width"]), int(v["height"])) == (224, 224)
        assert v["r_frame_rate"] == "25/1" and v["avg_frame_rate"] == "25/1"
        assert a["codec_name"] == "aac" and int(a["sample_rate"]) == AUDIO_SR and int(a["channels"]) == 1
        assert abs(float(a["duration"]) - float(v["duration"])) <= 1.0 / VIDEO_FPS
        assert int(v["nb_frames"]) == round(float(v["duration"]) * VIDEO_FPS)


# ----------------------------------------------------------------------------- determinism
def test_determinism_and_seed(tiny_corpus, tmp_path):
    from espnet2_smile.corpus.generate import _run_clip, plan
    from espnet2_smile.corpus.media import decode_audio, decode_video

    _, jobs, _ = plan("tiny", SEED)
    picked = [j for j in jobs if j.split == "trainval"][:1] + [j for j in jobs if j.split == "test"][:1]
    for job in picked:
        _run_clip(str(tmp_path / "a"), job, "tiny", SEED, "lrs3", 60.0)
        _run_clip(str(tmp_path / "b"), job, "tiny", SEED, "lrs3", 60.0)
        a, b, ref = tmp_path / "a" / job.rel, tmp_path / "b" / job.rel, tiny_corpus / job.rel
        # same seed: identical txt bytes, frames and samples, also vs. the parallel run
        for other in (b, ref):
            assert Path(str(a) + ".txt").read_bytes() == Path(str(other) + ".txt").read_bytes()
            assert np.array_equal(decode_video(str(a) + ".mp4"), decode_video(str(other) + ".mp4"))
            assert np.array_equal(decode_audio(str(a) + ".mp4"), decode_audio(str(other) + ".mp4"))
    # another seed: other speakers, other text, other pixels
    _, jobs2, _ = plan("tiny", SEED + 1)
    job2 = [j for j in jobs2 if j.split == "trainval"][0]
    job1 = picked[0]
    assert job2.spk_id != job1.spk_id
    _run_clip(str(tmp_path / "c"), job2, "tiny", SEED + 1, "lrs3", 60.0)
    t1 = lrs3.read_txt(str(tmp_path / "a" / job1.rel) + ".txt")
    t2 = lrs3.read_txt(str(tmp_path / "c" / job2.rel) + ".txt")
    assert t1.text != t2.text
    f1 = decode_video(str(tmp_path / "a" / job1.rel) + ".mp4")
    f2 = decode_video(str(tmp_path / "c" / job2.rel) + ".mp4")
    n = min(len(f1), len(f2))
    assert np.abs(f1[:n].astype(int) - f2[:n].astype(int)).mean() > 5


def test_rerun_completes_only_missing(tiny_corpus, tmp_path):
    from espnet2_smile.corpus import generate_corpus

    root = tmp_path / "copy"
    shutil.copytree(tiny_corpus, root)
    victim = lrs3.list_clips(root / "trainval")[2]
    txt = root / "trainval" / (victim + ".txt")
    mp4 = root / "trainval" / (victim + ".mp4")
    before = txt.read_bytes()
    txt.unlink()
    mp4_mtime = (root / "test" / (lrs3.list_clips(root / "test")[0] + ".mp4")).stat().st_mtime_ns
    manifest = generate_corpus(str(root), size="tiny", seed=SEED, nj=1, progress=False)
    assert manifest["last_run"]["generated_items"] == 1
    assert txt.read_bytes() == before and mp4.is_file()
    assert (root / "test" / (lrs3.list_clips(root / "test")[0] + ".mp4")).stat().st_mtime_ns == mp4_mtime
    assert manifest["counts"] == json.loads((tiny_corpus / "corpus.json").read_text())["counts"]
    with pytest.raises(ValueError, match="different|generated with"):
        generate_corpus(str(root), size="tiny", seed=SEED + 1, nj=1, progress=False)


# ----------------------------------------------------------------------------- audio/video
def _mouth_dark_area(frames: np.ndarray) -> np.ndarray:
    """Dark (mouth cavity) pixels per frame inside the fixed mouth ROI."""
    from espnet2_smile.corpus import crop_mouth

    roi = crop_mouth(frames).astype(np.float64)
    gray = 0.114 * roi[..., 0] + 0.587 * roi[..., 1] + 0.299 * roi[..., 2]
    return (gray[:, 16:72, 18:78] < 50).sum(axis=(1, 2)).astype(np.float64)


def _envelope(samples: np.ndarray, n_frames: int) -> np.ndarray:
    x = samples[: n_frames * SAMPLES_PER_FRAME].astype(np.float64).reshape(n_frames, SAMPLES_PER_FRAME)
    return np.sqrt((x ** 2).mean(axis=1))


def _best_lag(pairs, max_lag: int = 10):
    """Lag k (frames) maximising the pooled correlation of area[t] with envelope[t + k]."""
    scores = []
    for k in range(-max_lag, max_lag + 1):
        num, den = 0.0, 0
        for area, env in pairs:
            a = (area - area.mean()) / (area.std() + 1e-9)
            e = (env - env.mean()) / (env.std() + 1e-9)
            n = len(a)
            aa, ee = (a[: n - k], e[k:]) if k >= 0 else (a[-k:], e[: n + k])
            num += float((aa * ee).sum())
            den += len(aa)
        scores.append(num / den)
    return int(np.argmax(scores)) - max_lag, float(max(scores))


def test_audio_video_sync_from_mp4(tiny_corpus):
    from espnet2_smile.corpus.media import decode_audio, decode_video

    pairs = []
    for mp4 in _mp4s(tiny_corpus, "trainval")[:10]:
        frames = decode_video(str(mp4))
        audio = decode_audio(str(mp4))
        assert len(audio) == len(frames) * SAMPLES_PER_FRAME
        pairs.append((_mouth_dark_area(frames), _envelope(audio, len(frames))))
    lag, corr = _best_lag(pairs)
    lead_frames = 60.0 / 1000.0 * VIDEO_FPS
    assert abs(lag - lead_frames) <= 3, (lag, corr)
    assert corr > 0.3, corr


@needs_espeak
@pytest.mark.parametrize("lead_ms", [0.0, 200.0])
def test_sync_follows_configured_lead(lead_ms):
    from espnet2_smile.corpus import make_speaker, sample_sentence, synthesize_clip

    pairs = []
    for i in range(4):
        rng = np.random.default_rng([11, i])
        sents = [sample_sentence("lrs3", rng) for _ in range(2)]
        clip = synthesize_clip(sents, make_speaker(11, "train", i), rng, lead_ms=lead_ms)
        pairs.append((_mouth_dark_area(clip.frames), _envelope(clip.audio, clip.n_frames)))
    lag, corr = _best_lag(pairs)
    assert abs(lag - lead_ms / 1000.0 * VIDEO_FPS) <= 3, (lag, corr)


@needs_espeak
def test_visemes_open_vs_bilabial():
    """Open vowels look unlike p/b/m closures; p, b and m look alike."""
    from espnet2_smile.corpus import crop_mouth, make_speaker, synthesize_clip
    words = "BOB AND MOM PAID A BIG BOMB FOR THE FARM OF PAPA".split()
    groups = {"PBM": [], "AA": []}
    for spk_index in range(2):
        clip = synthesize_clip([words], make_speaker(5, "train", spk_index), np.random.default_rng(spk_index))
        gray = crop_mouth(clip.frames).astype(np.float64).mean(axis=-1)
        for vis, s, e, name in clip.extra["segments"]:  # phonemes as rendered (stops with closure)
            if len(vis) == 1 and vis[0] in groups and e - s >= 0.04:
                f = int(round(((s + e) / 2 - clip.lead_ms / 1000.0) * VIDEO_FPS - 0.5))
                groups[vis[0]].append((spk_index, name, gray[min(max(f, 0), len(gray) - 1)]))
    assert len(groups["PBM"]) >= 6 and len(groups["AA"]) >= 2
    assert {n for _, n, _ in groups["PBM"]} >= {"p", "b", "m"}

    def mean_dist(ga, gb):
        d = [np.abs(a - b).mean() for sa, _, a in ga for sb, _, b in gb if sa == sb and a is not b]
        return float(np.mean(d))

    within_pbm = mean_dist(groups["PBM"], groups["PBM"])
    pbm_vs_aa = mean_dist(groups["PBM"], groups["AA"])
    assert pbm_vs_aa > 2.5 * within_pbm, (pbm_vs_aa, within_pbm)
    # p vs b vs m: no more different from each other than closures of the same phoneme
    by = {n: [g for g in groups["PBM"] if g[1] == n] for n in ("p", "b", "m")}
    cross = mean_dist(by["p"] + by["b"], by["m"])
    assert cross < 0.5 * pbm_vs_aa


@needs_espeak
def test_mouth_stays_inside_roi_box():
    from espnet2_smile.corpus import MOUTH_CENTER_XY, make_speaker, mouth_roi_box, synthesize_clip
    from espnet2_smile.corpus.visemes import N_PARAMS

    x0, y0, x1, y1 = mouth_roi_box(96)
    assert (x1 - x0, y1 - y0) == (96, 96)
    assert x0 < MOUTH_CENTER_XY[0] < x1 and 112 <= MOUTH_CENTER_XY[1] < y1
    for i in range(6):
        clip = synthesize_clip([["WHY", "DO", "YOU", "OPEN", "THE", "WIDE", "DOOR"]],
                               make_speaker(21, "train", i), np.random.default_rng(i))
        renderer = clip.extra["renderer"]
        # extreme mouth shapes too: wide open + spread, wide open + protruded
        extreme = np.zeros((renderer.n, N_PARAMS))
        extreme[:, 0] = 1.0
        extreme[::2, 1] = 1.0
        extreme[1::2, 3] = 1.0
        for params in (clip.params, extreme):
            pts = renderer.mouth_outline(params)
            assert pts[..., 0].min() >= x0 + 1 and pts[..., 0].max() <= x1 - 1
            assert pts[..., 1].min() >= y0 + 1 and pts[..., 1].max() <= y1 - 1


# ----------------------------------------------------------------------------- text, speakers
def test_grammars():
    from espnet2_smile.corpus.grammar import GRID_SLOTS, sample_sentence, vocabulary

    assert len(vocabulary("lrs3")) >= 300
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(300):
        s = sample_sentence("lrs3", rng)
        assert 4 <= len(s) <= 12 and all(w == w.upper() and w.isascii() for w in s)
        assert set(s) <= vocabulary("lrs3")
        seen.add(" ".join(s))
    assert len(seen) > 280
    g = sample_sentence("grid", rng)
    assert len(g) == 6 and all(w in slot for w, slot in zip(g, GRID_SLOTS))
    with pytest.raises(ValueError, match="grammar must be one of"):
        sample_sentence("timit", rng)


def test_default_size_has_40_distinct_speakers():
    from espnet2_smile.corpus.generate import plan

    speakers, jobs, _ = plan("default", 1)
    train_test = speakers["train"] + speakers["test"]
    assert len(train_test) >= 40
    voices = {(s.voice, s.pitch, s.pitch_range, s.rate) for s in train_test}
    assert len(voices) == len(train_test)
    assert len({s.voice.split("+")[0] for s in train_test}) >= 5
    held_out = {s.spk_id for s in speakers["noise_train"] + speakers["noise_test"]}
    assert held_out.isdisjoint({j.spk_id for j in jobs})


@needs_espeak
def test_espeak_word_times_cover_every_word():
    from espnet2_smile.corpus import espeak

    # "that the" is one espeak word event; the times must still cover both words
    utt = espeak.synthesize("i think that the human brain grew", voice="en-us-nyc", n_words=7)
    assert len(utt.words) == 7
    starts = [s for s, _ in utt.words]
    assert starts == sorted(starts) and all(e > s for s, e in utt.words)
    assert utt.words[-1][1] <= len(utt.samples)
    with pytest.raises(espeak.EspeakError, match="unknown voice"):
        espeak.synthesize("hello", voice="xx-nonexistent")


@needs_ffmpeg
def test_errors_are_one_line(tmp_path):
    import subprocess
    import sys

    from espnet2_smile.corpus.media import MediaError, encode_mp4

    # libx264 with yuv420p refuses odd frame sizes: the ffmpeg error is reported in one line
    frames = np.zeros((8, 223, 223, 3), dtype=np.uint8)
    with pytest.raises(MediaError) as info:
        encode_mp4(str(tmp_path / "odd.mp4"), frames, np.zeros(8 * SAMPLES_PER_FRAME, np.int16))
    msg = str(info.value)
    assert "odd.mp4" in msg and "ffmpeg failed" in msg and "\n" not in msg
    assert not (tmp_path / "odd.mp4.wav").exists()
    proc = subprocess.run(
        [sys.executable, "-m", "espnet2_smile.bin.make_corpus", "--out", str(tmp_path / "c"),
         "--size", "tiny", "--nj", "0"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == "make_corpus: error: nj must be >= 1, got 0"


# ----------------------------------------------------------------------------- LRS3 parser
def test_parser_reads_lrs3_text():
    content = (
        "Text:  SO WE'RE GOING {LG} TO START\nConf:  4\n\nWORD START END ASDSCORE\n"
        "SO 0.53 0.70 1.9\nWE'RE 0.70 0.83 5.4\nGOING 0.83 1.00 -0.3\n"
        "TO 1.00 1.05 3.0\nSTART 1.05 1.50 6.1\n\n"
    )
    tr = lrs3.parse_txt(content, "x.txt")
    assert tr.text == "SO WE'RE GOING {LG} TO START" and tr.clean_text == "SO WE'RE GOING TO START"
    assert tr.conf == 4.0 and len(tr.words) == 5
    assert tr.words[2].score == -0.3 and tr.words[4].end == 1.5


@pytest.mark.parametrize(
    "content, reason",
    [
        ("Conf:  4\n\nWORD START END ASDSCORE\nA 0.1 0.2 1.0\n", "missing 'Text:' line"),
        ("Text:  \nConf:  4\n", "empty transcript"),
        ("Text:  {NS}\nConf:  4\n", "empty transcript"),
        ("Text:  HELLO\nConf:  x\n", "bad number 'x' for Conf"),
        ("Text:  HELLO\nConf:  4\n\nWORD START END ASDSCORE\nHELLO 0.1 zero 1.0\n", "bad number 'zero'"),
        ("Text:  HELLO\nConf:  4\n\nWORD START END ASDSCORE\nHELLO 0.5 0.2 1.0\n", "bad word interval"),
        ("Text:  HELLO\nConf:  4\n\nWORD START END ASDSCORE\nHELLO 0.1\n", "word row must be"),
        ("", "missing 'Text:' line"),
    ],
)
def test_parser_rejects_malformed(tmp_path, content, reason):
    path = tmp_path / "bad" / "00001.txt"
    path.parent.mkdir()
    path.write_text(content)
    with pytest.raises(ValueError) as info:
        lrs3.read_txt(path)
    msg = str(info.value)
    assert str(path) in msg and reason in msg and "\n" not in msg


def test_valid_list_and_clip_listing(tmp_path):
    (tmp_path / "lrs3-valid.id").write_text("trainval/UGtFXtnWME4/50021\n\ntrainval/abc_DEF-123/50001\n")
    assert lrs3.read_valid_ids(tmp_path / "lrs3-valid.id") == [
        "trainval/UGtFXtnWME4/50021", "trainval/abc_DEF-123/50001"]
    (tmp_path / "bad.id").write_text("trainval/UGtFXtnWME4/5002\n")
    with pytest.raises(ValueError, match=r"bad.id:1: expected"):
        lrs3.read_valid_ids(tmp_path / "bad.id")
    d = tmp_path / "trainval" / "UGtFXtnWME4"
    d.mkdir(parents=True)
    for name in ("50001.mp4", "50001.txt", "50002.mp4", ".50003.mp4.tmp"):
        (d / name).write_bytes(b"")
    assert lrs3.list_clips(tmp_path / "trainval") == ["UGtFXtnWME4/50001"]
    assert lrs3.list_clips(tmp_path / "trainval", require_txt=False) == [
        "UGtFXtnWME4/50001", "UGtFXtnWME4/50002"]
    assert lrs3.utterance_id("UGtFXtnWME4", "50001") == "UGtFXtnWME4_50001"
