#!/usr/bin/env python3
"""Noisy copies of test data directories, their names, and lists of training noise.

    # data/test -> data/test_babble_snrm5, data/test_babble_snr0, ..., data/test_white_snr10
    python -m espnet2_smile.bin.make_noisy_sets make --data_dir data --sets test \\
        --noise_types babble speech white --snrs -5 0 5 10 --seed 1 [--noise_dir DIR]

    # the set names, one per line (for the recipe's --test_sets)
    python -m espnet2_smile.bin.make_noisy_sets names --sets test --noise_types babble --snrs -5 0

    # an ESPnet noise_scp of every audio file of the given types (training augmentation)
    python -m espnet2_smile.bin.make_noisy_sets scp --noise_dir CORPUS/noise/train --out data/noise_train.scp

Noise types are the sub-folders of ``--noise_dir`` (any depth below them; wav or flac,
any sample rate, averaged to mono and resampled to 16 kHz), e.g. ``babble speech white
pink`` of the built-in corpus or ``music noise speech`` of MUSAN; ``NAME=FOLDER`` takes
a type from another folder; ``white`` without a folder is generated Gaussian noise.
Without ``--noise_dir``, ``make`` uses ``<corpus>/noise/test`` of the corpus each set
was prepared from (the built-in corpus has one; for LRS3 give e.g. MUSAN's folder).
Lists may also be comma-separated (``--snrs -5,0,5,10``).
"""

import argparse
import logging
import sys
from pathlib import Path

from espnet2_smile.prep.noise import (
    NoiseSource,
    corpus_noise_dir,
    make_noisy_sets,
    noisy_set_name,
    parse_snr_list,
    parse_type_list,
)
from espnet2_smile.utils.datadir import write_scp


def _sets(values):
    return [s for v in values for s in v.replace(",", " ").split()]


def _make(args) -> int:
    snrs = parse_snr_list(args.snrs)
    types = parse_type_list(args.noise_types)
    out_root = args.out_dir or args.data_dir
    for name in _sets(args.sets):
        src = args.data_dir / name
        if not (src / "wav.scp").is_file():
            raise ValueError(f"{src}: not a data directory (no wav.scp)")
        needs_dir = any(folder is None for _, folder in types)
        noise_dir = args.noise_dir or (corpus_noise_dir(src, "test") if needs_dir else None)
        for noise_type, folder in types:
            source = NoiseSource.from_dir(noise_dir, noise_type, folder)
            made = make_noisy_sets(src, out_root, source, snrs, seed=args.seed)
            for s in made:
                print(s.name)
    return 0


def _names(args) -> int:
    snrs = parse_snr_list(args.snrs)
    types = parse_type_list(args.noise_types)
    for name in _sets(args.sets):
        for noise_type, _ in types:
            for snr in snrs:
                print(noisy_set_name(name, noise_type, snr))
    return 0


def _scp(args) -> int:
    if args.noise_types:
        types = parse_type_list(args.noise_types)
    else:
        if not args.noise_dir.is_dir():
            raise ValueError(f"noise folder {args.noise_dir} does not exist")
        types = [(p.name, None) for p in sorted(args.noise_dir.iterdir()) if p.is_dir()]
        if not types:
            raise ValueError(f"noise folder {args.noise_dir} has no sub-folders (noise types)")
    entries = {}
    for noise_type, folder in types:
        source = NoiseSource.from_dir(args.noise_dir, noise_type, folder)
        if source.files is None:
            raise ValueError(f"noise type {noise_type}: no folder under {args.noise_dir}")
        for i, path in enumerate(source.files):
            entries[f"{noise_type}_{i:05d}"] = str(path.resolve())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_scp(args.out, entries)
    logging.info(f"{args.out}: {len(entries)} noise files of types {[t for t, _ in types]}")
    return 0


def main(cmd=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("make", help="write the noisy sets")
    p.add_argument("--data_dir", type=Path, default=Path("data"))
    p.add_argument("--out_dir", type=Path, default=None, help="default: --data_dir")
    p.add_argument("--sets", nargs="+", default=["test"])
    p.add_argument("--noise_dir", type=Path, default=None)
    p.add_argument("--noise_types", nargs="+", default=["babble", "speech", "white"])
    p.add_argument("--snrs", nargs="+", default=["-5", "0", "5", "10"])
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=_make)
    p = sub.add_parser("names", help="print the noisy set names")
    p.add_argument("--sets", nargs="+", default=["test"])
    p.add_argument("--noise_types", nargs="+", default=["babble", "speech", "white"])
    p.add_argument("--snrs", nargs="+", default=["-5", "0", "5", "10"])
    p.set_defaults(func=_names)
    p = sub.add_parser("scp", help="write a noise_scp of training noise files")
    p.add_argument("--noise_dir", type=Path, required=True)
    p.add_argument("--noise_types", nargs="*", default=None, help="default: every sub-folder")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_scp)
    args = parser.parse_args(cmd)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    try:
        return args.func(args)
    except (OSError, ValueError) as e:
        print(f"make_noisy_sets {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
