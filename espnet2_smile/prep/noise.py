"""Additive noise: mixing at a signal-to-noise ratio, noise sources, noisy test sets.

* :func:`mix_at_snr` scales a noise segment so that
  ``20 log10(rms(speech) / rms(noise)) = snr`` (RMS over the whole utterance, as
  AV-HuBERT's noisy evaluation does) and adds it. The noisy test sets and the training
  noise augmentation (``espnet2_smile.train.preprocessor``) both use it, so "0 dB"
  means the same thing in training and in testing.
* :class:`NoiseSource` is one noise type: the audio files under a folder (any depth,
  any sample rate, any number of channels: averaged to mono and resampled to 16 kHz),
  or, for the type ``white`` when no folder exists, Gaussian white noise.
* :func:`make_noisy_sets` writes, from a test data directory ``<set>``, the directories
  ``<set>_<type>_snr<tag>`` (e.g. ``test_babble_snrm5`` for -5 dB): new 16 kHz mono wav
  files, the same ``video.scp``, ``text``, ``utt2spk`` and ``spk2utt``. The noise file
  and offset of an utterance come from a generator seeded by ``(seed, type, utterance
  id)`` only, so a rerun gives byte-identical files, whatever else is in the set, and
  every SNR of one type uses the same noise segment. Each set is written under
  ``<name>.tmp`` and renamed when complete, with a ``.done`` marker of its options: an
  interrupted run leaves no partial set, a finished one is skipped.
"""

import hashlib
import json
import logging
import math
import os
import re
import shutil
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from espnet2_smile.constants import AUDIO_SR
from espnet2_smile.utils.datadir import read_scp, spk2utt_from_utt2spk, write_scp

DONE = ".done"
AUDIO_EXTENSIONS = (".wav", ".flac")
WHITE = "white"
CLEAN = "clean"
PCM16_MAX = 32767 / 32768
"""Largest amplitude a 16-bit wav stores without clipping."""

_TYPE_RE = re.compile(r"^[A-Za-z0-9]+$")
_NAME_RE = re.compile(r"^(?P<base>.+)_(?P<type>[A-Za-z0-9]+)_snr(?P<neg>m?)(?P<num>\d+(?:p\d+)?)$")
_COPIED = ("text", "utt2spk", "video.scp", "utt2num_samples", "utt2num_frames")


# ----------------------------------------------------------------------------- mixing
def rms(x: np.ndarray) -> float:
    """Root mean square of all samples."""
    return float(np.sqrt(np.mean(np.square(np.asarray(x, dtype=np.float64)))))


def measured_snr(speech: np.ndarray, noise: np.ndarray) -> float:
    """``20 log10(rms(speech) / rms(noise))`` in dB."""
    return 20.0 * math.log10(rms(speech) / rms(noise))


def scale_noise(speech: np.ndarray, noise: np.ndarray, snr: float) -> np.ndarray:
    """``noise`` scaled so that the speech-to-noise RMS ratio is ``snr`` dB.

    Raises:
        ValueError: when the speech or the noise is silent (the SNR is undefined).
    """
    s, n = rms(speech), rms(noise)
    if s == 0.0:
        raise ValueError("the speech is silent (RMS 0): its SNR is undefined")
    if n == 0.0:
        raise ValueError("the noise segment is silent (RMS 0)")
    return np.asarray(noise, dtype=np.float64) * (s / n / 10.0 ** (snr / 20.0))


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr: float) -> Tuple[np.ndarray, float]:
    """Speech plus noise at ``snr`` dB, scaled down as a whole if it would clip.

    Args:
        speech: (L,) or (C, L) samples in [-1, 1].
        noise: samples broadcastable to ``speech``.
        snr: dB.

    Returns:
        the mixture (float64) and the gain applied to it (1.0 unless its peak exceeded
        the 16-bit range; the gain scales speech and noise alike, so the SNR holds).
    """
    mixture = np.asarray(speech, dtype=np.float64) + scale_noise(speech, noise, snr)
    peak = float(np.max(np.abs(mixture))) if mixture.size else 0.0
    gain = PCM16_MAX / peak if peak > PCM16_MAX else 1.0
    return mixture * gain, gain


