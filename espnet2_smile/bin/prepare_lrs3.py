#!/usr/bin/env python3
"""Stage 1 of the recipe: LRS3 (or the built-in corpus) -> data/{train,dev,test}.

    python -m espnet2_smile.bin.prepare_lrs3 --root /data/LRS3 --out data \\
        --valid_ids /data/lrs3-valid.id --train_subset trainval --roi_method fixed --nj 4

Clips that cannot be used are skipped and listed with the reason in
``<out>/<set>/skipped.txt`` (see ``espnet2_smile.prep.lrs3``).
"""

import argparse
import logging
import sys
from pathlib import Path

from espnet2_smile.corpus.render import FRAME_SIZE, MOUTH_CENTER_XY, ROI_SIZE
from espnet2_smile.prep.lrs3 import TRAIN_SUBSETS, ClipLimits, RoiConfig, plan_sets, write_set


def main(cmd=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, type=Path, help="folder with pretrain/, trainval/, test/")
    parser.add_argument("--out", default=Path("data"), type=Path)
    parser.add_argument("--valid_ids", type=Path, default=None, help="default: <root>/lrs3-valid.id")
    parser.add_argument("--train_subset", default="trainval", choices=TRAIN_SUBSETS,
                        help="trainval (LRS3 30 h) or full (pretrain + trainval)")
    parser.add_argument("--roi_method", default="fixed", choices=["fixed"],
                        help="fixed: a calibrated crop of LRS3-framed 224x224 faces")
    parser.add_argument("--roi_center", default=f"{MOUTH_CENTER_XY[0]},{MOUTH_CENTER_XY[1]}",
                        help="mouth centre x,y in pixels of the frame scaled to --frame_size")
    parser.add_argument("--roi_size", type=int, default=ROI_SIZE)
    parser.add_argument("--frame_size", type=int, default=FRAME_SIZE)
    parser.add_argument("--max_sec", type=float, default=ClipLimits.max_sec,
                        help="skip clips longer than this (seconds)")
    parser.add_argument("--max_av_diff", type=float, default=ClipLimits.max_av_diff,
                        help="skip clips whose audio and video lengths differ by more than this many 25 fps frames")
    parser.add_argument("--sets", nargs="+", default=["train", "dev", "test"])
    parser.add_argument("--nj", type=int, default=4)
    args = parser.parse_args(cmd)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    try:
        cx, cy = (float(v) for v in args.roi_center.split(","))
        valid_ids = args.valid_ids or args.root / "lrs3-valid.id"
        sets = plan_sets(args.root, valid_ids, args.train_subset)
        roi = RoiConfig(center_xy=(cx, cy), size=args.roi_size, frame_size=args.frame_size)
        if not args.max_sec > 0 or not args.max_av_diff >= 0:
            raise ValueError(f"need --max_sec > 0 and --max_av_diff >= 0, got {args.max_sec}, {args.max_av_diff}")
        limits = ClipLimits(max_sec=args.max_sec, max_av_diff=args.max_av_diff)
        for name in args.sets:
            if name not in sets:
                raise ValueError(f"unknown set {name!r}; choose from {sorted(sets)}")
            options = dict(root=str(args.root.resolve()), clips=len(sets[name]), roi=[cx, cy, args.roi_size, args.frame_size],
                           train_subset=args.train_subset, roi_method=args.roi_method,
                           max_sec=args.max_sec, max_av_diff=args.max_av_diff)
            write_set(args.root, args.out / name, sets[name], roi, args.nj, options, limits)
    except ValueError as e:
        logging.error(str(e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
