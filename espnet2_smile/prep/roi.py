"""Landmark-based mouth ROIs: 68-point face landmarks -> aligned 96x96 gray mouth crops.

Per clip (25 fps video, one landmark set per frame):

1. **Landmarks** (:func:`load_landmarks`): 68 points (x, y) in pixels of the video frame,
   in the 68-point (iBUG / dlib) numbering. Files, looked up by :func:`find_landmarks`
   as ``<dir>/<split>/<video id>/<clip id>.{pkl,npz,npy}``:

   - ``.pkl``: the format LRS3 landmarks are commonly distributed in: a list with one
     (68, 2) array per frame, or ``None`` for a frame without detection. Read with an
     allow-list unpickler (:mod:`espnet2_smile.utils.safe_pickle`): a pickle that names
     anything but numeric numpy arrays is refused unread, nothing of it runs.
   - ``.npz`` (key ``landmarks``, or its only array) / ``.npy``: a float array
     (T, 68, 2), NaN for a missing frame. Only the points used here must be present:
     the stable points :data:`STABLE_POINTS` and the mouth :data:`MOUTH_POINTS`; the
     others may be NaN (``espnet2_smile/bin/mediapipe_landmarks.py`` writes only these).

2. **Missing frames** (:func:`interpolate_missing`): a frame counts as detected when its
   used points are all finite. Missing frames are interpolated linearly in time between
   detected ones; leading/trailing ones take the nearest detection. No detection at all
   is an error (the clip is skipped: ``no face landmarks in any frame``).

3. **Smoothing** (:func:`smooth`): centred moving average, ``window // 2`` frames on each
   side (default window 12: frames i-6..i+6), the half-width shrinking near the clip ends
   so the window stays centred (a steady motion is not delayed).

4. **Alignment**: per frame, the least-squares similarity transform (rotation, uniform
   scale, translation; :func:`similarity_transform`) of the smoothed stable points onto
   :data:`REFERENCE_POINTS`, a frontal face template in a :data:`CANVAS` x
   :data:`CANVAS` canvas; the gray frame is warped onto that canvas.

5. **Crop**: ``size`` x ``size`` pixels centred on the mean of the transformed smoothed
   mouth points (48..67). A crop reaching past the canvas is padded by replicating the
   edge pixels, never shifted, so the mouth stays at the centre.
"""

import logging
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Sequence, Tuple

import cv2
import numpy as np

from espnet2_smile.constants import VIDEO_FPS
from espnet2_smile.prep.media import MediaError, probe
from espnet2_smile.utils.safe_pickle import load_numpy_pickle

NUM_POINTS = 68
STABLE_POINTS: Tuple[int, ...] = (33, 36, 39, 42, 45)
"""Points that move little with speech: base of the nose (33), outer/inner corner of
the eye on the image's left (36, 39), inner/outer corner of the other eye (42, 45)."""
MOUTH_POINTS: Tuple[int, ...] = tuple(range(48, 68))
"""Outer (48..59) and inner (60..67) lip contour."""
USED_POINTS: Tuple[int, ...] = STABLE_POINTS + MOUTH_POINTS
"""Points a landmark file must provide for each detected frame."""

CANVAS = 256
"""Side of the aligned face canvas in pixels."""

REFERENCE_POINTS = np.array(
    [
        [128.0, 158.0],  # 33: base of the nose, on the vertical midline
        [66.5, 96.0],  # 36: outer eye corner (image left)
        [105.5, 96.0],  # 39: inner eye corner (image left)
        [150.5, 96.0],  # 42: inner eye corner (image right)
        [189.5, 96.0],  # 45: outer eye corner (image right)
    ]
)
"""Where the stable points (:data:`STABLE_POINTS`, same order) go on the canvas.

A frontal, upright, symmetric face drawn from typical adult proportions at 1.4 px per
mm: outer eye corners 88 mm apart (123 px), inner corners 32 mm apart (45 px), so each
eye opening is 28 mm wide; the base of the nose 44 mm (62 px) below a level eye line.
The eye line is at y=96 and the midline at x=128, so the mouth centre, about 21 mm
below the base of the nose, lands near (128, 187) and a 96-pixel crop around it (with a
typical ~50 mm = 70 px wide mouth) lies inside the canvas for a frontal face. Only
these proportions matter: they fix the face's scale and position on the canvas; the
crop follows the actual mouth.
"""

