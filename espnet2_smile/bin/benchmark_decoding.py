#!/usr/bin/env python3
"""Wall time and WER of test-set decoding: the stock path vs batched decoding.

    OMP_NUM_THREADS=1 python -m espnet2_smile.bin.benchmark_decoding \\
        --asr_train_config exp/asr_x/config.yaml --asr_model_file exp/asr_x/valid.acc.ave.pth \\
        --data_dir dump/raw/test --decode_config conf/decode.yaml \\
        --batch_size 16 --num_utts 50 --output_dir exp/asr_x/benchmark_decoding

decodes the first ``--num_utts`` utterances of ``<data_dir>/wav.scp`` (0: all) twice
in this process with ``espnet2_smile.bin.avsr_inference`` and the same decode config:
the stock path (ESPnet's beam search, one utterance at a time) and
``--batch_decoding true --batch_size N``. Arguments it does not know are passed to
both runs (e.g. ``--modality audio``, ``--lm_train_config ...``).

Timing: the wall time of each whole run (model loading, data reading, encoder,
search, writing), stock first; the selected utterances are read once before, so
neither run reads cold files. Ratio = stock / batched.

WER: word errors (substitutions + deletions + insertions of a Levenshtein alignment
of whitespace-separated words) summed over the utterances, divided by the number of
reference words in ``<data_dir>/text``, in percent: stage 13's ``wer`` tokenisation
(words split on whitespace, ``--cleaner`` applied to the references only; default
``none`` as in the recipe). The count of utterances with identical hypotheses is
reported too.

Prints a table and writes ``<output_dir>/{benchmark.json,benchmark.md}`` and both
runs' outputs (``stock/``, ``batched/``).
"""

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from espnet2_smile.utils.datadir import read_scp

PATHS = ("stock", "batched")


def word_errors(ref: str, hyp: str) -> Tuple[int, int]:
    """(Levenshtein distance between the word sequences, number of reference words)."""
    r, h = ref.split(), hyp.split()
    prev = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        cur = [i] + [0] * len(h)
        for j, hw in enumerate(h, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rw != hw))
        prev = cur
    return prev[-1], len(r)


def corpus_wer(refs: Dict[str, str], hyps: Dict[str, str]) -> Tuple[int, int]:
    """(word errors, reference words) summed over the utterances of ``refs``; an
    utterance missing from ``hyps`` counts as an empty hypothesis."""
    errors = words = 0
    for key, ref in refs.items():
        e, n = word_errors(ref, hyps.get(key, ""))
        errors += e
        words += n
    return errors, words


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--asr_train_config", required=True, type=Path)
    parser.add_argument("--asr_model_file", required=True, type=Path)
    parser.add_argument("--data_dir", required=True, type=Path,
                        help="Data dir with wav.scp, video.scp and text")
    parser.add_argument("--decode_config", type=Path, default=None,
                        help="Decode config of both runs (default: avsr_inference's defaults)")
    parser.add_argument("--batch_size", type=int, default=16, help="Utterances per batch (batched run)")
    parser.add_argument("--num_utts", type=int, default=0, help="First N utterances of wav.scp (0: all)")
    parser.add_argument("--cleaner", default="none", help="Text cleaner of the references")
    parser.add_argument("--output_dir", required=True, type=Path)
    return parser


def _decode_cmd(args, extra: List[str], out: Path, key_file: Path) -> List[str]:
    data = args.data_dir
    cmd = [
        "--asr_train_config", str(args.asr_train_config),
        "--asr_model_file", str(args.asr_model_file),
        "--data_path_and_name_and_type", f"{data / 'wav.scp'},speech,sound",
        "--data_path_and_name_and_type", f"{data / 'video.scp'},video,kaldi_ark",
        "--key_file", str(key_file), "--output_dir", str(out),
    ]
    if args.decode_config is not None:
        cmd = ["--config", str(args.decode_config)] + cmd
    return cmd + extra


def _read_inputs(args, keys: List[str]) -> None:
    """Read every selected utterance once (page cache) before the timed runs."""
    from espnet2.train.dataset import ESPnetDataset

    data = args.data_dir
    dataset = ESPnetDataset(
        [(str(data / "wav.scp"), "speech", "sound"), (str(data / "video.scp"), "video", "kaldi_ark")]
    )
    for loader in dataset.loader_dict.values():
        for key in keys:
            loader[key]


