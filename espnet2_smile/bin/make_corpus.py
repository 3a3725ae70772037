#!/usr/bin/env python3
"""Generate the built-in synthetic audio-visual corpus in LRS3 layout.

    python -m espnet2_smile.bin.make_corpus --out DIR [--size tiny|small|default]
        [--seed N] [--nj N] [--grammar lrs3|grid] [--lead_ms MS]

A rerun with the same arguments completes whatever is missing.
"""

import argparse
import os
import sys
import time

# one BLAS/OpenMP thread per worker process (parallelism is over processes)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def get_parser() -> argparse.ArgumentParser:
    from espnet2_smile.corpus import DEFAULT_LEAD_MS, GRAMMARS, SIZES

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--out", required=True, help="corpus root directory")
    p.add_argument("--size", default="default", choices=tuple(SIZES),
                   help="tiny: ~40 clips (tests); small; default: >= 1 h of training speech")
    p.add_argument("--seed", type=int, default=1, help="random seed (same seed, same corpus)")
    p.add_argument("--nj", type=int, default=1, help="number of worker processes")
    p.add_argument("--grammar", default="lrs3", choices=GRAMMARS,
                   help="lrs3: talk-style English sentences; grid: GRID-structured commands")
    p.add_argument("--lead_ms", type=float, default=DEFAULT_LEAD_MS,
                   help="lead of the lip movements over the audio, in ms")
    p.add_argument("--no_progress", action="store_true", help="no progress bar on stderr")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    from espnet2_smile.corpus import generate_corpus, summary_lines

    t0 = time.time()
    try:
        manifest = generate_corpus(
            args.out, size=args.size, seed=args.seed, grammar=args.grammar,
            lead_ms=args.lead_ms, nj=args.nj, progress=not args.no_progress,
        )
    except (ValueError, RuntimeError) as e:
        print(f"make_corpus: error: {e}", file=sys.stderr)
        return 1
    for line in summary_lines(manifest):
        print(line)
    print(f"corpus at {args.out} ({time.time() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
