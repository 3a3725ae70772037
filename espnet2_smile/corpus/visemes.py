"""Phoneme -> viseme map and coarticulated mouth-parameter trajectories.

Mouth parameters (all roughly in 0..1, ``spread`` in -1..1):

=========  ==================================================================
open       jaw/lip opening (0: lips sealed)
spread     lip-corner spread (+: wide, as in /i:/; -: narrow)
round      lip rounding (corners pulled in, circular opening)
protrude   lip protrusion (lips pushed forward: thicker, shadowed)
teeth_up   visibility of the upper teeth
teeth_lo   visibility of the lower teeth
tongue     visibility/height of the tongue tip
tuck       lower lip tucked under the upper teeth (/f/, /v/)
=========  ==================================================================

Phonemes map many-to-one onto visemes as in real speech: /p b m/ share one closure
shape, /f v/ one labiodental shape, /t d n/, /s z/, /k g ng h/ are barely
distinguishable from each other, ... so that lip reading alone stays ambiguous.

Coarticulation follows the dominance model of Cohen & Massaro (1993): every
phoneme target exerts a dominance that decays with the distance from the phoneme
centre; the parameter value at time t is the dominance-weighted mean of all targets.
Lip closures (/p b m/) and labiodentals dominate strongly (they must be reached),
lingual consonants dominate the lips only weakly (lip rounding of a following
vowel spreads over them, as in "soon").
"""

from typing import Dict, List, Sequence, Tuple

import numpy as np

PARAMS: Tuple[str, ...] = (
    "open", "spread", "round", "protrude", "teeth_up", "teeth_lo", "tongue", "tuck",
)
N_PARAMS = len(PARAMS)
P = {name: i for i, name in enumerate(PARAMS)}

# viseme -> (targets, dominance) ; dominance per parameter (scalar broadcast if float)
#                 open  spread round  prot  t_up  t_lo tongue tuck
_V: Dict[str, Tuple[Sequence[float], Sequence[float]]] = {
    "SIL": ((0.04, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.0), (0.5,) * 8),
    "PBM": ((0.00, 0.00, 0.05, 0.10, 0.00, 0.00, 0.00, 0.0), (6.0, 1.0, 0.3, 0.5, 3.0, 3.0, 3.0, 1.0)),
    "FV": ((0.14, 0.05, 0.00, 0.00, 1.00, 0.00, 0.00, 1.0), (3.0, 0.8, 0.4, 0.6, 3.0, 2.0, 2.0, 4.0)),
    "TH": ((0.26, 0.10, 0.00, 0.00, 0.80, 0.60, 1.00, 0.0), (1.5, 0.5, 0.3, 0.3, 1.5, 1.5, 3.0, 1.0)),
    "TD": ((0.20, 0.15, 0.00, 0.00, 0.70, 0.50, 0.35, 0.0), (0.7, 0.3, 0.1, 0.1, 0.7, 0.7, 1.0, 0.5)),
    "L": ((0.30, 0.10, 0.00, 0.00, 0.60, 0.40, 0.80, 0.0), (0.8, 0.3, 0.1, 0.1, 0.8, 0.8, 1.5, 0.5)),
    "SZ": ((0.10, 0.35, 0.00, 0.00, 1.00, 0.90, 0.00, 0.0), (1.2, 0.6, 0.15, 0.15, 1.2, 1.2, 1.0, 0.5)),
    "SH": ((0.18, -0.35, 0.55, 0.90, 0.90, 0.70, 0.00, 0.0), (1.2, 1.2, 1.5, 1.5, 1.0, 1.0, 1.0, 0.5)),
    "KG": ((0.30, 0.05, 0.00, 0.00, 0.40, 0.30, 0.10, 0.0), (0.4, 0.15, 0.05, 0.05, 0.4, 0.4, 0.5, 0.5)),
    "R": ((0.20, -0.30, 0.55, 0.60, 0.40, 0.20, 0.00, 0.0), (1.0, 1.0, 1.2, 1.2, 0.8, 0.8, 0.8, 0.5)),
    "W": ((0.12, -0.60, 1.00, 1.00, 0.00, 0.00, 0.00, 0.0), (1.5, 1.5, 2.5, 2.5, 1.0, 1.0, 1.0, 0.5)),
    "AA": ((0.92, 0.10, 0.00, 0.00, 0.50, 0.30, 0.20, 0.0), (1.0,) * 8),
    "AE": ((0.62, 0.45, 0.00, 0.00, 0.80, 0.50, 0.20, 0.0), (1.0,) * 8),
    "AH": ((0.45, 0.10, 0.00, 0.00, 0.50, 0.30, 0.10, 0.0), (0.6,) * 8),
    "IH": ((0.32, 0.50, 0.00, 0.00, 0.90, 0.60, 0.15, 0.0), (0.8,) * 8),
    "IY": ((0.22, 0.85, 0.00, 0.00, 1.00, 0.70, 0.10, 0.0), (1.0,) * 8),
    "ER": ((0.30, -0.20, 0.45, 0.50, 0.50, 0.20, 0.00, 0.0), (1.0,) * 8),
    "AO": ((0.65, -0.30, 0.65, 0.40, 0.30, 0.10, 0.10, 0.0), (1.0,) * 8),
    "UW": ((0.16, -0.55, 0.95, 0.90, 0.10, 0.00, 0.00, 0.0), (1.2,) * 8),
}
VISEMES: Tuple[str, ...] = tuple(_V)
TARGETS = np.array([_V[v][0] for v in VISEMES], dtype=np.float64)  # (V, P)
DOMINANCE = np.array([_V[v][1] for v in VISEMES], dtype=np.float64)  # (V, P)
VISEME_INDEX = {v: i for i, v in enumerate(VISEMES)}