def utterance_rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator determined by ``seed`` and ``keys`` alone (stable across runs and
    machines, unlike Python's salted ``hash``)."""
    text = "\x1f".join([str(int(seed)), *keys])
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


# ----------------------------------------------------------------------------- sources
def _resample(x: np.ndarray, sr: int, target: int) -> np.ndarray:
    if sr == target:
        return x
    from scipy.signal import resample_poly

    g = math.gcd(int(sr), int(target))
    return resample_poly(x, target // g, int(sr) // g)


class NoiseSource:
    """Noise of one type, drawn as segments of a requested length.

    Args:
        name: The noise type (letters and digits: it becomes part of set names).
        files: Audio files (any sample rate and channel count), or None for Gaussian
            white noise.
        sample_rate: Rate of the segments (16 kHz).
        cache_size: Files held in memory after resampling (files at ``sample_rate``
            are read segment by segment instead).
    """

    def __init__(
        self,
        name: str,
        files: Optional[Sequence[Path]],
        sample_rate: int = AUDIO_SR,
        cache_size: int = 8,
    ):
        check_noise_type(name)
        if files is not None and not files:
            raise ValueError(f"noise type {name}: no audio files")
        self.name = name
        self.files = None if files is None else [Path(f) for f in files]
        self.sample_rate = sample_rate
        self.cache_size = cache_size
        self._info: Dict[Path, Tuple[int, int]] = {}
        self._cache: "OrderedDict[Path, np.ndarray]" = OrderedDict()

    @classmethod
    def from_dir(cls, noise_dir: Path, name: str, folder: Optional[Path] = None) -> "NoiseSource":
        """The audio files under ``folder`` (default ``noise_dir/name``), sorted by path.

        ``white`` without a folder is generated noise; any other missing or empty folder
        is an error naming it.
        """
        check_noise_type(name)
        given = folder is not None
        folder = Path(folder) if given else Path(noise_dir) / name
        if not folder.is_dir():
            if name == WHITE and not given and not folder.exists():
                return cls(name, None)
            raise ValueError(f"noise type {name}: folder {folder} does not exist")
        files = sorted(
            (p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()),
            key=lambda p: str(p.relative_to(folder)).encode("utf-8"),
        )
        if not files:
            raise ValueError(f"noise type {name}: no {'/'.join(AUDIO_EXTENSIONS)} files under {folder}")
        return cls(name, files)

    def describe(self) -> List[str]:
        """Identity of the source (files and sizes), for the done markers."""
        if self.files is None:
            return [f"{WHITE}: generated Gaussian noise"]
        return [f"{p} {p.stat().st_size}" for p in self.files]

    def _file_info(self, path: Path) -> Tuple[int, int]:
        """(sample rate, frames) of a file; a bad file is an error naming it."""
        if path not in self._info:
            import soundfile

            try:
                info = soundfile.info(str(path))
            except Exception as e:  # soundfile raises its own error types
                raise ValueError(f"noise file {path}: cannot read ({e})") from None
            if info.frames <= 0:
                raise ValueError(f"noise file {path}: no samples")
            self._info[path] = (int(info.samplerate), int(info.frames))
        return self._info[path]

    def _read(self, path: Path, start: int = 0, frames: int = -1) -> np.ndarray:
        import soundfile

        try:
            data, _ = soundfile.read(str(path), start=start, frames=frames, dtype="float64", always_2d=True)
        except Exception as e:
            raise ValueError(f"noise file {path}: cannot read ({e})") from None
        return data.mean(axis=1)

    def _resampled(self, path: Path) -> np.ndarray:
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        sr, _ = self._file_info(path)
        data = _resample(self._read(path), sr, self.sample_rate).astype(np.float32)
        if data.size == 0:
            raise ValueError(f"noise file {path}: no samples at {self.sample_rate} Hz")
        self._cache[path] = data
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return data

    def _length(self, path: Path) -> int:
        sr, frames = self._file_info(path)
        return frames if sr == self.sample_rate else len(self._resampled(path))

    def _samples(self, path: Path, start: int, n: int) -> np.ndarray:
        sr, _ = self._file_info(path)
        if sr == self.sample_rate:
            return self._read(path, start, n)
        return self._resampled(path)[start : start + n].astype(np.float64)

    def segment(self, n: int, rng: np.random.Generator) -> Tuple[np.ndarray, str, int]:
        """``n`` samples of noise: a file drawn uniformly, an offset drawn uniformly; a file
        shorter than ``n`` is looped from the offset.

        Returns:
            (n,) float64 samples, the file ("white" for generated noise), the offset.
        """
        if n <= 0:
            raise ValueError(f"noise segment length must be > 0, got {n}")
        if self.files is None:
            return rng.standard_normal(n), WHITE, 0
        path = self.files[int(rng.integers(len(self.files)))]
        length = self._length(path)
        if length >= n:
            offset = int(rng.integers(length - n + 1))
            seg = self._samples(path, offset, n)
        else:
            offset = int(rng.integers(length))
            whole = self._samples(path, 0, length)
            seg = np.tile(whole, -(-(offset + n) // length))[offset : offset + n]
        if seg.shape[0] != n:
            raise ValueError(f"noise file {path}: read {seg.shape[0]} samples at offset {offset}, expected {n}")
        return seg, str(path), offset


# ----------------------------------------------------------------------------- names
def check_noise_type(name: str) -> str:
    if not _TYPE_RE.match(name or ""):
        raise ValueError(
            f"noise type {name!r}: use letters and digits only (it becomes part of data set names)"
        )
    return name


def check_snr(snr: float) -> float:
    snr = float(snr)
    if not math.isfinite(snr) or "e" in f"{abs(snr):g}":
        raise ValueError(f"SNR {snr!r}: must be a finite number in plain notation (e.g. -5, 2.5)")
    return snr


def snr_tag(snr: float) -> str:
    """-5 -> ``m5``, 0 -> ``0``, 2.5 -> ``2p5`` (letters, digits: safe in set names)."""
    snr = check_snr(snr)
    return ("m" if snr < 0 else "") + f"{abs(snr):g}".replace(".", "p")


def noisy_set_name(base: str, noise_type: str, snr: float) -> str:
    """``<base>_<type>_snr<tag>``, e.g. ``test_babble_snrm5``."""
    return f"{base}_{check_noise_type(noise_type)}_snr{snr_tag(snr)}"


def parse_noisy_set_name(name: str) -> Optional[Tuple[str, str, float]]:
    """(base set, noise type, SNR) of a noisy set name; None for any other name."""
    m = _NAME_RE.match(name)
    if m is None:
        return None
    snr = float(m.group("num").replace("p", "."))
    return m.group("base"), m.group("type"), -snr if m.group("neg") else snr


def parse_snr_list(values: Sequence[str]) -> List[float]:
    """SNRs given as separate words and/or comma-separated: ``["-5,0", "5"]``."""
    out = []
    for value in values:
        for item in str(value).replace(",", " ").split():
            try:
                out.append(check_snr(float(item)))
            except ValueError:
                raise ValueError(f"SNR {item!r}: not a number") from None
    if not out:
        raise ValueError("no SNR given")
    return out


def parse_type_list(values: Sequence[str]) -> List[Tuple[str, Optional[Path]]]:
    """Noise types given as ``NAME`` or ``NAME=FOLDER``, separate and/or comma-separated."""
    out = []
    for value in values:
        for item in str(value).replace(",", " ").split():
            name, sep, folder = item.partition("=")
            check_noise_type(name)
            out.append((name, Path(folder) if sep else None))
    if not out:
        raise ValueError("no noise type given")
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise ValueError(f"noise types repeated: {names}")
    return out


# ----------------------------------------------------------------------------- data sets
@dataclass
class NoisySet:
    name: str
    path: Path
    snr: float
    skipped: bool


def _fingerprint(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _read_clean(uid: str, path: str) -> np.ndarray:
    import soundfile

    if not os.path.isfile(path):
        raise ValueError(f"utterance {uid}: wav.scp entry {path!r} is not a file")
    try:
        data, sr = soundfile.read(path, dtype="float64", always_2d=True)
    except Exception as e:
        raise ValueError(f"utterance {uid}: cannot read {path} ({e})") from None
    if sr != AUDIO_SR or data.shape[1] != 1:
        raise ValueError(
            f"utterance {uid}: {path} is {sr} Hz with {data.shape[1]} channels; test sets hold "
            f"{AUDIO_SR} Hz mono audio"
        )
    return data[:, 0]


def make_noisy_sets(
    src_dir: Path,
    out_root: Path,
    source: NoiseSource,
    snrs: Sequence[float],
    seed: int = 1,
) -> List[NoisySet]:
    """Noisy copies of data directory ``src_dir``, one per SNR, for one noise type.

    Args:
        src_dir: A data directory (``wav.scp`` of 16 kHz mono files, ``video.scp``,
            ``text``, ``utt2spk``).
        out_root: Where the sets go (``out_root/<src name>_<type>_snr<tag>``).
        source: The noise.
        snrs: SNRs in dB.
        seed: Seed of the per-utterance generators.

    Returns:
        one :class:`NoisySet` per SNR (``skipped``: already complete with these options).
    """
    import soundfile

    src_dir, out_root = Path(src_dir), Path(out_root)
    if not (src_dir / "wav.scp").is_file():
        raise ValueError(f"{src_dir}: not a data directory (no wav.scp)")
    snrs = [check_snr(s) for s in snrs]
    if len(set(snr_tag(s) for s in snrs)) != len(snrs):
        raise ValueError(f"SNRs repeated: {snrs}")
    sets, todo = [], []
    noise_id = source.describe()
    for snr in snrs:
        name = noisy_set_name(src_dir.name, source.name, snr)
        out = out_root / name
        options = {
            "source": str(src_dir.resolve()),
            "source_wav_scp": _fingerprint(src_dir / "wav.scp"),
            "source_text": _fingerprint(src_dir / "text"),
            "noise_type": source.name,
            "noise_files": noise_id,
            "snr": snr,
            "seed": int(seed),
            "format": 1,
        }
        marker = out / DONE
        done = marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == options
        sets.append(NoisySet(name, out, snr, done))
        if done:
            logging.info(f"{out}: already made with the same options; skipped")
        else:
            todo.append((out, snr, options))
    if not todo:
        return sets

    wavs = read_scp(src_dir / "wav.scp")
    if not wavs:
        raise ValueError(f"{src_dir}/wav.scp: no utterances")
    tables = {n: read_scp(src_dir / n) for n in _COPIED if (src_dir / n).is_file()}
    for n in ("text", "utt2spk", "video.scp"):
        if n not in tables:
            raise ValueError(f"{src_dir}: missing {n}")
    tmps = {}
    for out, snr, _ in todo:
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "wav").mkdir(parents=True)
        tmps[snr] = tmp
    try:
        new_wav: Dict[float, Dict[str, str]] = {snr: {} for _, snr, _ in todo}
        provenance: Dict[float, Dict[str, str]] = {snr: {} for _, snr, _ in todo}
        for uid in sorted(wavs, key=lambda k: k.encode("utf-8")):
            clean = _read_clean(uid, wavs[uid])
            rng = utterance_rng(seed, source.name, uid)
            noise, noise_file, offset = source.segment(clean.shape[0], rng)
            for out, snr, _ in todo:
                try:
                    mixture, gain = mix_at_snr(clean, noise, snr)
                except ValueError as e:
                    raise ValueError(f"utterance {uid}, noise {noise_file} at {offset}: {e}") from None
                tmp_wav = tmps[snr] / "wav" / f"{uid}.wav"
                soundfile.write(str(tmp_wav), mixture, AUDIO_SR, subtype="PCM_16")
                new_wav[snr][uid] = str(out / "wav" / f"{uid}.wav")
                provenance[snr][uid] = f"{noise_file} offset={offset} snr={snr:g} gain={gain:.6f}"
    except BaseException:  # an error (not a kill) removes what this call started
        for tmp in tmps.values():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    for out, snr, options in todo:
        tmp = tmps[snr]
        for n, table in tables.items():
            write_scp(tmp / n, table)
        write_scp(tmp / "wav.scp", new_wav[snr])
        write_scp(tmp / "utt2noise", provenance[snr])
        write_scp(tmp / "spk2utt", spk2utt_from_utt2spk(tables["utt2spk"]))
        (tmp / DONE).write_text(json.dumps(options, sort_keys=True), encoding="utf-8")
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
        logging.info(f"{out}: {len(wavs)} utterances, {source.name} noise at {snr:g} dB")
    return sets


def corpus_noise_dir(data_dir: Path, split: str = "test") -> Path:
    """``<corpus root>/noise/<split>`` of the corpus a set was prepared from (the root
    is recorded in the set's ``.done`` marker by stage 1)."""
    marker = Path(data_dir) / DONE
    if not marker.is_file():
        raise ValueError(f"{data_dir}: no {DONE} marker of stage 1; give --noise_dir")
    root = json.loads(marker.read_text(encoding="utf-8")).get("root")
    if not root:
        raise ValueError(f"{marker}: names no corpus root; give --noise_dir")
    folder = Path(root) / "noise" / split
    if not folder.is_dir():
        raise ValueError(
            f"{folder} does not exist (the corpus of {data_dir} has no noise folder); give --noise_dir"
        )
    return folder
