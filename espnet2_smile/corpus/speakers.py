"""Synthetic speakers: voice (espeak accent, variant, pitch, range, rate) and appearance."""

import base64
import hashlib
from dataclasses import asdict, dataclass
from typing import Dict, Tuple

import numpy as np

from espnet2_smile.corpus.render import Appearance, sample_appearance

ACCENTS: Tuple[str, ...] = (
    "en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan",
    "en-gb-x-gbcwmd", "en-us-nyc",
)
"""espeak-ng English voices (accents)."""

MALE_VARIANTS: Tuple[str, ...] = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
FEMALE_VARIANTS: Tuple[str, ...] = ("f1", "f2", "f3", "f4", "f5")

ROLES: Tuple[str, ...] = ("train", "test", "noise_train", "noise_test")
_ROLE_CODE = {r: i for i, r in enumerate(ROLES)}


@dataclass
class Speaker:
    """A synthetic speaker (one "video" in LRS3 terms)."""

    spk_id: str
    role: str
    index: int
    voice: str
    female: bool
    pitch: int
    pitch_range: int
    rate: int
    word_gap: int
    appearance: Appearance

    def summary(self) -> Dict[str, object]:
        d = asdict(self)
        d.pop("appearance")
        return d


def pseudo_youtube_id(seed: int, role: str, index: int) -> str:
    """Deterministic 11-character id in the YouTube alphabet ``[A-Za-z0-9_-]``."""
    digest = hashlib.sha256(f"espnet2_smile-corpus:{seed}:{role}:{index}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:11]


def role_rng(seed: int, role: str, index: int, *extra: int) -> np.random.Generator:
    """Independent random stream for an item, whatever order items are generated in."""
    if role not in _ROLE_CODE:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    return np.random.default_rng([int(seed), 7919, _ROLE_CODE[role], int(index), *map(int, extra)])


def make_speaker(seed: int, role: str, index: int) -> Speaker:
    """Speaker ``index`` of ``role``; a pure function of its arguments."""
    rng = role_rng(seed, role, index)
    female = bool(rng.random() < 0.5)
    accent = ACCENTS[int(rng.integers(len(ACCENTS)))]
    variants = FEMALE_VARIANTS if female else MALE_VARIANTS
    variant = variants[int(rng.integers(len(variants)))]
    return Speaker(
        spk_id=pseudo_youtube_id(seed, role, index),
        role=role,
        index=index,
        voice=f"{accent}+{variant}",
        female=female,
        pitch=int(rng.integers(30, 71)),
        pitch_range=int(rng.integers(30, 86)),
        rate=int(rng.integers(150, 196)),
        word_gap=int(rng.integers(0, 3)),
        appearance=sample_appearance(rng, female),
    )
