"""Landmark-based mouth ROIs (espnet2_smile.prep.roi), on a real face photograph.

The photograph is scikit-image's ``astronaut`` (shipped with the wheel). Its stable
points and lip contour were annotated once by eye on magnified crops (below). A short
clip animates the photo with drifting shifts, rotation and scale (the landmarks moved
with it), is written as a real H.264 mp4 with an audio track, and goes through stage 1.

The MediaPipe tests need the separate environment (``make mediapipe-env``); they run
when ``.venv-mediapipe/bin/python`` exists or ``SMILE_MEDIAPIPE_PYTHON`` names an
interpreter (``make test-mediapipe``), and are skipped otherwise.
"""

import base64
import json
import os
import pickle
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from espnet2_smile.constants import AUDIO_SR, VIDEO_FPS
from espnet2_smile.prep import roi as R
from espnet2_smile.prep.lrs3 import RoiConfig, process_clip
from espnet2_smile.prep.media import MediaError

skimage_data = pytest.importorskip("skimage.data")

# --- hand annotation of skimage.data.astronaut() (512x512), pixel coordinates (x, y) ---
ASTRONAUT_POINTS = {
    33: (224.5, 131.0),  # base of the nose
    36: (192.5, 100.5), 39: (210.5, 102.5),  # eye on the image's left: outer, inner corner
    42: (237.0, 103.0), 45: (258.0, 101.5),  # eye on the image's right: inner, outer corner
    # outer lip contour (a wide smile, teeth showing)
    48: (204.5, 140.5), 49: (210.0, 140.2), 50: (216.0, 139.6), 51: (222.0, 139.5),
    52: (228.0, 139.7), 53: (235.0, 140.2), 54: (243.0, 141.5), 55: (238.0, 148.5),
    56: (229.0, 152.5), 57: (220.0, 153.4), 58: (212.0, 152.5), 59: (208.0, 148.0),
    # inner lip contour
    60: (206.0, 142.0), 61: (213.0, 143.0), 62: (222.0, 143.8), 63: (231.0, 143.5),
    64: (240.0, 142.5), 65: (232.0, 148.0), 66: (221.0, 148.8), 67: (211.0, 147.5),
}
FRAME = 224  # clip frame side (LRS3's framing)
N_FRAMES = 20
FACE_CENTER = np.array([224.0, 122.0])  # photo point put at the frame centre

# a landmark pickle as numpy 1.x writes it (names numpy.core.multiarray): the list
# [arange(6).reshape(3, 2) + 0.5 (float64), None, [[1, 2], [3, 4]] (int64)]
NUMPY1_PICKLE = base64.b64decode(
    "gASVIQEAAAAAAABdlCiMFW51bXB5LmNvcmUubXVsdGlhcnJheZSMDF9yZWNvbnN0cnVjdJSTlIwFbnVtcHmUjAduZGFycmF5lJOU"
    "SwCFlEMBYpSHlFKUKEsBSwNLAoaUaASMBWR0eXBllJOUjAJmOJSJiIeUUpQoSwOMATyUTk5OSv////9K/////0sAdJRiiUMwAAAA"
    "AAAA4D8AAAAAAAD4PwAAAAAAAARAAAAAAAAADEAAAAAAAAASQAAAAAAAABZAlHSUYk5oA2gGSwCFlGgIh5RSlChLAUsCSwKGlGgN"
    "jAJpOJSJiIeUUpQoSwNoEU5OTkr/////Sv////9LAHSUYolDIAEAAAAAAAAAAgAAAAAAAAADAAAAAAAAAAQAAAAAAAAAlHSUYmUu"
)


def astronaut_landmarks() -> np.ndarray:
    """(68, 2): the annotation, NaN for the points not annotated."""
    lm = np.full((68, 2), np.nan)
    for k, xy in ASTRONAUT_POINTS.items():
        lm[k] = xy
    return lm


def mouth_center(lm: np.ndarray) -> np.ndarray:
    return lm[..., 48:68, :].mean(axis=-2)


