#!/usr/bin/env python3
"""Face landmarks of videos with MediaPipe's face mesh, as 68-point ``.npz`` files.

Runs in its own environment (``make mediapipe-env``: mediapipe 0.10.21 needs numpy<2,
the project needs numpy>=2), so it imports only numpy, OpenCV and mediapipe; stage 1
(``--roi_method mediapipe``) calls it with that interpreter:

    .venv-mediapipe/bin/python espnet2_smile/bin/mediapipe_landmarks.py --list clips.tsv

Each line of the list is ``<video path><TAB><output .npz path>``. Per video: frames
decoded by ffmpeg at 25 fps (the same decoding as the ROI extraction, so the counts
match), the face mesh run on each (tracking mode, one face), and an ``.npz`` written
(atomically) holding ``landmarks``: float32 (T, 68, 2) in pixels, in the 68-point
(iBUG/dlib) numbering. Only the points the ROI extraction uses are filled (see
``MESH_TO_68``); the other points and the frames without a face are NaN.

A video that cannot be read is reported on stderr (``skip <path>: <reason>``) and gets
no output file; the exit status is non-zero only when the script itself cannot work
(mediapipe missing, bad arguments).
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

FPS = 25
NUM_POINTS = 68

# 68-point index -> MediaPipe face-mesh vertex (canonical 468-vertex topology; the same
# indices in the 478-vertex refined mesh). "Right"/"left" are the subject's: the
# subject's right eye is on the image's left, as for points 36..41 of the 68-point set.
MESH_TO_68 = {
    33: 2,  # base of the nose, midline (mesh "nose bottom")
    36: 33,  # right eye, outer corner
    39: 133,  # right eye, inner corner
    42: 362,  # left eye, inner corner
    45: 263,  # left eye, outer corner
    # outer lip contour, from the right mouth corner over the upper lip ...
    48: 61, 49: 40, 50: 37, 51: 0, 52: 267, 53: 270, 54: 291,
    # ... and back along the lower lip
    55: 321, 56: 314, 57: 17, 58: 84, 59: 91,
    # inner lip contour: right inner corner, upper lip, left inner corner, lower lip
    60: 78, 61: 81, 62: 13, 63: 311, 64: 308, 65: 402, 66: 14, 67: 178,
}


def probe_size(path: str):
    """(width, height) of the first video stream (ffprobe)."""
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
         "-of", "json", path],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ValueError(f"ffprobe failed: {err[-1] if err else 'exit ' + str(proc.returncode)}")
    streams = json.loads(proc.stdout or b"{}").get("streams", [])
    if not streams:
        raise ValueError("no video stream")
    return int(streams[0]["width"]), int(streams[0]["height"])


def rgb_frames(path: str, width: int, height: int):
    """RGB uint8 frames (height, width, 3) at 25 fps, decoded by ffmpeg."""
    proc = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", "0:v:0", "-an",
         "-vf", f"fps={FPS},scale={width}:{height}", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    size = width * height * 3
    try:
        while True:
            buf = proc.stdout.read(size)
            if len(buf) < size:
                break
            yield np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 3)
    finally:
        proc.stdout.close()
        if proc.poll() is None:
            proc.kill()
        code = proc.wait()
    if code > 0:
        raise ValueError(f"ffmpeg failed with exit status {code}")


def video_landmarks(path: str, face_mesh_cls) -> np.ndarray:
    """(T, 68, 2) float32 landmarks of one video; NaN where not filled."""
    width, height = probe_size(path)
    rows = []
    idx68 = np.array(list(MESH_TO_68.keys()))
    idx_mesh = np.array(list(MESH_TO_68.values()))
    with face_mesh_cls(static_image_mode=False, max_num_faces=1, refine_landmarks=False,
                       min_detection_confidence=0.5, min_tracking_confidence=0.5) as mesh:
        for frame in rgb_frames(path, width, height):
            points = np.full((NUM_POINTS, 2), np.nan, dtype=np.float32)
            result = mesh.process(frame)
            if result.multi_face_landmarks:
                lm = result.multi_face_landmarks[0].landmark
                xy = np.array([(p.x, p.y) for p in lm], dtype=np.float64)  # (468, 2), normalised
                # normalised [0, 1] image coordinates -> pixel coordinates (pixel centres at integers)
                points[idx68] = xy[idx_mesh] * (width, height) - 0.5
            rows.append(points)
    if not rows:
        raise ValueError("video stream has no frames")
    return np.stack(rows)


def write_npz(path: str, landmarks: np.ndarray) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.npz"
    try:
        np.savez(tmp, landmarks=landmarks)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", required=True, help="lines: <video path><TAB><output .npz path>")
    args = parser.parse_args(argv)
    try:
        from mediapipe.python.solutions.face_mesh import FaceMesh
    except ImportError as e:
        print(f"mediapipe is not importable in {sys.executable} ({e}); run `make mediapipe-env`", file=sys.stderr)
        return 2
    with open(args.list, encoding="utf-8") as f:
        jobs = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    bad = [j for j in jobs if len(j) != 2]
    if bad:
        print(f"{args.list}: lines must be <video>\\t<output.npz>, got {bad[0]}", file=sys.stderr)
        return 2
    for video, out in jobs:
        try:
            write_npz(out, video_landmarks(video, FaceMesh))
        except (ValueError, OSError) as e:
            print(f"skip {video}: {e}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
