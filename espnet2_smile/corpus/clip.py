"""One audio-visual clip: speech (espeak-ng), mouth trajectory, rendered face frames."""

from dataclasses import dataclass, field
from fractions import Fraction
from typing import List, Sequence, Tuple

import numpy as np
from scipy.signal import resample_poly

from espnet2_smile.constants import AUDIO_SR, SAMPLES_PER_FRAME, VIDEO_FPS
from espnet2_smile.corpus import espeak
from espnet2_smile.corpus.grammar import sample_sentence, spoken_form
from espnet2_smile.corpus.render import FaceRenderer
from espnet2_smile.corpus.speakers import Speaker
from espnet2_smile.corpus.visemes import P, segments_from_phones, trajectory

DEFAULT_LEAD_MS: float = 60.0
"""Default lead of the lips over the audio (real speech: roughly 40..100 ms)."""

FRAME_QUANTUM: int = 8
"""Clips last a multiple of 8 video frames (0.32 s = 5120 samples = 5 AAC frames of
1024 samples), so the AAC stream ends exactly with the video and a decoder returns
exactly ``n_frames * SAMPLES_PER_FRAME`` samples."""

EXPOSURE_S: Tuple[float, ...] = (-0.008, 0.0, 0.008)
"""Sub-frame sample times averaged per frame (shutter integration)."""


@dataclass
class Word:
    word: str
    start: float  # seconds from clip start
    end: float
    score: float  # ASDSCORE column


@dataclass
class ClipData:
    """Everything known about a synthesised clip (kept in memory; files are written elsewhere)."""

    words: List[Word]
    audio: np.ndarray  # (n_frames * SAMPLES_PER_FRAME,) int16 at AUDIO_SR
    frames: np.ndarray  # (n_frames, H, W, 3) uint8 BGR
    params: np.ndarray  # (n_frames, N_PARAMS) mouth parameters shown in each frame
    phones: List[Tuple[str, float, float]]  # (espeak phoneme, start_s, end_s) in clip time
    conf: int
    lead_ms: float
    extra: dict = field(default_factory=dict)  # "renderer", "segments" (viseme segments)

    @property
    def n_frames(self) -> int:
        return len(self.audio) // SAMPLES_PER_FRAME

    @property
    def duration(self) -> float:
        return self.n_frames / VIDEO_FPS

    @property
    def text(self) -> str:
        return " ".join(w.word for w in self.words)


def to_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """int16 samples at ``sample_rate`` -> float64 at AUDIO_SR (polyphase resampling)."""
    x = samples.astype(np.float64) / 32768.0
    if sample_rate == AUDIO_SR:
        return x
    ratio = Fraction(AUDIO_SR, int(sample_rate))
    return resample_poly(x, ratio.numerator, ratio.denominator)


def speak(
    sentences: Sequence[Sequence[str]],
    speaker: Speaker,
    grammar: str,
) -> espeak.Utterance:
    """Synthesise sentences (lists of uppercase words) with the speaker's voice."""
    text = ". ".join(spoken_form(s, grammar) for s in sentences)
    n_words = sum(len(s) for s in sentences)
    return espeak.synthesize(
        text, voice=speaker.voice, rate=speaker.rate, pitch=speaker.pitch,
        pitch_range=speaker.pitch_range, word_gap=speaker.word_gap, n_words=n_words,
    )