def motion(t: int) -> np.ndarray:
    """2x3 photo -> frame transform of frame t: drifting shift (+-6, -+4 px), rotation
    (+-5 degrees) and scale (+-3%) about the face centre."""
    u = t / (N_FRAMES - 1) - 0.5
    m = cv2.getRotationMatrix2D(tuple(FACE_CENTER), 10.0 * u, 1.0 + 0.06 * u)  # rotate/scale about the face
    m[:, 2] += np.array([FRAME / 2, FRAME / 2]) + np.array([12.0 * u, -8.0 * u]) - FACE_CENTER
    return m


def write_clip(path: Path, frames: np.ndarray) -> Path:
    """(T, H, W, 3) RGB uint8 -> H.264 mp4 at 25 fps with a tone of the same length."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n, h, w, _ = frames.shape
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(VIDEO_FPS), "-i", "-",
           "-f", "lavfi", "-i", f"sine=frequency=300:sample_rate={AUDIO_SR}:duration={n / VIDEO_FPS}",
           "-c:v", "libx264", "-preset", "ultrafast", "-crf", "12", "-pix_fmt", "yuv420p", "-c:a", "aac",
           str(path)]
    subprocess.run(cmd, input=frames.tobytes(), check=True)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """The animated astronaut: an LRS3-layout root with trainval/astro/50001.{mp4,txt},
    and the per-frame landmarks (T, 68, 2) moved with the photo."""
    root = tmp_path_factory.mktemp("astro")
    photo = skimage_data.astronaut()  # (512, 512, 3) RGB
    frames, lms = [], []
    base = astronaut_landmarks()
    for t in range(N_FRAMES):
        m = motion(t)
        frames.append(cv2.warpAffine(photo, m, (FRAME, FRAME), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REFLECT))
        lms.append(R.apply_transform(m, base))
    mp4 = write_clip(root / "trainval" / "astro" / "50001.mp4", np.stack(frames))
    (root / "trainval" / "astro" / "50001.txt").write_text("Text:  HELLO WORLD\nConf:  3\n")
    return root, mp4, np.stack(lms)


def reference_crop(size: int = 96) -> np.ndarray:
    """The ideal ROI: the photo itself aligned with its annotated stable points and
    cropped around its annotated mouth centre (no video, no motion)."""
    gray = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2GRAY)
    lm = astronaut_landmarks()
    m = R.similarity_transform(lm[list(R.STABLE_POINTS)], R.REFERENCE_POINTS)
    return R.align_and_crop(gray, m, R.apply_transform(m, mouth_center(lm)), size)


def offset(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(dx, dy) of image b relative to image a (phase correlation, sub-pixel)."""
    win = cv2.createHanningWindow(a.shape[::-1], cv2.CV_64F)
    (dx, dy), _ = cv2.phaseCorrelate(a.astype(np.float64), b.astype(np.float64), win)
    return np.array([dx, dy])


def crop_centre_errors(landmarks: np.ndarray, true_landmarks: np.ndarray, size: int = 96) -> np.ndarray:
    """(T,) distance between the ROI centre and where the *true* mouth centre lands in
    the ROI computed from ``landmarks``."""
    mats, mouth = R.mouth_transforms(landmarks)
    true_in_canvas = np.stack([R.apply_transform(m, c) for m, c in zip(mats, mouth_center(true_landmarks))])
    origin = np.floor(mouth - size / 2 + 0.5)  # as align_and_crop rounds
    return np.linalg.norm(true_in_canvas - origin - size / 2, axis=1)


# ---------------------------------------------------------------- the real clip


