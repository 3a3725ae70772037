"""Reader for LRS3 (Lip Reading Sentences 3) transcripts, split folders and valid lists.

Written for the real corpus; the synthetic corpus uses the same formats.

A transcript ``<split>/<video id>/<clip id>.txt`` looks like::

    Text:  SO WE'RE GOING TO START
    Conf:  4

    WORD START END ASDSCORE
    SO 0.53 0.70 1.9
    WE'RE 0.70 0.83 5.4
    ...

(``pretrain`` files have the same structure, with longer word tables). The text may
carry annotation codes in braces such as ``{LG}``; ``normalize_text`` removes them.
The validation list (``lrs3-valid.id`` of AV-HuBERT/ESPnet) has one
``trainval/<video id>/<clip id>`` per line.

Malformed input raises ``ValueError`` with a one-line message naming the file, the
line and the reason.
"""

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple, Union

PathLike = Union[str, "os.PathLike[str]"]

_BRACES = re.compile(r"\{[^}]*\}")
_CLIP_REL = re.compile(r"^(pretrain|trainval|test)/([A-Za-z0-9_-]+)/(\d{5})$")


@dataclass(frozen=True)
class WordAlignment:
    """One row of the word table (times in seconds from the clip start)."""

    word: str
    start: float
    end: float
    score: Optional[float]  # ASDSCORE, None when the column is absent


@dataclass(frozen=True)
class LRS3Transcript:
    """A parsed LRS3 ``.txt`` file."""

    text: str  # the ``Text:`` line as written (uppercase, may contain {..} codes)
    conf: Optional[float]
    words: Tuple[WordAlignment, ...]

    @property
    def clean_text(self) -> str:
        return normalize_text(self.text)


def normalize_text(text: str) -> str:
    """Remove ``{...}`` annotation codes and collapse whitespace."""
    return " ".join(_BRACES.sub(" ", text).split())


def _number(value: str, name: str, lineno: int, what: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise ValueError(f"{name}:{lineno}: bad number {value!r} for {what}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name}:{lineno}: bad number {value!r} for {what}")
    return x


def parse_txt(content: str, name: str = "<string>") -> LRS3Transcript:
    """Parse the content of an LRS3 transcript file (``name`` is used in errors)."""
    lines = content.splitlines()
    text: Optional[str] = None
    conf: Optional[float] = None
    words: List[WordAlignment] = []
    in_table = False
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if in_table:
            fields = line.split()
            if len(fields) not in (3, 4):
                raise ValueError(
                    f"{name}:{lineno}: word row must be 'WORD START END ASDSCORE', got {line!r}"
                )
            start = _number(fields[1], name, lineno, f"START of {fields[0]!r}")
            end = _number(fields[2], name, lineno, f"END of {fields[0]!r}")
            score = _number(fields[3], name, lineno, f"ASDSCORE of {fields[0]!r}") if len(fields) == 4 else None
            if start < 0 or end < start:
                raise ValueError(
                    f"{name}:{lineno}: bad word interval {start}..{end} for {fields[0]!r}"
                )
            words.append(WordAlignment(fields[0], start, end, score))
        elif line.startswith("Text:"):
            if text is not None:
                raise ValueError(f"{name}:{lineno}: second 'Text:' line")
            text = line[len("Text:"):].strip()
        elif line.startswith("Conf:"):
            value = line[len("Conf:"):].strip()
            conf = _number(value, name, lineno, "Conf") if value else None
        elif line.split()[0] == "WORD":
            in_table = True
        elif text is None:
            raise ValueError(f"{name}: missing 'Text:' line (first line is {line!r})")
        else:
            raise ValueError(f"{name}:{lineno}: unexpected line {line!r}")
    if text is None:
        raise ValueError(f"{name}: missing 'Text:' line")
    if not normalize_text(text):
        raise ValueError(f"{name}: empty transcript")
    return LRS3Transcript(text=text, conf=conf, words=tuple(words))


def read_txt(path: PathLike) -> LRS3Transcript:
    """Read and parse an LRS3 transcript file."""
    try:
        with open(path, encoding="utf-8") as f:
            content = f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return parse_txt(content, str(path))


def list_clips(split_dir: PathLike, require_txt: bool = True) -> List[str]:
    """Clips of a split folder as sorted ``"<video id>/<clip id>"`` strings.

    A clip is listed when ``<clip>.mp4`` exists (and ``<clip>.txt`` if ``require_txt``).
    Hidden files (temporary names of an interrupted generation) are ignored.
    """
    root = Path(split_dir)
    if not root.is_dir():
        raise ValueError(f"{root}: not a directory")
    out: List[str] = []
    for spk in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for mp4 in sorted(spk.glob("*.mp4")):
            if mp4.name.startswith("."):
                continue
            if require_txt and not mp4.with_suffix(".txt").is_file():
                continue
            out.append(f"{spk.name}/{mp4.stem}")
    return out


def read_valid_ids(path: PathLike) -> List[str]:
    """Read a validation list: ``["trainval/<video id>/<clip id>", ...]`` in file order."""
    out: List[str] = []
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line:
                continue
            if not _CLIP_REL.match(line):
                raise ValueError(
                    f"{path}:{lineno}: expected '<split>/<video id>/<5-digit clip id>', got {line!r}"
                )
            out.append(line)
    return out


def utterance_id(video_id: str, clip_id: str) -> str:
    """Kaldi-style utterance id ``<video id>_<clip id>``."""
    return f"{video_id}_{clip_id}"
