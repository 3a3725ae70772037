"""Paired bootstrap confidence interval of a WER difference between two systems.

Both systems decode the same test utterances. Utterance i has ``n_i`` reference words
and ``a_i`` / ``b_i`` errors (substitutions + deletions + insertions) in systems A and
B; with several training seeds, ``a_i`` and ``b_i`` are each system's mean over its
seeds (pooling the seeds). The statistic is the corpus-level difference

    delta = 100 * (sum_i a_i - sum_i b_i) / sum_i n_i      (WER points, A minus B)

and its interval comes from resampling utterances with replacement (the same draw for
both systems: paired), ``n_boot`` times, taking the 2.5 and 97.5 percentiles
(Koehn 2004; Bisani & Ney 2004). Seeds are fixed, so a report is reproducible.
"""

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class BootstrapCI:
    delta: float
    """Observed WER difference A - B in percentage points."""
    low: float
    high: float
    confidence: float
    n_utts: int
    n_boot: int

    def contains_zero(self) -> bool:
        return self.low <= 0.0 <= self.high


def paired_bootstrap(
    errors_a: Sequence[float],
    errors_b: Sequence[float],
    ref_words: Sequence[float],
    n_boot: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
    chunk: int = 1000,
) -> BootstrapCI:
    """Percentile interval of the corpus WER difference A - B (see the module doc).

    Args:
        errors_a, errors_b: (N,) errors per utterance (means over seeds allowed).
        ref_words: (N,) reference words per utterance.
        n_boot: Resamples.
        confidence: Coverage of the interval.
        seed: Seed of the resampling.
        chunk: Resamples drawn at once (memory: chunk x N indices).
    """
    a = np.asarray(errors_a, dtype=np.float64)
    b = np.asarray(errors_b, dtype=np.float64)
    n = np.asarray(ref_words, dtype=np.float64)
    if not (a.ndim == b.ndim == n.ndim == 1 and a.shape == b.shape == n.shape):
        raise ValueError(f"errors and reference words must be equally long 1-D arrays, got {a.shape}, {b.shape}, {n.shape}")
    if a.size == 0:
        raise ValueError("no utterances")
    if n.sum() <= 0:
        raise ValueError("the references have no words")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    diff = a - b
    delta = 100.0 * diff.sum() / n.sum()
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        idx = rng.integers(0, a.size, size=(k, a.size))  # (k, N) utterance draws
        words = n[idx].sum(axis=1)
        stats[start : start + k] = 100.0 * diff[idx].sum(axis=1) / np.maximum(words, 1e-12)
    alpha = 1.0 - confidence
    low, high = np.quantile(stats, [alpha / 2, 1.0 - alpha / 2])
    return BootstrapCI(float(delta), float(low), float(high), confidence, int(a.size), int(n_boot))
