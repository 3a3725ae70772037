#!/usr/bin/env python3
"""Data-directory tools of the recipe (in place of Kaldi's utils/).

    python -m espnet2_smile.bin.datadir validate DIR [--extra FILE ...]
    python -m espnet2_smile.bin.datadir fix DIR
    python -m espnet2_smile.bin.datadir split SCP N OUT_PREFIX     # OUT_PREFIX.1 .. OUT_PREFIX.N
    python -m espnet2_smile.bin.datadir filter SCP KEYS [--exclude] # to stdout
    python -m espnet2_smile.bin.datadir format SRC DST              # copy + lengths
    python -m espnet2_smile.bin.datadir filter_lengths SRC DST --min_sec 0.5 --max_sec 20 --max_av_diff 3
"""

import argparse
import sys
from pathlib import Path

from espnet2_smile.constants import AUDIO_SR, SAMPLES_PER_FRAME
from espnet2_smile.utils import datadir as dd


def _validate(args) -> int:
    problems = dd.validate_data_dir(args.dir, args.extra)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"{args.dir}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    n = len(dd.read_scp(Path(args.dir) / "wav.scp"))
    print(f"{args.dir}: valid ({n} utterances)", file=sys.stderr)
    return 0


def _fix(args) -> int:
    kept, removed = dd.fix_data_dir(args.dir)
    print(f"{args.dir}: kept {kept}, removed {len(removed)} utterances", file=sys.stderr)
    return 0


def _split(args) -> int:
    entries = dd.read_scp(args.scp)
    for i, keys in enumerate(dd.split_keys(sorted(entries), args.n), 1):
        dd.write_scp(Path(f"{args.out_prefix}.{i}"), {k: entries[k] for k in keys})
    return 0


def _filter(args) -> int:
    keys = dd.read_scp(args.keys).keys()
    for key, value in dd.filter_scp(dd.read_scp(args.scp), keys, args.exclude).items():
        print(f"{key} {value}")
    return 0


def _format(args) -> int:
    """Copy a data dir and add utt2num_samples / utt2num_frames where missing."""
    import kaldiio
    import soundfile

    src, dst = Path(args.src), Path(args.dst)
    dd.copy_data_dir(src, dst)
    if not (dst / "utt2num_samples").is_file():
        wavs = dd.read_scp(dst / "wav.scp")
        dd.write_scp(dst / "utt2num_samples", {k: str(soundfile.info(v).frames) for k, v in wavs.items()})
    if not (dst / "utt2num_frames").is_file():
        videos = dd.read_scp(dst / "video.scp")
        dd.write_scp(dst / "utt2num_frames", {k: str(kaldiio.load_mat(v).shape[0]) for k, v in videos.items()})
    problems = dd.validate_data_dir(dst)
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


def _filter_lengths(args) -> int:
    """Drop too short/long utterances and A/V length mismatches; list them with reasons."""
    src, dst = Path(args.src), Path(args.dst)
    samples = {k: int(v) for k, v in dd.read_scp(src / "utt2num_samples").items()}
    frames = {k: int(v) for k, v in dd.read_scp(src / "utt2num_frames").items()}
    reasons = {}
    for key, n in samples.items():
        sec = n / AUDIO_SR
        audio_frames = n / SAMPLES_PER_FRAME
        if sec < args.min_sec:
            reasons[key] = f"too short: {sec:.2f} s < {args.min_sec} s"
        elif sec > args.max_sec:
            reasons[key] = f"too long: {sec:.2f} s > {args.max_sec} s"
        elif abs(audio_frames - frames[key]) > args.max_av_diff:
            reasons[key] = (
                f"A/V length mismatch: audio {audio_frames:.1f} frames, video {frames[key]} frames "
                f"(> {args.max_av_diff})"
            )
    dd.copy_data_dir(src, dst, keys=[k for k in samples if k not in reasons])
    dd.write_scp(dst / "removed.txt", reasons)
    print(f"{dst}: kept {len(samples) - len(reasons)}, removed {len(reasons)} "
          f"(listed in {dst / 'removed.txt'})", file=sys.stderr)
    return 0


def main(cmd=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate"); p.add_argument("dir"); p.add_argument("--extra", nargs="*", default=[])
    p.set_defaults(func=_validate)
    p = sub.add_parser("fix"); p.add_argument("dir"); p.set_defaults(func=_fix)
    p = sub.add_parser("split"); p.add_argument("scp"); p.add_argument("n", type=int); p.add_argument("out_prefix")
    p.set_defaults(func=_split)
    p = sub.add_parser("filter"); p.add_argument("scp"); p.add_argument("keys"); p.add_argument("--exclude", action="store_true")
    p.set_defaults(func=_filter)
    p = sub.add_parser("format"); p.add_argument("src"); p.add_argument("dst"); p.set_defaults(func=_format)
    p = sub.add_parser("filter_lengths"); p.add_argument("src"); p.add_argument("dst")
    p.add_argument("--min_sec", type=float, default=0.5); p.add_argument("--max_sec", type=float, default=20.0)
    p.add_argument("--max_av_diff", type=float, default=3.0)
    p.set_defaults(func=_filter_lengths)
    args = parser.parse_args(cmd)
    try:
        return args.func(args)
    except (OSError, ValueError) as e:
        print(f"datadir {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