@pytest.mark.parametrize("fmt", ["npz", "pkl"])
def test_landmarks_roi_centred_and_stable(clip, tmp_path, fmt):
    root, mp4, lms = clip
    lmdir = tmp_path / "landmarks"
    (lmdir / "trainval" / "astro").mkdir(parents=True)
    if fmt == "npz":
        np.savez(lmdir / "trainval" / "astro" / "50001.npz", landmarks=lms)
    else:  # the distributed format: a list of (68, 2) arrays, None for missed frames
        frames = [None if t in (0, 7, 8) else np.nan_to_num(f, nan=0.0).astype(np.float32)
                  for t, f in enumerate(lms)]
        with open(lmdir / "trainval" / "astro" / "50001.pkl", "wb") as f:
            pickle.dump(frames, f)
    wav_dir = tmp_path / "wav"
    wav_dir.mkdir()
    cfg = RoiConfig(center_xy=(0.0, 0.0), method="landmarks", landmarks_dir=lmdir)
    result = process_clip(root, "trainval/astro/50001", wav_dir, cfg)
    assert result.reason == "", result.reason
    roi = result.roi
    assert roi.shape == (N_FRAMES, 96, 96) and roi.dtype == np.uint8

    # the mouth is at the centre: each crop matches the ideal crop of the still photo
    # (the pickle's frames 0, 7, 8 have no detection: interpolated, or frame 1's for frame 0)
    ref = reference_crop()
    shifts = np.stack([offset(ref, f) for f in roi])  # (T, 2)
    corr = [np.corrcoef(ref.ravel(), f.ravel())[0, 1] for f in roi]
    spread = np.ptp(shifts, axis=0)
    print(f"{fmt}: offset to the ideal crop max {np.abs(shifts).max():.2f} px (spread {spread.max():.2f} px), "
          f"correlation min {min(corr):.3f}")
    assert np.abs(shifts).max() < (1.0 if fmt == "npz" else 2.5), shifts
    assert min(corr) > 0.95, corr
    # ... and is stable: the mouth moved by more than 10 px across the frames, the crops do not
    assert np.ptp(mouth_center(lms), axis=0).max() > 10
    assert spread.max() < (1.0 if fmt == "npz" else 2.5), shifts
    # geometric check of the same: the true mouth centre lands on the ROI centre
    if fmt == "npz":
        err = crop_centre_errors(lms, lms)
        print(f"ROI centre vs annotated mouth centre: max {err.max():.2f} px")
        assert err.max() < 1.0


def test_roi_content_is_the_mouth(clip):
    """Independently of the annotation: the darkest spots of the crop's centre region
    (the mouth corners, in shadow) straddle the centre, and the bright teeth sit on it."""
    root, mp4, lms = clip
    np.save(root / "lm.npy", lms)
    roi = R.read_landmark_roi(mp4, root / "lm.npy").astype(np.float64).mean(axis=0)  # (96, 96)
    centre = roi[24:72, 16:80]  # 48 x 64 around the ROI centre (48, 48)
    teeth = centre > np.percentile(centre, 97)
    ys, xs = np.nonzero(teeth)
    assert abs(xs.mean() + 16 - 47.5) < 6 and abs(ys.mean() + 24 - 47.5) < 6, (xs.mean() + 16, ys.mean() + 24)
    dark = centre < np.percentile(centre, 1)
    ys, xs = np.nonzero(dark)
    left, right = xs[xs + 16 < 48], xs[xs + 16 >= 48]
    assert len(left) and len(right), "mouth corners on both sides of the centre"


# ---------------------------------------------------------------- constructed arrays


def _frames(n: int) -> np.ndarray:
    """(n, 68, 2): used points of a face moving right by 1 px per frame; others NaN."""
    lm = np.full((n, 68, 2), np.nan)
    base = astronaut_landmarks()
    for t in range(n):
        lm[t, list(R.USED_POINTS)] = base[list(R.USED_POINTS)] + [t, 0.0]
    return lm


def test_interpolation_fills_gaps_and_ends():
    lm = _frames(8)
    lm[[0, 1, 3, 4, 7]] = np.nan
    lm[5, 50] = np.nan  # one used point missing: the frame counts as missing
    lm[6, 0:17] = 99.0  # jaw points are not used: present or not, no matter
    assert R.detected_frames(lm).tolist() == [False, False, True, False, False, False, True, False]
    out = R.interpolate_missing(lm)
    used = list(R.USED_POINTS)
    full = _frames(8)
    np.testing.assert_allclose(out[[3, 4, 5], :][:, used], full[[3, 4, 5]][:, used])  # linear between 2 and 6
    np.testing.assert_allclose(out[[0, 1]][:, used], full[[2, 2]][:, used])  # leading: the first detection
    np.testing.assert_allclose(out[7][used], full[6][used])  # trailing: the last detection
    assert np.isnan(out[0, 0]).all()  # unused points untouched


