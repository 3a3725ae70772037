"""Noise: RMS mixing, noise sources, deterministic noisy test sets, training noise."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet2_smile.bin.make_noisy_sets import main as noisy_main
from espnet2_smile.constants import AUDIO_SR
from espnet2_smile.prep.noise import (
    NoiseSource,
    make_noisy_sets,
    measured_snr,
    mix_at_snr,
    noisy_set_name,
    parse_noisy_set_name,
    utterance_rng,
)
from espnet2_smile.utils.datadir import read_scp, validate_data_dir

SNRS = (-5.0, 0.0, 5.0, 10.0)


def _speech(n: int, seed: int = 0, amp: float = 0.3) -> np.ndarray:
    """Voiced-like test signal with pauses (RMS over the whole signal matters)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / AUDIO_SR
    env = (np.sin(2 * np.pi * 1.5 * t) > -0.2).astype(float)
    return amp * env * (np.sin(2 * np.pi * 180 * t) + 0.3 * rng.standard_normal(n))


def _write(path: Path, x: np.ndarray, sr: int = AUDIO_SR, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.stack([x] * channels, axis=1) if channels > 1 else x
    soundfile.write(str(path), data, sr, subtype="PCM_16")
    return path


@pytest.fixture()
def noisy_env(tmp_path: Path):
    """A 3-utterance test data dir (relative wav paths, as stage 1 writes) and a noise
    folder: babble (16 kHz, short: looped), speech (8 kHz stereo: resampled, mono)."""
    root = tmp_path
    data = root / "data" / "test"
    keys = ["spkA_00001", "spkA_00002", "spkB_00001"]
    for i, k in enumerate(keys):
        _write(data / "wav" / f"{k}.wav", _speech(AUDIO_SR * (2 + i), seed=i))
    (data / "wav.scp").write_text("".join(f"{k} data/test/wav/{k}.wav\n" for k in keys))
    (data / "video.scp").write_text("".join(f"{k} data/test/video.ark:{10 + i}\n" for i, k in enumerate(keys)))
    (data / "text").write_text("".join(f"{k} HELLO WORLD {i}\n" for i, k in enumerate(keys)))
    (data / "utt2spk").write_text("".join(f"{k} {k.split('_')[0]}\n" for k in keys))
    (data / "spk2utt").write_text("spkA spkA_00001 spkA_00002\nspkB spkB_00001\n")
    rng = np.random.default_rng(5)
    noise = root / "noise"
    _write(noise / "babble" / "b0.wav", 0.1 * rng.standard_normal(AUDIO_SR * 3 // 2))
    _write(noise / "babble" / "sub" / "b1.wav", 0.2 * rng.standard_normal(AUDIO_SR * 5))
    _write(noise / "speech" / "s0.wav", _speech(8000 * 6, seed=9, amp=0.5), sr=8000, channels=2)
    return root, data, noise, keys


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- mixing
@pytest.mark.parametrize("snr", SNRS + (2.5, 20.0))
def test_mix_at_snr_measured_snr(snr):
    rng = np.random.default_rng(1)
    speech = _speech(AUDIO_SR * 2)
    noise = rng.standard_normal(speech.size) * 3.0  # loud: the mixture must be scaled down
    mixture, gain = mix_at_snr(speech, noise, snr)
    assert np.max(np.abs(mixture)) <= 1.0
    assert abs(measured_snr(gain * speech, mixture - gain * speech) - snr) < 1e-6


def test_mix_rejects_silence():
    with pytest.raises(ValueError, match="speech is silent"):
        mix_at_snr(np.zeros(100), np.ones(100), 0.0)
    with pytest.raises(ValueError, match="noise segment is silent"):
        mix_at_snr(np.ones(100), np.zeros(100), 0.0)


def test_set_names_round_trip():
    assert noisy_set_name("test", "babble", -5) == "test_babble_snrm5"
    assert noisy_set_name("test", "white", 0) == "test_white_snr0"
    assert noisy_set_name("test_lrs2", "music", 2.5) == "test_lrs2_music_snr2p5"
    for base, kind, snr in (("test", "babble", -5.0), ("test_lrs2", "music", 2.5), ("t", "n1", 10.0)):
        assert parse_noisy_set_name(noisy_set_name(base, kind, snr)) == (base, kind, snr)
    assert parse_noisy_set_name("test") is None
    with pytest.raises(ValueError, match="letters and digits"):
        noisy_set_name("test", "bab_ble", 0)


def test_noise_source_segments(noisy_env):
    _, _, noise, _ = noisy_env
    babble = NoiseSource.from_dir(noise, "babble")
    assert [p.name for p in babble.files] == ["b0.wav", "b1.wav"]  # any depth, sorted
    for seed in range(6):  # long segments loop short files; same rng -> same segment
        a = babble.segment(AUDIO_SR * 4, utterance_rng(seed, "x"))
        b = babble.segment(AUDIO_SR * 4, utterance_rng(seed, "x"))
        assert a[0].shape == (AUDIO_SR * 4,) and np.array_equal(a[0], b[0]) and a[1:] == b[1:]
    speech = NoiseSource.from_dir(noise, "speech")  # 8 kHz stereo -> 16 kHz mono
    seg, path, _ = speech.segment(AUDIO_SR * 5, utterance_rng(0, "y"))
    assert seg.shape == (AUDIO_SR * 5,) and path.endswith("s0.wav")
    assert speech._length(speech.files[0]) == AUDIO_SR * 6
    white = NoiseSource.from_dir(noise, "white")  # no folder: generated
    assert white.files is None and white.segment(10, utterance_rng(0, "z"))[1] == "white"
    with pytest.raises(ValueError, match="music: folder .* does not exist"):
        NoiseSource.from_dir(noise, "music")
    (noise / "bad").mkdir()
    (noise / "bad" / "x.wav").write_bytes(b"not a wav file")
    with pytest.raises(ValueError, match=r"noise file .*x\.wav: cannot read"):
        NoiseSource.from_dir(noise, "bad").segment(100, utterance_rng(0, "q"))


# --------------------------------------------------------------------------- noisy sets
def test_noisy_sets_snr_determinism_and_layout(noisy_env, monkeypatch):
    root, data, noise, keys = noisy_env
    monkeypatch.chdir(root)
    types = ("babble", "speech", "white")
    for kind in types:
        made = make_noisy_sets(Path("data/test"), Path("data"), NoiseSource.from_dir(noise, kind), SNRS, seed=3)
        assert [s.name for s in made] == [noisy_set_name("test", kind, s) for s in SNRS]
    digests = {}
    for kind in types:
        for snr in SNRS:
            out = root / "data" / noisy_set_name("test", kind, snr)
            assert validate_data_dir(out) == []
            for name in ("video.scp", "text", "utt2spk", "spk2utt"):
                assert (out / name).read_text() == (data / name).read_text(), name
            wavs = read_scp(out / "wav.scp")
            provenance = read_scp(out / "utt2noise")
            assert list(wavs) == keys
            for k in keys:
                noisy, sr = soundfile.read(root / wavs[k], dtype="float64")
                clean, _ = soundfile.read(data / "wav" / f"{k}.wav", dtype="float64")
                assert sr == AUDIO_SR and noisy.ndim == 1 and noisy.shape == clean.shape
                gain = float(provenance[k].split("gain=")[1])
                got = measured_snr(gain * clean, noisy - gain * clean)
                assert abs(got - snr) < 0.5, (kind, snr, k, got)
            digests[out.name] = _digest(out)
            assert not out.with_name(out.name + ".tmp").exists()
    # a rerun skips finished sets; a removed set is rebuilt byte-identically
    victim = root / "data" / "test_babble_snr0"
    mtime = (root / "data" / "test_speech_snr5" / "wav.scp").stat().st_mtime_ns
    import shutil

    shutil.rmtree(victim)
    for kind in types:
        made = make_noisy_sets(Path("data/test"), Path("data"), NoiseSource.from_dir(noise, kind), SNRS, seed=3)
        assert {s.name: s.skipped for s in made}.get("test_babble_snr0", True) is (kind != "babble")
    assert _digest(victim) == digests["test_babble_snr0"]
    assert (root / "data" / "test_speech_snr5" / "wav.scp").stat().st_mtime_ns == mtime
    # the same noise segment at every SNR of one type; another seed draws other noise
    offsets = {snr: read_scp(root / "data" / noisy_set_name("test", "babble", snr) / "utt2noise") for snr in SNRS}
    assert len({tuple(v.split(" snr=")[0] for v in o.values()) for o in offsets.values()}) == 1
    make_noisy_sets(Path("data/test"), Path("other"), NoiseSource.from_dir(noise, "babble"), [0.0], seed=4)
    assert read_scp(root / "other" / "test_babble_snr0" / "utt2noise") != offsets[0.0]
    # a changed option redoes the set
    made = make_noisy_sets(Path("data/test"), Path("data"), NoiseSource.from_dir(noise, "babble"), [0.0], seed=5)
    assert not made[0].skipped and json.loads((victim / ".done").read_text())["seed"] == 5


def test_cli_make_names_scp_and_errors(noisy_env, monkeypatch, capsys):
    root, _, noise, keys = noisy_env
    monkeypatch.chdir(root)
    assert noisy_main(["names", "--sets", "test", "--noise_types", "babble", "white", "--snrs", "-5", "0,10"]) == 0
    names = capsys.readouterr().out.split()
    assert names == ["test_babble_snrm5", "test_babble_snr0", "test_babble_snr10",
                     "test_white_snrm5", "test_white_snr0", "test_white_snr10"]
    assert noisy_main(["make", "--sets", "test", "--noise_dir", str(noise), "--noise_types", "babble,white",
                       "--snrs", "-5", "0,10"]) == 0
    assert capsys.readouterr().out.split() == names
    assert all(validate_data_dir(root / "data" / n) == [] for n in names)
    # NAME=FOLDER takes a type from another folder
    assert noisy_main(["make", "--noise_types", f"talk={noise / 'speech'}", "--snrs", "0"]) == 0
    assert capsys.readouterr().out.split() == ["test_talk_snr0"]
    # training noise list: every file of every type, absolute paths
    assert noisy_main(["scp", "--noise_dir", str(noise), "--out", "data/noise_train.scp"]) == 0
    scp = read_scp(root / "data" / "noise_train.scp")
    assert sorted(Path(p).name for p in scp.values()) == ["b0.wav", "b1.wav", "s0.wav"]
    # one-line errors naming the item
    capsys.readouterr()
    assert noisy_main(["make", "--noise_dir", str(noise), "--noise_types", "music"]) == 1
    err = capsys.readouterr().err.strip()
    assert "music" in err and "does not exist" in err and len(err.splitlines()) == 1
    assert noisy_main(["make", "--sets", "nothere", "--noise_dir", str(noise)]) == 1
    assert "data/nothere" in capsys.readouterr().err
    assert noisy_main(["make", "--noise_dir", str(noise), "--noise_types", "babble", "--snrs", "abc"]) == 1
    assert "SNR 'abc'" in capsys.readouterr().err
    # without --noise_dir the corpus of the set (its stage-1 marker) is asked for
    assert noisy_main(["make", "--noise_types", "babble", "--snrs", "0"]) == 1
    assert "give --noise_dir" in capsys.readouterr().err


def test_bad_clean_audio_is_named(noisy_env, monkeypatch):
    root, data, noise, keys = noisy_env
    monkeypatch.chdir(root)
    _write(data / "wav" / f"{keys[1]}.wav", _speech(8000), sr=8000)
    with pytest.raises(ValueError, match=f"utterance {keys[1]}: .* 8000 Hz"):
        make_noisy_sets(Path("data/test"), Path("data"), NoiseSource.from_dir(noise, "babble"), [0.0])
    assert not list((root / "data").glob("test_babble*"))


# --------------------------------------------------------------------------- training noise
def _preprocessor(noise_scp, train=True, **kwargs):
    from espnet2_smile.train.preprocessor import AVPreprocessor

    return AVPreprocessor(train=train, token_type=None, noise_scp=str(noise_scp) if noise_scp else None, **kwargs)


def _item(seed=0):
    rng = np.random.default_rng(seed)
    return {"speech": _speech(AUDIO_SR * 2, seed=seed, amp=0.1), "video": rng.integers(0, 255, (50, 8, 8)).astype(np.uint8)}


@pytest.mark.parametrize("snr", (0.0, 10.0))
def test_training_noise_at_snr_leaves_video(noisy_env, snr):
    _, _, noise, _ = noisy_env
    scp = noise.parent / "noise.scp"
    scp.write_text(f"b0 {noise / 'babble' / 'b0.wav'}\n{noise / 'speech' / 's0.wav'}\n")
    pre = _preprocessor(scp, noise_apply_prob=1.0, noise_snrs=[snr])
    np.random.seed(0)
    for i in range(4):
        item = _item(i)
        clean, video = item["speech"].copy(), item["video"].copy()
        out = pre(f"utt{i}", item)
        assert out["speech"].shape == clean.shape  # mono stays mono
        assert not np.allclose(out["speech"], clean)
        assert np.max(np.abs(out["speech"])) < 1.0  # not rescaled against clipping
        assert abs(measured_snr(clean, out["speech"] - clean) - snr) < 0.5
        assert out["video"].dtype == np.float32 and np.array_equal(out["video"], video.astype(np.float32))


def test_training_noise_options(noisy_env):
    _, _, noise, _ = noisy_env
    scp = noise.parent / "noise.scp"
    scp.write_text(f"{noise / 'babble' / 'b0.wav'}\n")
    item = _item()
    # default off; never at validation; p = 0; a 'clean' draw
    for pre in (_preprocessor(None), _preprocessor(scp, train=False),
                _preprocessor(scp, noise_apply_prob=0.0), _preprocessor(scp, noise_snrs=["clean"])):
        out = pre("u", _item())
        assert np.array_equal(out["speech"], item["speech"])
    # a set with 'clean': some utterances noisy, some clean; the range option works too
    pre = _preprocessor(scp, noise_snrs=[5, "clean"])
    np.random.seed(1)
    changed = [not np.array_equal(pre("u", _item())["speech"], item["speech"]) for _ in range(30)]
    assert 5 < sum(changed) < 25
    pre = _preprocessor(scp, noise_db_range="3_6")
    np.random.seed(2)
    snrs = [measured_snr(item["speech"], pre("u", _item())["speech"] - item["speech"]) for _ in range(20)]
    assert 3 - 0.5 < min(snrs) and max(snrs) < 6 + 0.5 and max(snrs) - min(snrs) > 0.5
    with pytest.raises(ValueError, match="noise_snrs: 'loud'"):
        _preprocessor(scp, noise_snrs=[0, "loud"])
    (noise.parent / "missing.scp").write_text("/nowhere/n.wav\n")
    with pytest.raises(ValueError, match="1 files do not exist, e.g. /nowhere/n.wav"):
        _preprocessor(noise.parent / "missing.scp")
