"""Kaldi-style data directories: reading, atomic writing, validation, fixing, splitting.

A data directory holds ``wav.scp``, ``video.scp``, ``text``, ``utt2spk``, ``spk2utt``
(+ optional per-utterance files such as ``utt2num_samples``), every file sorted by
utterance id in ``LC_ALL=C`` (byte) order, one ``<id> <value>`` line per utterance.
"""

import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

UTT_FILES = ("wav.scp", "video.scp", "text", "utt2spk")
"""Per-utterance files every audio-visual data directory has."""

OPTIONAL_UTT_FILES = ("utt2num_samples", "utt2num_frames", "utt2dur")


def read_scp(path: Path) -> Dict[str, str]:
    """``<id> <value>`` lines -> dict (value may contain spaces or be empty).

    Raises:
        ValueError: on a duplicated id, naming the file and the id.
    """
    out: Dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            key, _, value = line.partition(" ")
            if key in out:
                raise ValueError(f"{path}:{n}: duplicated id {key}")
            out[key] = value
    return out


def write_scp(path: Path, entries: Dict[str, str]) -> None:
    """Write ``entries`` sorted in C order, atomically (temp file + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        for key in sorted(entries, key=lambda k: k.encode("utf-8")):
            f.write(f"{key} {entries[key]}\n")
    os.replace(tmp, path)


def spk2utt_from_utt2spk(utt2spk: Dict[str, str]) -> Dict[str, str]:
    spk2utt: Dict[str, List[str]] = {}
    for utt in sorted(utt2spk, key=lambda k: k.encode("utf-8")):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    return {spk: " ".join(utts) for spk, utts in spk2utt.items()}


def _present(data_dir: Path, names: Iterable[str]) -> List[str]:
    return [n for n in names if (data_dir / n).is_file()]


def validate_data_dir(data_dir: Path, extra_files: Sequence[str] = ()) -> List[str]:
    """Problems of a data directory, one line each (empty list: valid).

    Checks: the required files exist; every file is sorted in C order with unique ids;
    all per-utterance files list the same ids; no transcript is empty; ``spk2utt``
    matches ``utt2spk``.
    """
    data_dir = Path(data_dir)
    problems = []
    for name in UTT_FILES + ("spk2utt",):
        if not (data_dir / name).is_file():
            problems.append(f"{data_dir}: missing {name}")
    if problems:
        return problems
    names = list(UTT_FILES) + _present(data_dir, OPTIONAL_UTT_FILES) + list(extra_files)
    ids: Dict[str, List[str]] = {}
    for name in names + ["spk2utt"]:
        path = data_dir / name
        try:
            entries = read_scp(path)
        except ValueError as e:
            problems.append(str(e))
            continue
        keys = list(entries)
        if keys != sorted(keys, key=lambda k: k.encode("utf-8")):
            problems.append(f"{path}: not sorted (LC_ALL=C)")
        if name == "text":
            empty = [k for k, v in entries.items() if not v.strip()]
            if empty:
                problems.append(f"{path}: empty transcript for {len(empty)} ids, e.g. {empty[0]}")
        if name != "spk2utt":
            ids[name] = keys
    ref = ids.get("wav.scp", [])
    for name, keys in ids.items():
        if set(keys) != set(ref):
            only = sorted(set(keys) ^ set(ref))
            problems.append(
                f"{data_dir / name}: ids differ from wav.scp ({len(only)} ids, e.g. {only[0]})"
            )
    if not problems:
        expect = spk2utt_from_utt2spk(read_scp(data_dir / "utt2spk"))
        if read_scp(data_dir / "spk2utt") != expect:
            problems.append(f"{data_dir / 'spk2utt'}: does not match utt2spk")
    return problems


def fix_data_dir(data_dir: Path, extra_files: Sequence[str] = ()) -> Tuple[int, List[str]]:
    """Keep only ids present in every per-utterance file (and with a non-empty text),
    sort every file, rewrite spk2utt.

    Returns:
        the number of ids kept and the ids removed.
    """
    data_dir = Path(data_dir)
    names = _present(data_dir, UTT_FILES + OPTIONAL_UTT_FILES) + list(extra_files)
    tables = {name: read_scp(data_dir / name) for name in names}
    keep = set.intersection(*(set(t) for t in tables.values())) if tables else set()
    if "text" in tables:
        keep = {k for k in keep if tables["text"][k].strip()}
    removed = sorted(set().union(*(set(t) for t in tables.values())) - keep)
    for name, table in tables.items():
        write_scp(data_dir / name, {k: v for k, v in table.items() if k in keep})
    if "utt2spk" in tables:
        utt2spk = {k: v for k, v in tables["utt2spk"].items() if k in keep}
        write_scp(data_dir / "spk2utt", spk2utt_from_utt2spk(utt2spk))
    return len(keep), removed


def filter_scp(entries: Dict[str, str], keys: Iterable[str], exclude: bool = False) -> Dict[str, str]:
    """Entries whose id is (``exclude``: is not) in ``keys``."""
    keys = set(keys)
    return {k: v for k, v in entries.items() if (k in keys) != exclude}


def split_keys(keys: Sequence[str], n: int) -> List[List[str]]:
    """Split sorted ids into ``n`` contiguous, nearly equal, non-empty parts."""
    if n < 1:
        raise ValueError(f"cannot split into {n} parts")
    if len(keys) < n:
        raise ValueError(f"cannot split {len(keys)} ids into {n} non-empty parts")
    size, rest = divmod(len(keys), n)
    parts, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < rest else 0)
        parts.append(list(keys[start:end]))
        start = end
    return parts


def copy_data_dir(src: Path, dst: Path, keys: Optional[Iterable[str]] = None) -> None:
    """Copy every per-utterance file (optionally only ``keys``) and rebuild spk2utt."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    keep = None if keys is None else set(keys)
    for name in _present(src, UTT_FILES + OPTIONAL_UTT_FILES):
        table = read_scp(src / name)
        if keep is not None:
            table = {k: v for k, v in table.items() if k in keep}
        write_scp(dst / name, table)
    write_scp(dst / "spk2utt", spk2utt_from_utt2spk(read_scp(dst / "utt2spk")))
