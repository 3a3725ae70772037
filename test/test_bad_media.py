"""Stage 1 (LRS3 layout -> data dirs) on bad media: each clip converted or skipped with
a reason, never a failed stage; and a corrupt ark entry at training time."""

import logging
import subprocess
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import soundfile

from espnet2_smile.constants import AUDIO_SR, SAMPLES_PER_FRAME
from espnet2_smile.prep.lrs3 import ClipLimits, normalize_transcript, write_set
from espnet2_smile.utils.datadir import read_scp, validate_data_dir

FFMPEG = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"]


def make_clip(path: Path, seconds: float = 2.0, fps: str = "25", audio_rate: int = 16000,
              channels: int = 1, video_seconds: float = None, vfr: bool = False) -> Path:
    """A small talking-head stand-in: a 64x64 test pattern and a tone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    vsec = seconds if video_seconds is None else video_seconds
    cmd = FFMPEG + [
        "-f", "lavfi", "-i", f"testsrc=size=64x64:rate={fps}:duration={vsec}",
        "-f", "lavfi", "-i", f"sine=frequency=300:sample_rate={audio_rate}:duration={seconds}",
        "-ac", str(channels),
    ]
    if vfr:  # 25 frames 30 ms apart, then 50 ms apart: no constant frame rate
        cmd += ["-vf", "setpts='if(lt(N,25),N*0.03,0.75+(N-25)*0.05)/TB'", "-fps_mode", "vfr"]
    subprocess.run(cmd + H264 + [str(path)], check=True)
    return path


def write_txt(path: Path, text: str = "HELLO WORLD") -> None:
    path.write_text(f"Text:  {text}\nConf:  3\n", encoding="utf-8")


def prepare(root: Path, out: Path, limits: ClipLimits = ClipLimits()) -> Dict[str, str]:
    """All clips under root/trainval as one set; returns skipped.txt."""
    from espnet2_smile.corpus.render import MOUTH_CENTER_XY
    from espnet2_smile.prep.lrs3 import RoiConfig

    clips = sorted(f"trainval/{p.parent.name}/{p.stem}" for p in (root / "trainval").glob("*/*.mp4"))
    write_set(root, out, clips, RoiConfig(MOUTH_CENTER_XY), nj=2, options={"n": len(clips)}, limits=limits)
    assert validate_data_dir(out) == []
    return read_scp(out / "skipped.txt")


@pytest.fixture(scope="module")
def bad_set(tmp_path_factory):
    """One set holding every bad-media case, prepared once (limits: max_sec 3)."""
    root = tmp_path_factory.mktemp("lrs3_bad")
    tv = root / "trainval"
    cases = {
        "fps30/50001": dict(fps="30"),
        "stereo44k/50001": dict(audio_rate=44100, channels=2),
        "vfr/50001": dict(vfr=True),
        "shortvideo/50001": dict(seconds=2.0, video_seconds=1.0),
        "long/50001": dict(seconds=4.0),
        "good/50001": dict(),
        # the same utterance id twice: A_B/50001 and A/B_50001 -> A_B_50001
        "A_B/50001": dict(seconds=2.0),
        "A/B_50001": dict(seconds=1.6),
        "bad id/50001": dict(),
    }
    for rel, kw in cases.items():
        make_clip(tv / f"{rel}.mp4", **kw)
        write_txt(tv / f"{rel}.txt")
    write_txt(tv / "good" / "50001.txt", "¡Café, “naïve” RÉSUMÉ — it’s 42% {LG} OK! 'TIL")
    # zero-length clips: an empty file, and a container without any stream
    (tv / "empty").mkdir()
    (tv / "empty" / "50001.mp4").write_bytes(b"")
    write_txt(tv / "empty" / "50001.txt")
    subprocess.run(FFMPEG + ["-f", "lavfi", "-i", "testsrc=size=64x64:rate=25", "-t", "0", *H264,
                             str(tv / "empty" / "50002.mp4")], check=True)
    write_txt(tv / "empty" / "50002.txt")
    # transcripts with nothing left after normalisation
    make_clip(tv / "notext" / "50001.mp4")
    write_txt(tv / "notext" / "50001.txt", "¿…? —")
    make_clip(tv / "notext" / "50002.mp4")
    write_txt(tv / "notext" / "50002.txt", "你好")
    out = root / "data" / "train"
    skipped = prepare(root, out, ClipLimits(max_sec=3.0, max_av_diff=3.0))
    return out, skipped


def _num_frames(out: Path, uttid: str) -> int:
    import kaldiio

    return kaldiio.load_mat(read_scp(out / "video.scp")[uttid]).shape[0]


@pytest.mark.parametrize("uttid", ["fps30_50001", "stereo44k_50001", "vfr_50001", "good_50001"])
def test_converted_to_25fps_and_16k_mono(bad_set, uttid):
    out, _ = bad_set
    wav = read_scp(out / "wav.scp")[uttid]
    info = soundfile.info(wav)
    assert (info.samplerate, info.channels) == (AUDIO_SR, 1)
    assert abs(info.frames / AUDIO_SR - 2.0) < 0.1, info.frames
    assert int(read_scp(out / "utt2num_samples")[uttid]) == info.frames
    frames = _num_frames(out, uttid)
    assert int(read_scp(out / "utt2num_frames")[uttid]) == frames
    assert abs(frames - 50) <= 1, frames  # 2 s at 25 fps, whatever the source rate
    assert abs(info.frames / SAMPLES_PER_FRAME - frames) <= 3


def test_skipped_clips_and_reasons(bad_set):
    out, skipped = bad_set
    expect = {
        "trainval/shortvideo/50001": "A/V length mismatch",
        "trainval/long/50001": "too long: 4.0 s (container) > max_sec 3 s",  # before decoding
        "trainval/empty/50001": "empty mp4 file (0 bytes)",
        "trainval/empty/50002": "no video stream",
        "trainval/notext/50001": "transcript has no letters or digits after normalisation",
        "trainval/notext/50002": "transcript has no letters or digits after normalisation",
        "trainval/bad%20id/50001": "bad utterance id: 'bad id_50001'",
        "trainval/A_B/50001": "duplicate utterance id: A_B_50001 is also trainval/A/B_50001, which is kept",
    }
    assert set(skipped) == set(expect), skipped
    for rel, reason in expect.items():
        assert skipped[rel].startswith(reason), (rel, skipped[rel])
    # nothing of a skipped clip is left in the set
    kept = set(read_scp(out / "wav.scp"))
    assert kept == {"fps30_50001", "stereo44k_50001", "vfr_50001", "good_50001", "A_B_50001"}
    assert {p.name for p in (out / "wav").iterdir()} == {f"{k}.wav" for k in kept}


def test_duplicate_id_keeps_the_first_clip_and_its_audio(bad_set):
    out, _ = bad_set
    # kept: A/B_50001 (1.6 s; sorts first), not A_B/50001 (2.0 s)
    samples = soundfile.info(read_scp(out / "wav.scp")["A_B_50001"]).frames
    assert abs(samples / AUDIO_SR - 1.6) < 0.1, samples
    assert abs(_num_frames(out, "A_B_50001") - 40) <= 1


def test_transcript_normalised_like_lrs3(bad_set):
    out, _ = bad_set
    assert read_scp(out / "text")["good_50001"] == "CAFE NAIVE RESUME IT'S 42 OK 'TIL"


@pytest.mark.parametrize("raw, expect", [
    ("SO WE'RE GOING {LG} TO START", "SO WE'RE GOING TO START"),
    ("so, we\u2019re   going... to START!", "SO WE'RE GOING TO START"),
    ("WELL-KNOWN \"QUOTES\" ' ''", "WELL KNOWN QUOTES"),
    ("Ærøskøbing straße", "AEROSKOBING STRASSE"),
    ("\u00e9t\u00e9 e\u0301te\u0301", "ETE ETE"),
    ("", ""),
])
def test_normalize_transcript(raw, expect):
    assert normalize_transcript(raw) == expect


def test_rerun_with_same_options_is_skipped(bad_set, caplog):
    out, _ = bad_set
    root = out.parents[1]
    clips = sorted(f"trainval/{p.parent.name}/{p.stem}" for p in (root / "trainval").glob("*/*.mp4"))
    from espnet2_smile.corpus.render import MOUTH_CENTER_XY
    from espnet2_smile.prep.lrs3 import RoiConfig

    before = (out / "video.ark").stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        kept, n_skipped = write_set(root, out, clips, RoiConfig(MOUTH_CENTER_XY), 1, {"n": len(clips)})
    assert (kept, n_skipped) == (5, 8)
    assert "already prepared" in caplog.text and (out / "video.ark").stat().st_mtime_ns == before


def test_every_clip_skipped_fails_with_the_listing(tmp_path):
    root = tmp_path / "lrs3"
    (root / "trainval" / "x").mkdir(parents=True)
    (root / "trainval" / "x" / "50001.mp4").write_bytes(b"")
    write_txt(root / "trainval" / "x" / "50001.txt")
    with pytest.raises(ValueError, match="every clip was skipped"):
        prepare(root, tmp_path / "data" / "train")
    assert "empty mp4" in (tmp_path / "data" / "train.tmp" / "skipped.txt").read_text()
    assert not (tmp_path / "data" / "train").exists()


def test_stage4_removes_long_short_and_mismatched_training_utterances(tmp_path):
    from espnet2_smile.bin.datadir import main as datadir
    from espnet2_smile.utils.datadir import spk2utt_from_utt2spk, write_scp

    src = tmp_path / "org"
    src.mkdir()
    lengths = {"s_00001": (32000, 50), "s_00002": (16000 * 30, 750), "s_00003": (3200, 5),
               "s_00004": (32000, 40)}  # ok, 30 s, 0.2 s, 10 frames apart
    keys = sorted(lengths)
    for name, value in (("wav.scp", "x.wav"), ("video.scp", "x.ark:1"), ("text", "A"), ("utt2spk", "s")):
        write_scp(src / name, {k: value for k in keys})
    write_scp(src / "spk2utt", spk2utt_from_utt2spk({k: "s" for k in keys}))
    write_scp(src / "utt2num_samples", {k: str(v[0]) for k, v in lengths.items()})
    write_scp(src / "utt2num_frames", {k: str(v[1]) for k, v in lengths.items()})
    dst = tmp_path / "train"
    assert datadir(["filter_lengths", str(src), str(dst), "--min_sec", "0.5", "--max_sec", "20",
                    "--max_av_diff", "3"]) == 0
    assert list(read_scp(dst / "wav.scp")) == ["s_00001"]
    removed = read_scp(dst / "removed.txt")
    assert removed["s_00002"].startswith("too long: 30.00 s > 20")
    assert removed["s_00003"].startswith("too short")
    assert removed["s_00004"].startswith("A/V length mismatch")


# ----------------------------------------------------------------- corrupt ark at training time
def corrupt_copy(src: Path, dst: Path) -> str:
    """A copy of data dir ``src`` whose video ark has one entry's header overwritten;
    returns that utterance id."""
    dst.mkdir(parents=True)
    for name in ("wav.scp", "text", "utt2spk"):
        (dst / name).write_bytes((src / name).read_bytes())
    data = bytearray((src / "video.ark").read_bytes())
    scp = read_scp(src / "video.scp")
    bad_uid = sorted(scp)[3]
    offset = int(scp[bad_uid].rsplit(":", 1)[1])
    data[offset:offset + 12] = b"\xff" * 12
    (dst / "video.ark").write_bytes(bytes(data))
    (dst / "video.scp").write_text(
        "".join(f"{k} {dst / 'video.ark'}:{v.rsplit(':', 1)[1]}\n" for k, v in scp.items()))
    return bad_uid


def test_corrupt_ark_entry_names_the_utterance(tiny_av_data: Path, tmp_path: Path, caplog):
    """ESPnet's dataset (what the trainer reads batches from) fails on the entry and
    logs the scp file and the utterance id; the other entries still load."""
    from espnet2.train.dataset import ESPnetDataset

    from espnet2_smile.train.preprocessor import AVPreprocessor

    bad_uid = corrupt_copy(tiny_av_data / "train", tmp_path / "train")
    scp = tmp_path / "train" / "video.scp"
    dataset = ESPnetDataset(
        [(str(tmp_path / "train" / "wav.scp"), "speech", "sound"), (str(scp), "video", "kaldi_ark")],
        preprocess=AVPreprocessor(train=True),
    )
    good_uid = sorted(read_scp(scp))[0]
    assert dataset[good_uid][1]["video"].dtype == np.float32
    with caplog.at_level(logging.ERROR), pytest.raises(ValueError, match="File format is wrong"):
        dataset[bad_uid]
    assert f"path={scp}, type=kaldi_ark, id={bad_uid}" in caplog.text


@pytest.mark.long
def test_training_stops_at_a_corrupt_ark_entry_naming_it(tiny_av_data: Path, tmp_path: Path):
    """A real training run (a data-loader worker, as the recipe's configs use): it stops
    with an error naming the scp file and the utterance, and does not hang."""
    import sys
    import time

    import yaml

    from helpers_model import toy_config
    from test_reliability import train_cmd

    bad_uid = corrupt_copy(tiny_av_data / "train", tmp_path / "data" / "train")
    (tmp_path / "data" / "tokens.txt").write_bytes((tiny_av_data / "tokens.txt").read_bytes())
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(toy_config(
        "smile", max_epoch=1, batch_size=2, use_matplotlib=False, use_tensorboard=False,
        video_frontend_conf={"downsample": 2, "crop_size": 20})))
    cmd = train_cmd(tmp_path / "data", config, tmp_path / "exp", "--num_workers", "1")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "espnet2_smile.bin.avsr_train", *cmd],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert f"path={tmp_path / 'data' / 'train' / 'video.scp'}, type=kaldi_ark, id={bad_uid}" in proc.stderr
    assert "File format is wrong" in proc.stderr
    assert not list((tmp_path / "exp").glob("*epoch.pth"))
    assert time.monotonic() - start < 300
