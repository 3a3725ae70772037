"""Reading sclite reports (``sclite ... -o all stdout > result.txt``, as stage 13 runs it).

Two parts of a report are used: the ``Sum/Avg`` line of the percentage summary (the
corpus WER that RESULTS.md shows) and the alignment dump, which gives every
utterance's ``Scores: (#C #S #D #I)``.
"""

import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

SUM_AVG_FIELDS = ("Snt", "Wrd", "Corr", "Sub", "Del", "Ins", "Err", "S.Err")

_ID_RE = re.compile(r"^id: \((?P<id>.*)\)\s*$")
_SCORES_RE = re.compile(r"^Scores: \(#C #S #D #I\)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$")


def sum_avg_row(result: Path) -> Optional[List[str]]:
    """The numbers of sclite's ``Sum/Avg`` line: Snt Wrd Corr Sub Del Ins Err S.Err."""
    for line in Path(result).read_text(encoding="utf-8", errors="replace").splitlines():
        if "Sum/Avg" in line:
            fields = [f for f in re.split(r"[|\s]+", line) if f]
            numbers = fields[fields.index("Sum/Avg") + 1 :]
            if len(numbers) >= 8:
                return numbers[:8]
    return None


def error_rate(result: Path) -> float:
    """The ``Err`` percentage of the ``Sum/Avg`` line (the WER of a ``score_wer`` report).

    Raises:
        ValueError: naming the file when it has no ``Sum/Avg`` line.
    """
    row = sum_avg_row(result)
    if row is None:
        raise ValueError(f"{result}: no sclite Sum/Avg line")
    return float(row[SUM_AVG_FIELDS.index("Err")])


def utterance_scores(result: Path) -> Dict[str, Tuple[int, int, int, int]]:
    """Per-utterance ``(correct, substitutions, deletions, insertions)`` from the
    alignment dump, keyed by sclite's id (``<speaker>-<utterance>``).

    Raises:
        ValueError: naming the file when it has no alignments (not ``-o all``/``pralign``)
            or repeats an id.
    """
    scores: Dict[str, Tuple[int, int, int, int]] = {}
    current = None
    for line in Path(result).read_text(encoding="utf-8", errors="replace").splitlines():
        m = _ID_RE.match(line)
        if m:
            current = m.group("id")
            continue
        m = _SCORES_RE.match(line)
        if m and current is not None:
            if current in scores:
                raise ValueError(f"{result}: utterance {current} appears twice")
            scores[current] = tuple(int(v) for v in m.groups())  # type: ignore[assignment]
            current = None
    if not scores:
        raise ValueError(f"{result}: no per-utterance 'Scores:' lines (run sclite with -o all or pralign)")
    return scores
