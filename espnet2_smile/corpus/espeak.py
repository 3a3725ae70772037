"""Speech synthesis with phoneme timing through the espeak-ng C library (ctypes).

The library reports, through its synthesis callback, one event per phoneme and per word
with the sample position at which it starts (``espeakINITIALIZE_PHONEME_EVENTS``).

Two properties of libespeak-ng shape this module:

* it is not thread-safe (one engine per process; parallelism uses processes), and
* its waveform generator keeps state from one utterance to the next (glottal phase,
  pitch smoothing, ...), so the same text synthesised after different texts gives
  different samples. To make every clip a pure function of its parameters, the engine
  is initialised once per process and every utterance is synthesised in a forked child
  of that process: each child starts from the same freshly initialised state.
"""

import bisect
import ctypes
import ctypes.util
import os
import pickle
import re
import struct
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

# espeak_AUDIO_OUTPUT
AUDIO_OUTPUT_SYNCHRONOUS = 2
# espeak_Initialize options
ESPEAK_INITIALIZE_PHONEME_EVENTS = 0x0001
# espeak_EVENT_TYPE
EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
EVENT_SENTENCE = 2
EVENT_END = 5
EVENT_MSG_TERMINATED = 6
EVENT_PHONEME = 7
# espeak_POSITION_TYPE
POS_CHARACTER = 1
# synth flags
ESPEAK_CHARS_UTF8 = 1
# espeak_PARAMETER
PARAM_RATE = 1
PARAM_VOLUME = 2
PARAM_PITCH = 3
PARAM_RANGE = 4
PARAM_WORDGAP = 7

LIBRARY_NAMES = ("libespeak-ng.so.1", "libespeak-ng.so")


class _EventId(ctypes.Union):
    _fields_ = [
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("string", ctypes.c_char * 8),
    ]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass
class Phone:
    """One phoneme event: espeak mnemonic, sample interval, 0-based word index (-1: pause)."""

    name: str
    start: int
    end: int
    word: int


@dataclass
class Utterance:
    """Synthesised speech: int16 samples at ``sample_rate`` and its phoneme/word timing."""

    samples: np.ndarray
    sample_rate: int
    phones: List[Phone]
    words: List[Tuple[int, int]]  # (start sample, end sample) per input word


class EspeakError(RuntimeError):
    """Raised when libespeak-ng cannot be loaded, initialised or fails to synthesise."""


def _load_library() -> ctypes.CDLL:
    names = list(LIBRARY_NAMES)
    found = ctypes.util.find_library("espeak-ng")
    if found:
        names.append(found)
    errors = []
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError as e:
            errors.append(str(e))
    raise EspeakError(
        "espeak-ng: cannot load libespeak-ng.so.1 (install the Debian package "
        f"libespeak-ng1): {'; '.join(errors)}"
    )


class _Engine:
    """Per-process espeak-ng state (initialised lazily, re-used by forked children)."""

    def __init__(self) -> None:
        self.pid: Optional[int] = None
        self.lib: Optional[ctypes.CDLL] = None
        self.sample_rate = 0

    def ensure(self, data_path: Optional[str] = None) -> None:
        if self.lib is not None:
            return
        lib = _load_library()
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        path = data_path.encode() if data_path else None
        sr = lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, 0, path, ESPEAK_INITIALIZE_PHONEME_EVENTS
        )
        if sr <= 0:
            raise EspeakError(
                f"espeak-ng: espeak_Initialize failed (returned {sr}); is espeak-ng-data "
                "installed (Debian package espeak-ng-data)?"
            )
        self.lib = lib
        self.sample_rate = int(sr)
        self.pid = os.getpid()


_ENGINE = _Engine()


def _synthesize_here(
    text: str, voice: str, rate: int, pitch: int, pitch_range: int, word_gap: int
) -> Tuple[bytes, list]:
    """Synthesise in the current process; returns raw int16 bytes and raw events."""
    lib = _ENGINE.lib
    assert lib is not None
    chunks: List[bytes] = []
    events: list = []
    total = [0]

    def callback(wav, n, ev):  # noqa: ANN001 - ctypes signature
        if n > 0 and wav:
            chunks.append(ctypes.string_at(wav, n * 2))
            total[0] += n
        i = 0
        while ev[i].type != EVENT_LIST_TERMINATED:
            e = ev[i]
            if e.type == EVENT_PHONEME:
                name = bytes(e.id.string).split(b"\0")[0].decode("utf-8", "replace")
                events.append((EVENT_PHONEME, e.sample, name, e.text_position))
            elif e.type == EVENT_WORD:
                events.append((EVENT_WORD, e.sample, int(e.id.number), e.text_position))
            elif e.type in (EVENT_END, EVENT_MSG_TERMINATED, EVENT_SENTENCE):
                events.append((int(e.type), e.sample, "", e.text_position))
            i += 1
        return 0

    cb = _CALLBACK(callback)
    lib.espeak_SetSynthCallback(cb)
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise EspeakError(f"espeak-ng: unknown voice {voice!r}")
    for param, value in (
        (PARAM_RATE, rate),
        (PARAM_PITCH, pitch),
        (PARAM_RANGE, pitch_range),
        (PARAM_WORDGAP, word_gap),
        (PARAM_VOLUME, 100),
    ):
        lib.espeak_SetParameter(param, int(value), 0)
    data = text.encode("utf-8")
    err = lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
    if err != 0:
        raise EspeakError(f"espeak-ng: espeak_Synth failed with code {err} for text {text!r}")
    lib.espeak_Synchronize()
    return b"".join(chunks), events


