#!/usr/bin/env python3
"""Parameter count and training-step time of each model variant, measured in one run.

Usage:
    python -m espnet2_smile.bin.benchmark_variants \\
        --config_dir egs2/lrs3_smile/avsr1/conf/tuning --steps 5 [--out docs/variants.md]

Every variant trains on the same random batch (same seed) with Adam; the time of a
step covers forward, backward and the optimiser update, and is the median over
``--steps`` steps after ``--warmup`` steps. Ratios are relative to ``baseline``.
"""

import argparse
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List

import torch
import yaml

from espnet2_smile.constants import SAMPLES_PER_FRAME
from espnet2_smile.tasks.avsr import AVSRTask

VARIANTS = ["baseline", "smile", "smile_nofusion", "smile_nosiamese", "smile_mlm", "audio_only"]


def build_variant(config: Path, vocab_size: int) -> torch.nn.Module:
    """The model of a recipe config, with per-utterance normalisation (no stats file)."""
    args = AVSRTask.get_parser().parse_args(["--token_list", "unused"])
    for key, value in yaml.safe_load(config.read_text()).items():
        setattr(args, key, value)
    args.normalize, args.normalize_conf = "utterance_mvn", {}
    args.token_list = ["<blank>", "<unk>"] + [f"t{i}" for i in range(vocab_size - 3)] + ["<sos/eos>"]
    return AVSRTask.build_model(args)


def make_batch(batch: int, frames: int, roi: int, tokens: int, vocab: int) -> Dict:
    g = torch.Generator().manual_seed(0)
    lengths = torch.linspace(frames, frames * 0.7, batch).long()
    text_lengths = torch.linspace(tokens, tokens * 0.7, batch).long()
    text = torch.randint(2, vocab - 1, (batch, tokens), generator=g)
    text[torch.arange(tokens)[None, :] >= text_lengths[:, None]] = -1
    return dict(
        speech=torch.randn(batch, frames * SAMPLES_PER_FRAME, generator=g) * 0.1,
        speech_lengths=lengths * SAMPLES_PER_FRAME,
        video=torch.rand(batch, frames, roi, roi, generator=g) * 255,
        video_lengths=lengths,
        text=text,
        text_lengths=text_lengths,
        utt_id=[f"utt{i}" for i in range(batch)],
    )


def time_steps(model: torch.nn.Module, batch: Dict, warmup: int, steps: int) -> List[float]:
    optim = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    times = []
    for i in range(warmup + steps):
        torch.manual_seed(i)
        start = time.perf_counter()
        loss, _, _ = model(**batch)
        optim.zero_grad()
        loss.backward()
        optim.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def main(cmd=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config_dir", type=Path, default=Path("egs2/lrs3_smile/avsr1/conf/tuning"))
    parser.add_argument("--variants", nargs="+", default=VARIANTS)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--frames", type=int, default=75, help="video frames (25 fps) of the longest utterance")
    parser.add_argument("--roi", type=int, default=96, help="mouth ROI side in pixels")
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--vocab_size", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=None, help="also write the table here (markdown)")
    args = parser.parse_args(cmd)
    torch.set_num_threads(args.threads)

    batch = make_batch(args.batch_size, args.frames, args.roi, args.tokens, args.vocab_size)
    rows = []
    for name in args.variants:
        torch.manual_seed(0)
        model = build_variant(args.config_dir / f"train_{name}.yaml", args.vocab_size)
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        times = time_steps(model, batch, args.warmup, args.steps)
        rows.append((name, n_params, statistics.median(times)))
        print(f"{name}: {n_params} parameters, {statistics.median(times) * 1000:.0f} ms/step", file=sys.stderr)
    base = dict((r[0], r[2]) for r in rows).get("baseline")
    lines = [
        f"Command: `python -m espnet2_smile.bin.benchmark_variants {' '.join(cmd or sys.argv[1:])}`",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"Batch: {args.batch_size} utterances, up to {args.frames} frames ({args.frames / 25:.1f} s), "
        f"{args.roi}x{args.roi} ROIs, {args.tokens} tokens; median of {args.steps} steps after {args.warmup}",
        "",
        "| variant | trainable parameters | ms / training step | vs baseline |",
        "|---|---:|---:|---:|",
    ]
    for name, n_params, t in rows:
        ratio = f"{t / base:.2f}x" if base else "-"
        lines.append(f"| {name} | {n_params:,} | {t * 1000:.0f} | {ratio} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)


if __name__ == "__main__":
    main()