SMOOTH_WINDOW = 12
"""Default smoothing window in frames (window // 2 on each side)."""

NO_FACE = "no face landmarks in any frame"
LANDMARK_SUFFIXES = (".pkl", ".npz", ".npy")


def find_landmarks(landmarks_dir: Path, rel: str) -> Path:
    """The landmark file of clip ``rel`` (``<split>/<video id>/<clip id>``).

    Raises:
        MediaError: none of ``.pkl``, ``.npz``, ``.npy`` exists.
    """
    for suffix in LANDMARK_SUFFIXES:
        path = Path(landmarks_dir) / f"{rel}{suffix}"
        if path.is_file():
            return path
    raise MediaError(f"no landmark file ({', '.join(LANDMARK_SUFFIXES)}) for the clip")


def _frames_from_list(items: Sequence) -> np.ndarray:
    """A pickled list of per-frame (68, 2) arrays / None -> (T, 68, 2) float, NaN frames."""
    out = np.full((len(items), NUM_POINTS, 2), np.nan)
    for t, item in enumerate(items):
        if item is None:
            continue
        arr = np.asarray(item)
        if arr.dtype.kind not in "iuf" or arr.shape != (NUM_POINTS, 2):
            raise MediaError(
                f"landmark frame {t}: expected a ({NUM_POINTS}, 2) numeric array or None, "
                f"got {arr.dtype} {arr.shape}"
            )
        out[t] = arr
    return out


def load_landmarks(path: Path) -> np.ndarray:
    """Read a landmark file (see the module doc) as a (T, 68, 2) float64 array, NaN
    where a point or frame is missing.

    Raises:
        MediaError: unreadable file, refused pickle, wrong shape or dtype.
    """
    path = Path(path)
    try:
        if path.suffix == ".pkl":
            obj = load_numpy_pickle(path)
            if isinstance(obj, np.ndarray):
                arr = obj
            elif isinstance(obj, (list, tuple)):
                arr = _frames_from_list(obj)
            else:
                raise MediaError(f"landmark pickle holds a {type(obj).__name__}, not a list of frames")
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                keys = list(npz.keys())
                if "landmarks" in keys:
                    arr = npz["landmarks"]
                elif len(keys) == 1:
                    arr = npz[keys[0]]
                else:
                    raise MediaError(f"landmark npz has arrays {keys} and no 'landmarks'")
        elif path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            raise MediaError(f"landmark file must end in one of {LANDMARK_SUFFIXES}")
    except MediaError:
        raise
    except Exception as e:  # noqa: BLE001 -- pickle/zip/format errors of every kind
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise MediaError(f"unreadable landmark file: {detail}") from None
    if arr.dtype.kind not in "iuf" or arr.ndim != 3 or arr.shape[1:] != (NUM_POINTS, 2):
        raise MediaError(f"landmarks must be a numeric (T, {NUM_POINTS}, 2) array, got {arr.dtype} {arr.shape}")
    if arr.shape[0] == 0:
        raise MediaError("landmark file has no frames")
    return arr.astype(np.float64)


def detected_frames(landmarks: np.ndarray) -> np.ndarray:
    """(T,) bool: the frame's used points are all finite and the stable points are not
    all in one place (which would make the alignment degenerate)."""
    used = landmarks[:, USED_POINTS]  # (T, 25, 2)
    ok = np.isfinite(used).all(axis=(1, 2))
    stable = np.where(ok[:, None, None], landmarks[:, STABLE_POINTS], 0.0)  # (T, 5, 2)
    spread = ((stable - stable.mean(axis=1, keepdims=True)) ** 2).sum(axis=2).mean(axis=1)  # (T,)
    return ok & (spread > 1e-6)


def interpolate_missing(landmarks: np.ndarray) -> np.ndarray:
    """Fill frames without detection (see :func:`detected_frames`) in the used points:
    linear in time between detections, the nearest detection before the first and after
    the last. Points outside :data:`USED_POINTS` are left as they are.

    Raises:
        MediaError: no frame has a detection (``no face landmarks in any frame``).
    """
    found = detected_frames(landmarks)
    if not found.any():
        raise MediaError(NO_FACE)
    out = landmarks.copy()
    if found.all():
        return out
    t = np.arange(len(landmarks))
    for p in USED_POINTS:
        for c in range(2):
            # np.interp holds the end values outside the known range
            out[:, p, c] = np.interp(t, t[found], landmarks[found, p, c])
    return out