def _read_all(fd: int) -> bytes:
    parts = []
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            break
        parts.append(b)
    return b"".join(parts)


def synthesize(
    text: str,
    voice: str = "en-us",
    rate: int = 175,
    pitch: int = 50,
    pitch_range: int = 50,
    word_gap: int = 0,
    n_words: Optional[int] = None,
) -> Utterance:
    """Synthesise ``text`` with espeak-ng and return samples with phoneme/word timing.

    Args:
        text: text to speak (plain text, UTF-8).
        voice: espeak voice name, optionally with a variant (``"en-gb-scotland+f2"``).
        rate: speaking rate in words per minute (80..450).
        pitch: base pitch 0..100 (espeak default 50).
        pitch_range: pitch range 0..100 (0 = monotone).
        word_gap: extra pause between words in units of 10 ms.
        n_words: if given, the number of whitespace-separated words ``text`` must have.
            Word times are returned for every such word, also where espeak speaks two
            words as one (their phonemes are then shared out by letter count).

    The result is a deterministic function of the arguments: synthesis runs in a forked
    child of a process whose engine has never synthesised (see module docstring).
    """
    _ENGINE.ensure()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: synthesise from the pristine engine state, send, exit
        status = 0
        try:
            os.close(r)
            try:
                payload = ("ok", _synthesize_here(text, voice, rate, pitch, pitch_range, word_gap))
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                payload = ("error", f"{type(e).__name__}: {e}")
            data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
            view = memoryview(struct.pack("<Q", len(data)) + data)
            while view:
                n = os.write(w, view)
                view = view[n:]
            os.close(w)
        except BaseException:  # noqa: BLE001
            status = 1
        finally:
            os._exit(status)
    os.close(w)
    try:
        raw = _read_all(r)
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    if len(raw) < 8 or len(raw) != 8 + struct.unpack("<Q", raw[:8])[0]:
        raise EspeakError(
            f"espeak-ng: synthesis process died (wait status {status}) for text {text!r}"
        )
    kind, value = pickle.loads(raw[8:])
    if kind != "ok":
        raise EspeakError(str(value))
    audio_bytes, events = value
    return _build_utterance(text, audio_bytes, events, _ENGINE.sample_rate, n_words)


def _build_utterance(
    text: str, audio_bytes: bytes, events: list, sample_rate: int, n_words: Optional[int]
) -> Utterance:
    samples = np.frombuffer(audio_bytes, dtype=np.int16).copy()
    n = len(samples)
    tokens = [(m.start(), m.group()) for m in re.finditer(r"\S+", text)]
    if n_words is not None and len(tokens) != n_words:
        raise EspeakError(f"espeak-ng: {len(tokens)} words in {text!r}, expected {n_words}")
    starts = [t[0] for t in tokens]
    # Phone intervals: a phoneme lasts until the next timed event of any kind.
    marks = sorted({min(max(int(ev[1]), 0), n) for ev in events} | {n})
    phones: List[Phone] = []
    group_start: Dict[int, int] = {}  # first token of a word event -> its sample
    current = -1
    for kind, sample, value, text_pos in events:
        sample = min(max(int(sample), 0), n)
        if kind == EVENT_WORD:
            # text_position is 1-based; map it to the token it falls in
            k = bisect.bisect_right(starts, max(int(text_pos) - 1, 0)) - 1
            if k > current:
                current = k
                group_start[k] = sample
        elif kind == EVENT_PHONEME:
            nxt = marks[bisect.bisect_right(marks, sample)] if sample < n else n
            is_pause = value.startswith("_") or value == ""
            phones.append(Phone(value, sample, nxt, -1 if is_pause else max(current, 0)))
    # espeak sometimes speaks several words as one (multi-word dictionary entries,
    # linking): split the group's phonemes over its words in proportion to their letters
    heads = sorted(group_start)
    for gi, a in enumerate(heads):
        b = (heads[gi + 1] if gi + 1 < len(heads) else len(tokens)) - 1
        if b <= a:
            continue
        own = [p for p in phones if p.word == a]
        letters = np.array([len(tokens[k][1]) for k in range(a, b + 1)], dtype=np.float64)
        bounds = np.round(np.cumsum(letters) / letters.sum() * len(own)).astype(int)
        lo = 0
        for j, hi in enumerate(bounds):
            for p in own[lo:hi]:
                p.word = a + j
            lo = hi
    words: List[Tuple[int, int]] = []
    prev_end = 0
    for k in range(len(tokens)):
        own = [p for p in phones if p.word == k]
        if own:
            first = min(p.start for p in own)
            ws = group_start.get(k, first)
            # a word whose first phoneme follows a pause starts at that phoneme
            start = first if (first < ws or _pause_between(phones, ws, first)) else ws
            end = max(p.end for p in own)
        else:
            start = end = group_start.get(k, prev_end)
        start = max(start, prev_end)
        end = max(end, start)
        words.append((start, end))
        prev_end = end
    return Utterance(samples=samples, sample_rate=sample_rate, phones=phones, words=words)


def _pause_between(phones: List[Phone], a: int, b: int) -> bool:
    return any(p.word == -1 and a <= p.start < b for p in phones)


def engine_sample_rate() -> int:
    """Native output sample rate of the espeak-ng engine (initialises it)."""
    _ENGINE.ensure()
    return _ENGINE.sample_rate
