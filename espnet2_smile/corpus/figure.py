#!/usr/bin/env python3
"""Draw a strip of consecutive mouth crops of a synthetic clip, labelled by phoneme/viseme.

    python -m espnet2_smile.corpus.figure docs/mouth_frames.png [--seed 1] [--frames 10] [--scale 1]

Each crop is the fixed ``mouth_roi_box(96)`` of a frame; the label is the phoneme
(espeak-ng notation) and viseme whose articulation the frame shows, i.e. the one
heard ``lead_ms`` after the frame.
"""

import argparse
import sys
from typing import List

import cv2
import numpy as np

from espnet2_smile.constants import VIDEO_FPS
from espnet2_smile.corpus.clip import synthesize_clip
from espnet2_smile.corpus.render import ROI_SIZE, crop_mouth
from espnet2_smile.corpus.speakers import make_speaker

SENTENCE = "MY BROTHER FOUND A BEAUTIFUL MAP OF THE OCEAN".split()


def label_at(segments, t: float) -> str:
    for vis, start, end, name in segments:
        if start <= t < end:
            return f"{name} {'/'.join(vis)}"
    return "_ SIL"


def mouth_strip(seed: int = 1, n_frames: int = 10, scale: int = 1, speaker_index: int = 0) -> np.ndarray:
    """BGR image: ``n_frames`` consecutive mouth crops starting at the first word."""
    speaker = make_speaker(seed, "train", speaker_index)
    clip = synthesize_clip([SENTENCE], speaker, np.random.default_rng(seed))
    segs = clip.extra["segments"]
    lead = clip.lead_ms / 1000.0
    # first frame whose articulation belongs to the second word (mid-sentence)
    first = int(np.ceil((clip.words[1].start - lead) * VIDEO_FPS))
    first = min(max(first, 0), clip.n_frames - n_frames)
    tiles: List[np.ndarray] = []
    for i in range(first, first + n_frames):
        crop = crop_mouth(clip.frames[i], ROI_SIZE)
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        t_art = (i + 0.5) / VIDEO_FPS + lead
        band = np.full((30, crop.shape[1], 3), 255, np.uint8)
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(band, f"t={i / VIDEO_FPS:.2f}s", (3, 11), font, 0.33, (80, 80, 80), 1, cv2.LINE_AA)
        cv2.putText(band, label_at(segs, t_art), (3, 25), font, 0.36, (0, 0, 0), 1, cv2.LINE_AA)
        tile = np.concatenate([crop, band], axis=0)
        tiles.append(np.pad(tile, ((0, 0), (0, 2), (0, 0)), constant_values=255))
    return np.concatenate(tiles, axis=1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="output PNG path")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--speaker", type=int, default=2, help="speaker index")
    p.add_argument("--scale", type=int, default=1, help="upscaling of the 96x96 crops")
    args = p.parse_args(argv)
    img = mouth_strip(args.seed, args.frames, args.scale, speaker_index=args.speaker)
    if not cv2.imwrite(args.out, img, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        print(f"figure: cannot write {args.out}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({img.shape[1]}x{img.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