def main(cmd: Optional[List[str]] = None) -> Dict:
    args, extra = get_parser().parse_known_args(cmd)
    if args.batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {args.batch_size}")
    if args.num_utts < 0:
        raise ValueError(f"--num_utts must be >= 0, got {args.num_utts}")
    for name in ("wav.scp", "video.scp", "text"):
        if not (args.data_dir / name).is_file():
            raise FileNotFoundError(f"{args.data_dir / name} does not exist")
    for flag in ("--batch_decoding", "--batch_size", "--output_dir", "--key_file"):
        if flag in extra:
            raise ValueError(f"{flag} is set by the benchmark; do not pass it")

    import espnet2_smile  # noqa: F401  (offline-safe nltk before ESPnet's modules)
    from espnet2.text.cleaner import TextCleaner

    from espnet2_smile.bin import avsr_inference

    keys = list(read_scp(args.data_dir / "wav.scp"))
    if args.num_utts:
        keys = keys[: args.num_utts]
    args.output_dir.mkdir(parents=True, exist_ok=True)
    key_file = args.output_dir / "keys"
    key_file.write_text("".join(f"{k}\n" for k in keys), encoding="utf-8")
    texts = read_scp(args.data_dir / "text")
    cleaner = TextCleaner(None if args.cleaner == "none" else args.cleaner)
    refs = {k: cleaner(" ".join(texts[k].split())) for k in keys}
    _read_inputs(args, keys)

    report: Dict = {
        "num_utts": len(keys),
        "batch_size": args.batch_size,
        "decode_config": str(args.decode_config) if args.decode_config else None,
        "extra_args": extra,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch_threads": None,
        "machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": os.cpu_count(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m espnet2_smile.bin.benchmark_decoding " + " ".join(cmd if cmd is not None else sys.argv[1:]),
    }
    hyps: Dict[str, Dict[str, str]] = {}
    for path in PATHS:
        out = args.output_dir / path
        run = _decode_cmd(args, extra, out, key_file)
        if path == "batched":
            run += ["--batch_decoding", "true", "--batch_size", str(args.batch_size)]
        start = time.perf_counter()
        avsr_inference.main(run)
        wall = time.perf_counter() - start
        hyps[path] = read_scp(out / "1best_recog" / "text")
        errors, words = corpus_wer(refs, hyps[path])
        report[path] = {"wall_s": wall, "word_errors": errors, "wer": 100.0 * errors / max(words, 1)}
        report["ref_words"] = words
    import torch

    report["torch_threads"] = torch.get_num_threads()
    report["speedup"] = report["stock"]["wall_s"] / report["batched"]["wall_s"]
    report["identical_hyps"] = sum(
        " ".join(hyps["stock"].get(k, "").split()) == " ".join(hyps["batched"].get(k, "").split())
        for k in keys
    )

    lines = [
        f"Decoding benchmark: {report['num_utts']} utterances of {args.data_dir} "
        f"({report['ref_words']} reference words), {report['date']}",
        f"machine: {report['machine']}, {report['cpu_count']} CPUs, "
        f"OMP_NUM_THREADS={report['omp_num_threads']}, torch threads {report['torch_threads']}",
        f"command: {report['command']}",
        "",
        "| path | wall time (s) | word errors | WER (%) |",
        "|---|---|---|---|",
        f"| stock (one utterance at a time) | {report['stock']['wall_s']:.2f} | "
        f"{report['stock']['word_errors']} | {report['stock']['wer']:.2f} |",
        f"| batched (--batch_size {args.batch_size}) | {report['batched']['wall_s']:.2f} | "
        f"{report['batched']['word_errors']} | {report['batched']['wer']:.2f} |",
        "",
        f"speed-up (stock / batched wall time): {report['speedup']:.2f}x; identical hypotheses: "
        f"{report['identical_hyps']}/{report['num_utts']}",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    (args.output_dir / "benchmark.md").write_text(text, encoding="utf-8")
    (args.output_dir / "benchmark.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
