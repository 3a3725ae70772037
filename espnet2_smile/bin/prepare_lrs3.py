#!/usr/bin/env python3
"""Stage 1 of the recipe: LRS3 (or the built-in corpus) -> data/{train,dev,test}.

    python -m espnet2_smile.bin.prepare_lrs3 --root /data/LRS3 --out data \\
        --valid_ids /data/lrs3-valid.id --train_subset trainval --roi_method fixed --nj 4

Mouth ROIs (``--roi_method``): ``fixed`` crops a calibrated square of the frame scaled to
``--frame_size``; ``landmarks`` aligns each frame with the clip's 68-point landmark file
``<landmarks_dir>/<split>/<video id>/<clip id>.{pkl,npz,npy}`` (see
``espnet2_smile.prep.roi``); ``mediapipe`` first writes such files with MediaPipe's face
mesh (``espnet2_smile/bin/mediapipe_landmarks.py`` run by ``--mediapipe_python``, default
``<repository>/.venv-mediapipe/bin/python`` from ``make mediapipe-env``) into
``--landmarks_dir`` (default ``<out>/landmarks_mediapipe``), then crops as ``landmarks``.

Clips that cannot be used are skipped and listed with the reason in
``<out>/<set>/skipped.txt`` (see ``espnet2_smile.prep.lrs3``).
"""

import argparse
import json
import logging
import sys
from pathlib import Path

from espnet2_smile.corpus.render import FRAME_SIZE, MOUTH_CENTER_XY, ROI_SIZE
from espnet2_smile.prep.lrs3 import DONE, ROI_METHODS, TRAIN_SUBSETS, ClipLimits, PretrainCut, RoiConfig, plan_sets, write_set
from espnet2_smile.prep.roi import default_mediapipe_python, run_mediapipe


def main(cmd=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, type=Path, help="folder with pretrain/, trainval/, test/")
    parser.add_argument("--out", default=Path("data"), type=Path)
    parser.add_argument("--valid_ids", type=Path, default=None, help="default: <root>/lrs3-valid.id")
    parser.add_argument("--train_subset", default="trainval", choices=TRAIN_SUBSETS,
                        help="trainval or 30h: LRS3's 30 h (trainval minus the valid ids); full or 433h: "
                        "plus pretrain, its clips longer than --pretrain_max_sec cut at word gaps")
    parser.add_argument("--pretrain_max_sec", type=float, default=PretrainCut.max_sec,
                        help="pretrain clips longer than this become several utterances of at most this length")
    parser.add_argument("--pretrain_min_gap", type=float, default=PretrainCut.min_gap,
                        help="pretrain clips are cut in pauses between words longer than this (seconds)")
    parser.add_argument("--roi_method", default="fixed", choices=ROI_METHODS,
                        help="fixed: a calibrated crop of LRS3-framed 224x224 faces; landmarks: aligned "
                        "with the landmark files of --landmarks_dir; mediapipe: landmarks computed first")
    parser.add_argument("--landmarks_dir", type=Path, default=None,
                        help="landmark files <dir>/<split>/<video id>/<clip id>.{pkl,npz,npy} "
                        "(landmarks: required; mediapipe: where they are written, default <out>/landmarks_mediapipe)")
    parser.add_argument("--mediapipe_python", type=Path, default=None,
                        help=f"interpreter of the mediapipe environment (default {default_mediapipe_python()})")
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
        landmarks_dir = args.landmarks_dir
        if args.roi_method == "mediapipe" and landmarks_dir is None:
            landmarks_dir = args.out / "landmarks_mediapipe"
        if args.roi_method == "landmarks" and (landmarks_dir is None or not landmarks_dir.is_dir()):
            raise ValueError("--roi_method landmarks needs --landmarks_dir with the landmark files, "
                             f"got {landmarks_dir}")
        roi = RoiConfig(center_xy=(cx, cy), size=args.roi_size, frame_size=args.frame_size,
                        method=args.roi_method, landmarks_dir=landmarks_dir)
        if not args.max_sec > 0 or not args.max_av_diff >= 0:
            raise ValueError(f"need --max_sec > 0 and --max_av_diff >= 0, got {args.max_sec}, {args.max_av_diff}")
        limits = ClipLimits(max_sec=args.max_sec, max_av_diff=args.max_av_diff)
        if not args.pretrain_max_sec > 0 or not args.pretrain_min_gap >= 0:
            raise ValueError("need --pretrain_max_sec > 0 and --pretrain_min_gap >= 0, got "
                             f"{args.pretrain_max_sec}, {args.pretrain_min_gap}")
        cut = PretrainCut(max_sec=args.pretrain_max_sec, min_gap=args.pretrain_min_gap)
        for name in args.sets:
            if name not in sets:
                raise ValueError(f"unknown set {name!r}; choose from {sorted(sets)}")
            options = dict(root=str(args.root.resolve()), clips=len(sets[name]), roi=[cx, cy, args.roi_size, args.frame_size],
                           train_subset=args.train_subset, roi_method=args.roi_method,
                           max_sec=args.max_sec, max_av_diff=args.max_av_diff)
            if any(rel.startswith("pretrain/") for rel in sets[name]):
                options.update(pretrain_cut=[cut.max_sec, cut.min_gap])
            if args.roi_method != "fixed":
                options.update(roi=[args.roi_size], landmarks_dir=str(landmarks_dir.resolve()))
            done = args.out / name / DONE  # a finished set needs no landmarks
            if args.roi_method == "mediapipe" and not (done.is_file() and json.loads(done.read_text()) == options):
                python = args.mediapipe_python or default_mediapipe_python()
                n = run_mediapipe(python, [(args.root / f"{rel}.mp4", landmarks_dir / f"{rel}.npz")
                                           for rel in sets[name]], args.nj)
                logging.info(f"{name}: mediapipe landmarks of {n} videos written to {landmarks_dir}")
            write_set(args.root, args.out / name, sets[name], roi, args.nj, options, limits, cut)
    except ValueError as e:
        logging.error(str(e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