def test_no_detection_at_all():
    lm = np.full((5, 68, 2), np.nan)
    with pytest.raises(MediaError, match="^no face landmarks in any frame$"):
        R.interpolate_missing(lm)
    lm[:, list(R.STABLE_POINTS)] = 10.0  # degenerate: every stable point in one place
    lm[:, list(R.MOUTH_POINTS)] = 20.0
    with pytest.raises(MediaError, match="no face landmarks"):
        R.interpolate_missing(lm)


def test_smoothing_window():
    t = np.arange(30, dtype=float)
    linear = np.broadcast_to((2.0 * t + 1)[:, None, None], (30, 1, 2)).copy()
    np.testing.assert_allclose(R.smooth(linear, 12), linear)  # centred: a steady motion is not delayed
    impulse = np.zeros((30, 1, 2))
    impulse[15] = 13.0
    out = R.smooth(impulse, 12)[:, 0, 0]
    np.testing.assert_allclose(out[9:22], 1.0)  # frames 15-6 .. 15+6 see it, 1/13 each
    assert (out[:9] == 0).all() and (out[22:] == 0).all()
    ramp = np.zeros((30, 1, 2))
    ramp[0], ramp[1], ramp[2] = 3.0, 6.0, 0.0
    out = R.smooth(ramp, 12)[:, 0, 0]
    assert out[0] == 3.0  # the window shrinks at the ends: frame 0 alone
    assert out[1] == pytest.approx(3.0)  # frames 0..2
    np.testing.assert_allclose(R.smooth(impulse, 1), impulse)