def smooth(landmarks: np.ndarray, window: int = SMOOTH_WINDOW) -> np.ndarray:
    """Centred moving average over time: frame i is the mean of frames i-h..i+h with
    h = min(window // 2, i, T - 1 - i)."""
    if window < 1:
        raise ValueError(f"smoothing window must be >= 1, got {window}")
    n = len(landmarks)
    csum = np.concatenate([np.zeros((1,) + landmarks.shape[1:]), np.cumsum(landmarks, axis=0)])  # (T+1, 68, 2)
    i = np.arange(n)
    h = np.minimum(window // 2, np.minimum(i, n - 1 - i))
    lo, hi = i - h, i + h + 1
    return (csum[hi] - csum[lo]) / (hi - lo)[:, None, None]


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection)
    mapping points ``src`` (N, 2) onto ``dst`` (N, 2), as a 2x3 matrix ``[s R | t]``.

    Closed form (Umeyama 1991): with centred point sets, the rotation comes from the SVD
    of their cross-covariance, the scale from the singular values over the source
    variance, the translation from the centroids.
    """
    assert src.shape == dst.shape and src.ndim == 2 and src.shape[1] == 2, (src.shape, dst.shape)
    mu_src, mu_dst = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_src, dst - mu_dst
    cov = b.T @ a / len(src)  # (2, 2)
    u, sing, vt = np.linalg.svd(cov)
    d = np.array([1.0, 1.0 if np.linalg.det(u) * np.linalg.det(vt) >= 0 else -1.0])
    rot = u @ np.diag(d) @ vt
    var_src = (a**2).sum(axis=1).mean()
    scale = (sing * d).sum() / var_src
    shift = mu_dst - scale * rot @ mu_src
    return np.hstack([scale * rot, shift[:, None]])


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (..., 2) through a 2x3 affine matrix."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def crop_padded(image: np.ndarray, x0: int, y0: int, size: int) -> np.ndarray:
    """``image[y0:y0+size, x0:x0+size]``; parts outside the image replicate its edge."""
    h, w = image.shape[:2]
    # clamped indices = edge replication, without padding the whole image
    ys = np.clip(np.arange(y0, y0 + size), 0, h - 1)
    xs = np.clip(np.arange(x0, x0 + size), 0, w - 1)
    return image[ys[:, None], xs[None, :]]


def mouth_transforms(landmarks: np.ndarray, window: int = SMOOTH_WINDOW) -> Tuple[np.ndarray, np.ndarray]:
    """Per-frame alignment matrices (T, 2, 3) and canvas mouth centres (T, 2) from raw
    landmarks (T, 68, 2): interpolation, smoothing, similarity fit (see the module doc)."""
    lm = smooth(interpolate_missing(landmarks)[:, USED_POINTS], window)  # (T, 25, 2)
    n_stable = len(STABLE_POINTS)
    mats = np.stack([similarity_transform(f[:n_stable], REFERENCE_POINTS) for f in lm])  # (T, 2, 3)
    mouth = np.stack([apply_transform(m, f[n_stable:]).mean(axis=0) for m, f in zip(mats, lm)])  # (T, 2)
    return mats, mouth


def align_and_crop(frame: np.ndarray, matrix: np.ndarray, mouth_xy: np.ndarray, size: int) -> np.ndarray:
    """Warp a gray frame onto the canvas and crop ``size`` pixels around ``mouth_xy``."""
    canvas = cv2.warpAffine(frame, matrix, (CANVAS, CANVAS), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    x0 = int(np.floor(mouth_xy[0] - size / 2 + 0.5))
    y0 = int(np.floor(mouth_xy[1] - size / 2 + 0.5))
    return crop_padded(canvas, x0, y0, size)


def iter_gray_frames(path: Path, width: int, height: int) -> Iterator[np.ndarray]:
    """Decode the first video stream at 25 fps (resampled by timestamps) as gray uint8
    frames (height, width), one at a time.

    Raises:
        MediaError: ffmpeg fails.
    """
    frame_bytes = width * height
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-an",
             "-vf", f"fps={VIDEO_FPS},scale={width}:{height}", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
            stdout=subprocess.PIPE, stderr=err,
        )
        try:
            while True:
                buf = proc.stdout.read(frame_bytes)
                if len(buf) < frame_bytes:
                    break
                yield np.frombuffer(buf, dtype=np.uint8).reshape(height, width)
        finally:
            proc.stdout.close()
            if proc.poll() is None:  # the consumer stopped early
                proc.kill()
            code = proc.wait()
        if code > 0:
            err.seek(0)
            lines = err.read().decode("utf-8", "replace").strip().splitlines()
            raise MediaError(f"video decoding failed: {lines[-1] if lines else 'exit ' + str(code)}")


def read_landmark_roi(
    path: Path,
    landmarks_path: Path,
    size: int = 96,
    window: int = SMOOTH_WINDOW,
    frame_wh: Optional[Tuple[int, int]] = None,
) -> np.ndarray:
    """Mouth ROI of a clip from its landmark file (see the module doc).

    Args:
        path: the video.
        landmarks_path: its landmarks, one set per 25 fps frame.
        size: side of the square crop in canvas pixels.
        window: smoothing window in frames.
        frame_wh: the video's (width, height) if known (else probed).

    Returns:
        uint8 frames (T, size, size).

    Raises:
        MediaError: unreadable or mismatching landmarks (the count differs from the
            video's frame count; both are named), no face in any frame, bad video.
    """
    landmarks = load_landmarks(landmarks_path)
    mats, mouth = mouth_transforms(landmarks, window)
    if frame_wh is None:
        info = probe(path)
        frame_wh = (info.width, info.height)
    width, height = frame_wh
    if width <= 0 or height <= 0:
        raise MediaError(f"video has no frame size ({width}x{height})")
    crops, n = [], 0
    for frame in iter_gray_frames(path, width, height):
        if n < len(mats):
            crops.append(align_and_crop(frame, mats[n], mouth[n], size))
        n += 1  # past the landmarks: only count, for the message
    if n == 0:
        raise MediaError("video stream has no frames")
    if n != len(landmarks):
        raise MediaError(f"landmark count mismatch: {len(landmarks)} landmark frames, video has {n} frames at 25 fps")
    return np.stack(crops)


MEDIAPIPE_SCRIPT = Path(__file__).resolve().parents[1] / "bin" / "mediapipe_landmarks.py"
"""The standalone landmark script (runs in the mediapipe environment)."""


def default_mediapipe_python() -> Path:
    """``<repository>/.venv-mediapipe/bin/python`` (made by ``make mediapipe-env``)."""
    return Path(__file__).resolve().parents[2] / ".venv-mediapipe" / "bin" / "python"


def run_mediapipe(python: Path, jobs: Sequence[Tuple[Path, Path]], nj: int = 1) -> int:
    """Write MediaPipe landmark files: ``jobs`` are (video, output .npz) pairs; those
    whose output exists are skipped (a rerun completes an interrupted one). The work
    is split over ``nj`` processes of ``python`` running :data:`MEDIAPIPE_SCRIPT`.

    A video the script cannot read gets no file (the clip is then skipped by stage 1
    with a reason); its message is logged.

    Returns:
        the number of videos processed.

    Raises:
        ValueError: the interpreter does not exist, or the script fails.
    """
    python = Path(python)
    if not python.is_file():
        raise ValueError(
            f"mediapipe interpreter {python} not found: run `make mediapipe-env` "
            "(mediapipe 0.10.21 needs numpy<2, so it has its own environment), "
            "or pass --mediapipe_python"
        )
    todo = [(Path(v), Path(o)) for v, o in jobs if not Path(o).is_file()]
    if not todo:
        return 0
    nj = max(1, min(nj, len(todo)))
    with tempfile.TemporaryDirectory(prefix="mediapipe_") as tmp:
        procs = []
        for k in range(nj):
            lst, log = Path(tmp) / f"list.{k}", Path(tmp) / f"log.{k}"
            lst.write_text("".join(f"{v}\t{o}\n" for v, o in todo[k::nj]), encoding="utf-8")
            with open(log, "wb") as err:
                procs.append((subprocess.Popen([str(python), str(MEDIAPIPE_SCRIPT), "--list", str(lst)],
                                               stdout=subprocess.DEVNULL, stderr=err), log))
        failed = []
        for proc, log in procs:
            code = proc.wait()
            lines = log.read_text("utf-8", "replace").splitlines()
            for line in lines:
                if line.startswith("skip "):
                    logging.warning(f"mediapipe landmarks: {line}")
            if code != 0:
                failed.append(f"exit {code}: {lines[-1] if lines else 'no message'}")
        if failed:
            raise ValueError(f"mediapipe landmark extraction with {python} failed ({failed[0]})")
    return len(todo)