# espeak-ng English phoneme mnemonics -> viseme sequence (diphthongs glide)
PHONEME_TO_VISEMES: Dict[str, Tuple[str, ...]] = {
    # consonants
    "p": ("PBM",), "b": ("PBM",), "m": ("PBM",),
    "f": ("FV",), "v": ("FV",),
    "T": ("TH",), "D": ("TH",),
    "t": ("TD",), "d": ("TD",), "n": ("TD",), "t#": ("TD",), "t2": ("TD",), "t[": ("TD",),
    "d#": ("TD",), "n-": ("TD",),
    "l": ("L",), "@L": ("AH", "L"), "l/": ("L",), "l-": ("L",),
    "s": ("SZ",), "z": ("SZ",),
    "S": ("SH",), "Z": ("SH",), "tS": ("SH",), "dZ": ("SH",),
    "k": ("KG",), "g": ("KG",), "N": ("KG",), "h": ("KG",), "x": ("KG",), "?": ("KG",),
    "r": ("R",), "r-": ("R",), "*": ("TD",),
    "w": ("W",), "w#": ("W",), "W": ("W",),
    "j": ("IY",),
    # vowels
    "A:": ("AA",), "A@": ("AA",), "aa": ("AA",), "A": ("AA",),
    "a": ("AE",), "E": ("AE",), "e": ("AE",),
    "@": ("AH",), "@-": ("AH",), "@2": ("AH",), "@5": ("AH",), "a#": ("AH",), "V": ("AH",),
    "VR": ("AH", "ER"),
    "I": ("IH",), "I#": ("IH",), "I2": ("IH",),
    "i": ("IY",), "i:": ("IY",),
    "3": ("ER",), "3:": ("ER",), "IR": ("ER",),
    "0": ("AO",), "O": ("AO",), "O:": ("AO",), "O2": ("AO",), "O@": ("AO",), "o@": ("AO",),
    "U": ("UW",), "u:": ("UW",), "u": ("UW",),
    # diphthongs / triphthongs
    "aI": ("AA", "IY"), "aI2": ("AA", "IY"), "aI3": ("AA", "IY"), "aI@": ("AA", "IY", "AH"),
    "aU": ("AA", "UW"), "aU@": ("AA", "UW", "AH"),
    "eI": ("AE", "IY"), "OI": ("AO", "IY"), "oU": ("AO", "UW"), "@U": ("AH", "UW"),
    "i@": ("IY", "AH"), "i@3": ("IY", "AH"), "e@": ("AE", "AH"), "U@": ("UW", "AH"),
}

# first-character fallback for mnemonics not listed above (accents differ a little)
_FALLBACK = {
    "p": "PBM", "b": "PBM", "m": "PBM", "f": "FV", "v": "FV", "T": "TH", "D": "TH",
    "t": "TD", "d": "TD", "n": "TD", "l": "L", "s": "SZ", "z": "SZ", "S": "SH", "Z": "SH",
    "k": "KG", "g": "KG", "N": "KG", "h": "KG", "x": "KG", "r": "R", "w": "W", "j": "IY",
    "A": "AA", "a": "AE", "E": "AE", "e": "AE", "@": "AH", "V": "AH", "I": "IH", "i": "IY",
    "3": "ER", "0": "AO", "O": "AO", "o": "AO", "U": "UW", "u": "UW", "_": "SIL",
}