def test_similarity_transform_recovers_pose():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, size=(5, 2))
    angle, scale, shift = np.deg2rad(17.0), 1.7, np.array([-30.0, 12.5])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ (scale * rot).T + shift
    np.testing.assert_allclose(R.similarity_transform(src, dst), np.hstack([scale * rot, shift[:, None]]), atol=1e-9)
    mirrored = dst * [-1, 1]  # no reflection is fitted
    m = R.similarity_transform(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_roi_config_checks():
    with pytest.raises(ValueError, match="must be one of"):
        RoiConfig((0.0, 0.0), method="dlib")
    with pytest.raises(ValueError, match="needs a landmarks directory"):
        RoiConfig((0.0, 0.0), method="landmarks")


def test_crop_pads_by_replication_without_shifting():
    img = np.arange(100, dtype=np.uint8).reshape(10, 10)
    crop = R.crop_padded(img, -2, 7, 5)
    assert crop.shape == (5, 5)
    np.testing.assert_array_equal(crop[0], [70, 70, 70, 71, 72])  # columns -2, -1 replicate column 0
    np.testing.assert_array_equal(crop[:, 2], [70, 80, 90, 90, 90])  # rows 10, 11 replicate row 9


def test_landmark_count_mismatch_names_both(clip, tmp_path):
    root, mp4, lms = clip
    np.save(tmp_path / "short.npy", lms[:15])
    with pytest.raises(MediaError, match="15 landmark frames, video has 20 frames"):
        R.read_landmark_roi(mp4, tmp_path / "short.npy")


def test_skip_reasons_in_stage_one(clip, tmp_path):
    """Through prepare_lrs3: a clip without landmark file and one without any face are
    skipped with their reason; the method is part of the set's options."""
    from espnet2_smile.bin.prepare_lrs3 import main

    src_root, mp4, lms = clip
    root, lmdir = tmp_path / "lrs3", tmp_path / "lm"
    clips = {"trainval/good/50001": lms, "trainval/nofile/50001": None,
             "trainval/noface/50001": np.full_like(lms, np.nan), "trainval/dev/50002": lms, "test/t/00001": lms}
    for rel, arr in clips.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.link(mp4, root / f"{rel}.mp4")
        (root / f"{rel}.txt").write_text("Text:  HELLO\nConf:  3\n")
        if arr is not None:
            (lmdir / rel).parent.mkdir(parents=True, exist_ok=True)
            np.save(lmdir / f"{rel}.npy", arr)
    (root / "lrs3-valid.id").write_text("trainval/dev/50002\n")
    out = tmp_path / "data"
    args = ["--root", root, "--out", out, "--roi_method", "landmarks", "--landmarks_dir", lmdir, "--nj", "1"]
    assert main([str(a) for a in args]) == 0
    skipped = dict(line.split(" ", 1) for line in (out / "train" / "skipped.txt").read_text().splitlines())
    assert skipped == {"trainval/nofile/50001": "no landmark file (.pkl, .npz, .npy) for the clip",
                       "trainval/noface/50001": "no face landmarks in any frame"}
    assert (out / "train" / "video.scp").read_text().startswith("good_50001 ")
    options = json.loads((out / "train" / ".done").read_text())
    assert options["roi_method"] == "landmarks" and options["landmarks_dir"] == str(lmdir.resolve())
    # another method redoes the set (here: the fixed crop keeps every clip)
    assert main([str(a) for a in args[:4]] + ["--roi_method", "fixed", "--nj", "1", "--sets", "train"]) == 0
    assert json.loads((out / "train" / ".done").read_text())["roi_method"] == "fixed"
    assert (out / "train" / "skipped.txt").read_text() == ""
    # no landmark folder: refused before any work
    no_dir = ["--roi_method", "landmarks", "--landmarks_dir", str(tmp_path / "none")]
    assert main([str(a) for a in args[:4]] + no_dir) == 1


# ---------------------------------------------------------------- landmark files, pickles


def test_landmark_file_formats(tmp_path):
    (tmp_path / "a.pkl").write_bytes(NUMPY1_PICKLE)  # written by numpy 1.x: wrong shape, but read
    with pytest.raises(MediaError, match=r"landmark frame 0: expected a \(68, 2\)"):
        R.load_landmarks(tmp_path / "a.pkl")
    frames = [np.ones((68, 2), np.float32), None, np.full((68, 2), 2, np.int64)]
    (tmp_path / "b.pkl").write_bytes(pickle.dumps(frames))
    lm = R.load_landmarks(tmp_path / "b.pkl")
    assert lm.shape == (3, 68, 2) and np.isnan(lm[1]).all() and (lm[2] == 2).all()
    np.savez(tmp_path / "c.npz", something=np.zeros((4, 68, 2)))
    assert R.load_landmarks(tmp_path / "c.npz").shape == (4, 68, 2)
    np.save(tmp_path / "d.npy", np.zeros((4, 68, 3)))
    with pytest.raises(MediaError, match=r"\(T, 68, 2\)"):
        R.load_landmarks(tmp_path / "d.npy")
    (tmp_path / "e.npy").write_bytes(b"garbage")
    with pytest.raises(MediaError, match="unreadable landmark file"):
        R.load_landmarks(tmp_path / "e.npy")
    (tmp_path / "x" / "trainval" / "v").mkdir(parents=True)
    np.save(tmp_path / "x" / "trainval" / "v" / "50001.npy", np.zeros((1, 68, 2)))
    assert R.find_landmarks(tmp_path / "x", "trainval/v/50001").name == "50001.npy"
    with pytest.raises(MediaError, match="no landmark file"):
        R.find_landmarks(tmp_path / "x", "trainval/v/50002")


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps([np.zeros((68, 2)), _Payload(marker)])
    (tmp_path / "evil.pkl").write_bytes(payload)
    with pytest.raises(MediaError, match=r"refused: it names (posix|os)\.system"):
        R.load_landmarks(tmp_path / "evil.pkl")
    assert not marker.exists()
    # arrays of Python objects and other classes are refused too
    from espnet2_smile.utils.safe_pickle import UnsafePickleError, load_numpy_pickle

    with pytest.raises(UnsafePickleError):
        load_numpy_pickle(pickle.dumps(np.array([1, None], dtype=object)))  # object arrays too
    with pytest.raises(UnsafePickleError):
        load_numpy_pickle(pickle.dumps({"f": Path("/x")}))
    assert not marker.exists()
    pickle.loads(payload)  # the payload is real: an unrestricted load runs it
    assert marker.exists()


# ---------------------------------------------------------------- mediapipe


def _mediapipe_python():
    env = os.environ.get("SMILE_MEDIAPIPE_PYTHON")
    if env:
        return Path(env)
    default = R.default_mediapipe_python()
    return default if default.is_file() else None


def test_mediapipe_missing_interpreter_message(tmp_path):
    with pytest.raises(ValueError, match="run `make mediapipe-env`"):
        R.run_mediapipe(tmp_path / "nope" / "python", [(tmp_path / "a.mp4", tmp_path / "a.npz")])


@pytest.mark.skipif(_mediapipe_python() is None, reason="no mediapipe environment (make mediapipe-env)")
def test_mediapipe_landmarks_on_astronaut(clip, tmp_path):
    root, mp4, lms = clip
    out = tmp_path / "mp" / "trainval" / "astro" / "50001.npz"
    bad = tmp_path / "mp" / "bad.npz"
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    assert R.run_mediapipe(_mediapipe_python(), [(mp4, out), (tmp_path / "bad.mp4", bad)], nj=2) == 2
    assert out.is_file() and not bad.exists()  # an unreadable video gets no file
    found = R.load_landmarks(out)
    assert found.shape == lms.shape
    assert R.detected_frames(found).all()
    assert np.isnan(found[:, 0:17]).all()  # the jaw is not filled
    # mouth centre against the hand annotation, per frame (pixels of the 224x224 frame)
    err = np.linalg.norm(mouth_center(found) - mouth_center(lms), axis=1)
    print(f"mediapipe vs annotated mouth centre: mean {err.mean():.2f} px, max {err.max():.2f} px")
    assert err.max() < 4.0, err
    stable_err = np.linalg.norm(found[:, list(R.STABLE_POINTS)] - lms[:, list(R.STABLE_POINTS)], axis=2)
    print(f"mediapipe vs annotated stable points: mean {stable_err.mean():.2f} px, max {stable_err.max():.2f} px")
    # the crop from the mediapipe landmarks is centred on the (annotated) mouth
    centre_err = crop_centre_errors(found, lms)
    print(f"ROI centre vs annotated mouth centre: mean {centre_err.mean():.2f} px, max {centre_err.max():.2f} px")
    assert centre_err.max() < 4.0, centre_err
    roi = R.read_landmark_roi(mp4, out)
    shifts = np.stack([offset(reference_crop(), f) for f in roi])
    print(f"phase-correlation offset to the ideal crop: max {np.abs(shifts).max():.2f} px")
    assert np.abs(shifts).max() < 4.0, shifts
    # a rerun skips the videos already done
    assert R.run_mediapipe(_mediapipe_python(), [(mp4, out)]) == 0


@pytest.mark.skipif(_mediapipe_python() is None, reason="no mediapipe environment (make mediapipe-env)")
def test_mediapipe_stage_one(clip, tmp_path):
    from espnet2_smile.bin.prepare_lrs3 import main

    src_root, mp4, lms = clip
    root = tmp_path / "lrs3"
    for rel in ("trainval/a/50001", "trainval/dev/50002", "test/t/00001"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.link(mp4, root / f"{rel}.mp4")
        (root / f"{rel}.txt").write_text("Text:  HELLO\nConf:  3\n")
    (root / "lrs3-valid.id").write_text("trainval/dev/50002\n")
    out = tmp_path / "data"
    args = ["--root", root, "--out", out, "--roi_method", "mediapipe", "--mediapipe_python", _mediapipe_python(),
            "--nj", "1"]
    assert main([str(a) for a in args]) == 0
    assert (out / "landmarks_mediapipe" / "trainval" / "a" / "50001.npz").is_file()
    for name in ("train", "dev", "test"):
        assert len((out / name / "video.scp").read_text().splitlines()) == 1
        assert json.loads((out / name / ".done").read_text())["roi_method"] == "mediapipe"