def synthesize_clip(
    sentences: Sequence[Sequence[str]],
    speaker: Speaker,
    rng: np.random.Generator,
    grammar: str = "lrs3",
    lead_ms: float = DEFAULT_LEAD_MS,
    render: bool = True,
) -> ClipData:
    """Synthesise one clip: audio, word times, mouth parameters and (optionally) frames.

    Args:
        sentences: the clip's sentences, each a list of uppercase words.
        speaker: voice and appearance.
        rng: the clip's random stream (silences, level, head motion, noise, ...).
        grammar: ``"lrs3"`` or ``"grid"`` (how letters are spoken).
        lead_ms: how far the mouth movements lead the audio.
        render: if False, ``frames`` is an empty (0, ...) array (audio-only use).
    """
    words_flat = [w for s in sentences for w in s]
    utt = speak(sentences, speaker, grammar)
    sr = utt.sample_rate
    speech = to_16k(utt.samples, sr)
    # level: speech RMS at a random level, peaks below full scale
    active = speech[np.abs(speech) > 1e-4]
    rms = float(np.sqrt(np.mean(active ** 2))) if active.size else 1.0
    target = 10 ** (rng.uniform(-24.0, -18.0) / 20.0)
    speech *= target / max(rms, 1e-6)
    peak = float(np.max(np.abs(speech))) if speech.size else 0.0
    if peak > 0.9:
        speech *= 0.9 / peak
    lead_in = rng.uniform(0.2, 0.5)
    trail = rng.uniform(0.2, 0.45)
    n_in = int(round(lead_in * AUDIO_SR))
    n_total = n_in + len(speech) + int(round(trail * AUDIO_SR))
    quantum = SAMPLES_PER_FRAME * FRAME_QUANTUM
    n_frames = int(np.ceil(n_total / quantum)) * FRAME_QUANTUM
    audio = np.zeros(n_frames * SAMPLES_PER_FRAME)
    audio[n_in:n_in + len(speech)] = speech
    # low room/microphone noise floor (no digital silence)
    floor = rng.standard_normal(len(audio))
    floor = np.convolve(floor, np.ones(4) / 4.0, mode="same")
    floor *= 10 ** (rng.uniform(-64.0, -56.0) / 20.0) / max(float(np.std(floor)), 1e-9)
    audio += floor
    audio_i16 = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)

    t0 = n_in / AUDIO_SR
    phones = [(p.name, t0 + p.start / sr, t0 + p.end / sr) for p in utt.phones]
    clip_end = n_frames / VIDEO_FPS
    segs = segments_from_phones(phones, clip_end)
    # frame i shows the articulation heard lead_ms later (lips lead the audio)
    centres = (np.arange(n_frames) + 0.5) / VIDEO_FPS + lead_ms / 1000.0
    params = np.mean(
        [trajectory(segs, centres + dt, articulation=speaker.appearance.articulation) for dt in EXPOSURE_S],
        axis=0,
    )
    words: List[Word] = []
    for w, (s, e) in zip(words_flat, utt.words):
        start = round(t0 + s / sr, 2)
        end = round(t0 + e / sr, 2)
        f0 = int(np.floor((start - lead_ms / 1000.0) * VIDEO_FPS))
        f1 = int(np.ceil((end - lead_ms / 1000.0) * VIDEO_FPS))
        seg = params[max(f0, 0):max(f1, f0 + 1), P["open"]]
        score = round(1.0 + 9.0 * float(seg.mean()) if seg.size else 1.0, 1)
        words.append(Word(w, start, end, score))
    # times are rounded to 10 ms: keep them monotonic and inside the clip
    for k, wd in enumerate(words):
        lo = words[k - 1].end if k else 0.0
        wd.start = min(max(wd.start, lo), clip_end)
        wd.end = min(max(wd.end, wd.start), clip_end)
    conf = int(np.clip(round(np.mean([w.score for w in words]) / 2.0), 1, 5)) if words else 1
    if render:
        renderer = FaceRenderer(speaker.appearance, rng, n_frames, VIDEO_FPS)
        frames = renderer.render(params)
    else:
        renderer = None
        frames = np.zeros((0, 0, 0, 3), dtype=np.uint8)
    return ClipData(
        words=words, audio=audio_i16, frames=frames, params=params, phones=phones,
        conf=conf, lead_ms=lead_ms, extra={"renderer": renderer, "segments": segs},
    )


def format_lrs3_txt(words: Sequence[Word], conf: int) -> str:
    """LRS3 transcript file content (``Text:``, ``Conf:``, blank line, word table)."""
    lines = [
        "Text:  " + " ".join(w.word for w in words),
        f"Conf:  {conf}",
        "",
        "WORD START END ASDSCORE",
    ]
    lines += [f"{w.word} {w.start:.2f} {w.end:.2f} {w.score:.1f}" for w in words]
    return "\n".join(lines) + "\n"


def speech_stream(
    speaker: Speaker,
    rng: np.random.Generator,
    n_samples: int,
    grammar: str = "lrs3",
) -> np.ndarray:
    """Continuous speech of one speaker (sentences with short pauses), float64 at AUDIO_SR."""
    out = np.zeros(0)
    while len(out) < n_samples:
        sents = [sample_sentence(grammar, rng) for _ in range(3)]
        utt = speak(sents, speaker, grammar)
        x = to_16k(utt.samples, utt.sample_rate)
        x /= max(float(np.sqrt(np.mean(x ** 2))), 1e-6)
        pause = np.zeros(int(rng.uniform(0.05, 0.4) * AUDIO_SR))
        out = np.concatenate([out, x, pause])
    off = int(rng.integers(0, max(len(out) - n_samples, 0) + 1))
    return out[off:off + n_samples]