def phoneme_visemes(name: str) -> Tuple[str, ...]:
    """Viseme sequence of an espeak-ng phoneme mnemonic (empty for modifier events)."""
    if name in PHONEME_TO_VISEMES:
        return PHONEME_TO_VISEMES[name]
    if name == "" or name.startswith("_"):
        return ("SIL",)
    if name[0] in ";'," or not name[0].isalnum() and name[0] not in "@?*":
        return ()  # modifier (palatalisation, stress): continues the previous phoneme
    return (_FALLBACK.get(name[0], "AH"),)


def trajectory(
    segments: Sequence[Tuple],
    times: np.ndarray,
    articulation: float = 1.0,
    spread_s: float = 0.5,
    min_tau_s: float = 0.03,
) -> np.ndarray:
    """Mouth parameters at ``times`` (seconds) for a sequence of viseme segments.

    Args:
        segments: ``(visemes, start_s, end_s, ...)``; a segment with several visemes
            (diphthong) glides through them in equal sub-intervals.
        times: (T,) query times in seconds.
        articulation: speaker factor scaling the jaw opening (hypo/hyper-articulation).
        spread_s: dominance width as a fraction of the target's duration.
        min_tau_s: minimum dominance width in seconds.

    Returns:
        (T, N_PARAMS) float64 parameters.
    """
    centres: List[float] = []
    taus: List[float] = []
    idx: List[int] = []
    for visemes, start, end, *_ in segments:
        if not visemes:
            continue
        dur = max(end - start, 1e-3)
        k = len(visemes)
        if visemes == ("SIL",) and dur > 0.16:
            # long silences: rest targets every 80 ms so the mouth settles
            n = int(dur / 0.08)
            for j in range(n):
                centres.append(start + (j + 0.5) * dur / n)
                taus.append(max(min_tau_s, 0.04))
                idx.append(VISEME_INDEX["SIL"])
            continue
        for j, v in enumerate(visemes):
            centres.append(start + (j + 0.5) * dur / k)
            taus.append(max(min_tau_s, spread_s * dur / k))
            idx.append(VISEME_INDEX[v])
    times = np.asarray(times, dtype=np.float64)
    if not idx:
        out = np.repeat(TARGETS[VISEME_INDEX["SIL"]][None], len(times), axis=0)
        return out
    c = np.asarray(centres)[:, None]  # (K, 1)
    tau = np.asarray(taus)[:, None]  # (K, 1)
    d = np.abs(times[None, :] - c) / tau  # (K, T)
    shape = np.exp(-np.power(d, 1.5))  # (K, T)
    ii = np.asarray(idx)
    dom = DOMINANCE[ii][:, None, :] * shape[:, :, None] + 1e-12  # (K, T, P)
    tgt = TARGETS[ii][:, None, :]  # (K, 1, P)
    out = (dom * tgt).sum(0) / dom.sum(0)  # (T, P)
    out[:, P["open"]] = np.clip(out[:, P["open"]] * articulation, 0.0, 1.0)
    return out


STOPS = frozenset({"p", "b", "t", "d", "k", "g", "tS", "dZ", "t#", "t2", "d#"})
"""Plosives/affricates: espeak marks their release; the closure is the silent stretch before."""


def segments_from_phones(
    phones: Sequence[Tuple[str, float, float]], clip_end_s: float, max_closure_s: float = 0.15
) -> List[Tuple[Tuple[str, ...], float, float, str]]:
    """Viseme segments ``(visemes, start_s, end_s, phoneme)`` for ``(phoneme, start_s, end_s)``.

    Modifier events (no viseme) extend the previous segment. A gap before a stop
    (up to ``max_closure_s``) is its closure and joins the stop; other gaps and the
    stretches before the first and after the last phoneme become silence.
    """
    segs: List[Tuple[Tuple[str, ...], float, float, str]] = []
    t = 0.0
    for name, start, end in phones:
        vis = phoneme_visemes(name)
        if not vis:
            if segs:
                v, s, _, n = segs[-1]
                segs[-1] = (v, s, max(end, s), n)
                t = max(t, end)
            continue
        if start > t + 1e-3:
            if name in STOPS and segs and start - t <= max_closure_s:
                start = t
            else:
                segs.append((("SIL",), t, start, "_"))
        segs.append((vis, start, max(end, start + 1e-3), name))
        t = max(t, end)
    if clip_end_s > t + 1e-3:
        segs.append((("SIL",), t, clip_end_s, "_"))
    return segs
