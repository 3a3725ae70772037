"""Synthetic talking-face renderer (numpy + OpenCV, antialiased sub-pixel polygons).

Frames are ``FRAME_SIZE`` x ``FRAME_SIZE`` BGR uint8 images framed like LRS3 face
tracks: the face is centred and the mouth sits in the lower half, at
``MOUTH_CENTER_XY`` up to a small head motion. A fixed ``mouth_roi_box()`` crop
therefore always contains the whole mouth (the recipe's ``--roi_method fixed``).

Per speaker: skin, lip, teeth, hair and eye colours, face width/height, jaw taper,
mouth size and lip thickness, eye/nose/brow placement, background and clothing.
Per clip: framing offset, head motion (roll, translation, scale), lighting direction
and drift, blinks, blur and sensor noise.
"""

from dataclasses import dataclass
from typing import Tuple

import cv2
import numpy as np

from espnet2_smile.corpus.visemes import P

FRAME_SIZE: int = 224
"""Side of the square video frames in pixels."""

MOUTH_CENTER_XY: Tuple[int, int] = (112, 158)
"""Mouth centre (x, y) in pixels of a ``FRAME_SIZE`` frame (lip line at rest)."""

ROI_SIZE: int = 96
"""Default side of the mouth region of interest (as in LRS3 preprocessing)."""

MAX_HEAD_SHIFT_PX: float = 6.0
"""Upper bound of the mouth-centre displacement by framing offset and head motion."""

NOISE_BANK = 6  # sensor-noise frames per clip

_SHIFT = 4  # sub-pixel bits for cv2 drawing
_SCALE = float(1 << _SHIFT)
_AA = cv2.LINE_AA
_FACE_CX = 112.0
_CHEEK_Y = 118.0  # widest point of the face
_PIVOT = (112.0, 205.0)  # head roll pivot (neck)


def mouth_roi_box(size: int = ROI_SIZE, frame_size: int = FRAME_SIZE) -> Tuple[int, int, int, int]:
    """Crop box ``(x0, y0, x1, y1)`` (x1, y1 exclusive) of a ``size`` square centred on the mouth.

    For frames of a different size than ``FRAME_SIZE`` the mouth centre is scaled.
    """
    if size <= 0 or size > frame_size:
        raise ValueError(f"mouth_roi_box: size must be in 1..{frame_size}, got {size}")
    cx = MOUTH_CENTER_XY[0] * frame_size / FRAME_SIZE
    cy = MOUTH_CENTER_XY[1] * frame_size / FRAME_SIZE
    x0 = int(round(cx - size / 2))
    y0 = int(round(cy - size / 2))
    x0 = min(max(x0, 0), frame_size - size)
    y0 = min(max(y0, 0), frame_size - size)
    return x0, y0, x0 + size, y0 + size


def crop_mouth(frames: np.ndarray, size: int = ROI_SIZE) -> np.ndarray:
    """Fixed mouth crop of ``(..., H, W, C)`` or ``(..., H, W)`` frames (H == W)."""
    hw = frames.shape[-3] if frames.ndim >= 3 and frames.shape[-1] in (1, 3) else frames.shape[-2]
    x0, y0, x1, y1 = mouth_roi_box(size, hw)
    if frames.shape[-1] in (1, 3) and frames.ndim >= 3:
        return frames[..., y0:y1, x0:x1, :]
    return frames[..., y0:y1, x0:x1]


# ------------------------------------------------------------------ appearance
_SKIN_TONES_BGR = np.array(
    [
        (189, 215, 245), (170, 200, 235), (150, 185, 225), (120, 160, 210), (100, 140, 190),
        (80, 115, 165), (60, 90, 135), (45, 70, 105), (140, 175, 220), (160, 190, 228),
    ],
    dtype=np.float64,
)
_HAIR_BGR = np.array(
    [(20, 20, 25), (30, 40, 60), (40, 60, 100), (60, 100, 160), (120, 170, 210),
     (150, 150, 150), (200, 200, 205), (25, 30, 45)],
    dtype=np.float64,
)
_IRIS_BGR = np.array([(60, 40, 30), (120, 90, 40), (90, 120, 70), (40, 60, 90), (30, 30, 40)],
                     dtype=np.float64)


@dataclass
class Appearance:
    """Per-speaker look."""

    skin: Tuple[float, float, float]
    lip: Tuple[float, float, float]
    teeth: Tuple[float, float, float]
    tongue: Tuple[float, float, float]
    cavity: Tuple[float, float, float]
    hair: Tuple[float, float, float]
    iris: Tuple[float, float, float]
    bg1: Tuple[float, float, float]
    bg2: Tuple[float, float, float]
    cloth: Tuple[float, float, float]
    hair_style: int  # 0 bald/very short, 1 short, 2 long
    face_w: float  # half width at the cheeks
    face_top: float  # cheek line to top of head
    chin_y: float
    jaw: float  # jaw taper 0..1 (1 = square)
    eye_y: float
    eye_dx: float
    brow_thick: int
    nose_y: float
    mouth_scale: float
    lip_up: float
    lip_lo: float
    articulation: float
    blur: float
    noise: float


def _col(c) -> Tuple[float, float, float]:
    c = np.clip(np.asarray(c, dtype=np.float64), 0, 255)
    return (float(c[0]), float(c[1]), float(c[2]))


def sample_appearance(rng: np.random.Generator, female: bool) -> Appearance:
    """Draw a speaker's appearance."""
    skin = _SKIN_TONES_BGR[int(rng.integers(len(_SKIN_TONES_BGR)))] * rng.uniform(0.93, 1.05, 3)
    lip_base = np.array([95.0, 95.0, 190.0]) if female else np.array([105.0, 110.0, 175.0])
    lip = 0.45 * skin + 0.55 * lip_base * rng.uniform(0.8, 1.05)
    lip = lip * (0.75 + 0.25 * skin.mean() / 200.0)
    hair = _HAIR_BGR[int(rng.integers(len(_HAIR_BGR)))] * rng.uniform(0.85, 1.1)
    bg1 = rng.uniform(20, 200, 3)
    bg2 = np.clip(bg1 + rng.uniform(-60, 60, 3), 0, 255)
    return Appearance(
        skin=_col(skin),
        lip=_col(lip),
        teeth=_col(np.array([215.0, 228.0, 235.0]) * rng.uniform(0.85, 1.0)),
        tongue=_col(np.array([95.0, 100.0, 200.0]) * rng.uniform(0.85, 1.05)),
        cavity=_col(np.array([30.0, 22.0, 55.0]) * rng.uniform(0.7, 1.2)),
        hair=_col(hair),
        iris=_col(_IRIS_BGR[int(rng.integers(len(_IRIS_BGR)))]),
        bg1=_col(bg1),
        bg2=_col(bg2),
        cloth=_col(rng.uniform(10, 230, 3)),
        hair_style=int(rng.choice([1, 2, 2, 2] if female else [0, 1, 1, 1, 2])),
        face_w=float(rng.uniform(64, 76) * (0.96 if female else 1.0)),
        face_top=float(rng.uniform(92, 104)),
        chin_y=float(rng.uniform(195, 203)),
        jaw=float(rng.uniform(0.55, 0.75) if female else rng.uniform(0.7, 0.95)),
        eye_y=float(rng.uniform(99, 106)),
        eye_dx=float(rng.uniform(26, 31)),
        brow_thick=int(rng.integers(2, 4) if female else rng.integers(3, 6)),
        nose_y=float(rng.uniform(134, 140)),
        mouth_scale=float(rng.uniform(0.88, 1.12)),
        lip_up=float(rng.uniform(5.5, 7.5) * (1.08 if female else 1.0)),
        lip_lo=float(rng.uniform(7.0, 9.5) * (1.08 if female else 1.0)),
        articulation=float(rng.uniform(0.85, 1.12)),
        blur=float(rng.uniform(0.45, 1.1)),
        noise=float(rng.uniform(1.0, 2.8)),
    )


# ------------------------------------------------------------------ helpers
def _pts(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.round(np.stack([x, y], axis=-1) * _SCALE).astype(np.int32)


def _fill(img: np.ndarray, x: np.ndarray, y: np.ndarray, color) -> None:
    cv2.fillPoly(img, [_pts(x, y)], color, _AA, _SHIFT)


def _ellipse(img, cx, cy, ax, ay, color, angle=0.0, thickness=-1, a0=0, a1=360) -> None:
    cv2.ellipse(
        img,
        (int(round(cx * _SCALE)), int(round(cy * _SCALE))),
        (max(int(round(ax * _SCALE)), 1), max(int(round(ay * _SCALE)), 1)),
        angle, a0, a1, color, thickness, _AA, _SHIFT,
    )


def _face_outline(app: Appearance, dx: float, dy: float, n: int = 64) -> Tuple[np.ndarray, np.ndarray]:
    """Closed face outline (x, y) in frame coordinates."""
    a = np.linspace(0.0, np.pi, n)
    xu = _FACE_CX + app.face_w * np.cos(a)
    yu = _CHEEK_Y - app.face_top * np.sin(a)  # right -> top -> left
    t = np.linspace(0.0, 1.0, n)
    w = app.face_w * np.power(1.0 - np.power(t, 2.4), 0.42) * (1.0 - 0.3 * (1.0 - app.jaw) * t)
    yl = _CHEEK_Y + (app.chin_y - _CHEEK_Y) * t
    xl_left = _FACE_CX - w
    xl_right = _FACE_CX + w
    x = np.concatenate([xu, xl_left[1:], xl_right[::-1][1:-1]])
    y = np.concatenate([yu, yl[1:], yl[::-1][1:-1]])
    return x + dx, y + dy


def _lower_face(app: Appearance, dx: float, dy: float, y_from: float, n: int = 40):
    """Lower face region (below ``y_from``) as a closed polygon."""
    t0 = (y_from - _CHEEK_Y) / (app.chin_y - _CHEEK_Y)
    t = np.linspace(max(t0, 0.0), 1.0, n)
    w = app.face_w * np.power(1.0 - np.power(t, 2.4), 0.42) * (1.0 - 0.3 * (1.0 - app.jaw) * t)
    y = _CHEEK_Y + (app.chin_y - _CHEEK_Y) * t
    x = np.concatenate([_FACE_CX - w, (_FACE_CX + w)[::-1]])
    yy = np.concatenate([y, y[::-1]])
    return x + dx, yy + dy


# ------------------------------------------------------------------ renderer
class FaceRenderer:
    """Renders one clip of a speaker: static layer once, mouth/eyes/motion per frame."""

    def __init__(self, app: Appearance, rng: np.random.Generator, n_frames: int, fps: int) -> None:
        self.app = app
        self.n = n_frames
        self.fps = fps
        t = np.arange(n_frames) / fps
        # framing offset (per clip) + smooth head motion
        self.offset = rng.uniform(-1.5, 1.5, 2)
        self.roll = self._smooth(rng, t, 1.6)  # degrees
        self.tx = self._smooth(rng, t, 1.8)
        self.ty = self._smooth(rng, t, 1.3)
        self.zoom = 1.0 + self._smooth(rng, t, 0.012)
        # lighting: fixed direction, slow gain drift and direction drift
        self.light_dir = rng.uniform(-1.0, 1.0)
        self.gain = 1.0 + self._smooth(rng, t, 0.06, fmax=0.25)
        self.dir_drift = self._smooth(rng, t, 0.6, fmax=0.2)
        self.blur = max(0.3, app.blur * rng.uniform(0.85, 1.2))
        self.noise_sigma = app.noise * rng.uniform(0.8, 1.25)
        # blinks
        self.blink = np.zeros(n_frames)
        profile = np.array([0.45, 1.0, 1.0, 0.7, 0.3])
        f = int(rng.uniform(0.3, 3.0) * fps)
        while f < n_frames:
            seg = self.blink[f:f + len(profile)]
            seg[:] = np.maximum(seg, profile[: len(seg)])
            f += int(rng.uniform(1.8, 6.0) * fps)
        self.rng = rng
        self.base, self.shade, self.shade_dir = self._static_layers()
        # sensor noise: a bank of Gaussian noise frames (positive and negative parts,
        # for saturating uint8 arithmetic), drawn in random order per frame
        bank = rng.standard_normal((NOISE_BANK, FRAME_SIZE, FRAME_SIZE, 3), dtype=np.float32)
        bank = np.clip(np.round(bank * np.float32(self.noise_sigma)), -12, 12)
        self.noise_pos = np.clip(bank, 0, 255).astype(np.uint8)
        self.noise_neg = np.clip(-bank, 0, 255).astype(np.uint8)

    @staticmethod
    def _smooth(rng: np.random.Generator, t: np.ndarray, amp: float, fmax: float = 0.6) -> np.ndarray:
        """Sum of three random low-frequency sinusoids with peak amplitude <= ``amp``."""
        out = np.zeros_like(t)
        w = rng.dirichlet(np.ones(3))
        for k in range(3):
            f = rng.uniform(0.05, fmax)
            out += w[k] * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        return amp * out

    # -------------------------------------------------------------- static layer
    def _static_layers(self):
        app, rng = self.app, self.rng
        H = FRAME_SIZE
        dx, dy = float(self.offset[0]), float(self.offset[1])
        yy = np.linspace(0.0, 1.0, H)[:, None, None]
        bg = (1 - yy) * np.array(app.bg1) + yy * np.array(app.bg2)  # (H, 1, 3)
        blobs = cv2.resize(rng.uniform(-1, 1, (5, 5, 3)).astype(np.float32), (H, H),
                           interpolation=cv2.INTER_CUBIC)
        img = np.clip(bg + 28.0 * blobs, 0, 255).astype(np.uint8)
        skin = app.skin
        dark_skin = _col(np.array(skin) * 0.78)
        # torso and neck
        _ellipse(img, _FACE_CX + dx, H + 38 + dy, 125, 70, app.cloth)
        nw = app.face_w * 0.52
        _fill(img, np.array([_FACE_CX - nw, _FACE_CX + nw, _FACE_CX + nw + 6, _FACE_CX - nw - 6]) + dx,
              np.array([150.0, 150.0, H + 2, H + 2]) + dy, dark_skin)
        _ellipse(img, _FACE_CX + dx, H + 2 + dy, nw + 8, 18, app.cloth)
        # long hair behind the head
        if app.hair_style == 2:
            hx = np.array([-app.face_w - 10, app.face_w + 10, app.face_w + 16, -app.face_w - 16]) + _FACE_CX
            hy = np.array([_CHEEK_Y - 30, _CHEEK_Y - 30, 196, 196])
            _fill(img, hx + dx, hy + dy, _col(np.array(app.hair) * 0.85))
            _ellipse(img, _FACE_CX + dx, _CHEEK_Y - 25 + dy, app.face_w + 13, app.face_top + 5, app.hair)
        # ears
        for sgn in (-1, 1):
            _ellipse(img, _FACE_CX + sgn * (app.face_w - 1) + dx, app.eye_y + 14 + dy, 8, 15,
                     _col(np.array(skin) * 0.9))
        # face
        fx, fy = _face_outline(app, dx, dy)
        _fill(img, fx, fy, skin)
        # hair cap
        if app.hair_style > 0:
            a = np.linspace(0.0, np.pi, 40)
            ox = _FACE_CX + (app.face_w + 5) * np.cos(a)
            oy = _CHEEK_Y - (app.face_top + 7) * np.sin(a)
            hl = app.face_top * (0.50 if app.hair_style == 1 else 0.56)
            ix = _FACE_CX + (app.face_w + 1) * np.cos(a[::-1])
            iy = _CHEEK_Y - 12 - hl * np.power(np.sin(a[::-1]), 0.6)
            _fill(img, np.concatenate([ox, ix]) + dx, np.concatenate([oy, iy]) + dy, app.hair)
        # eyebrows
        brow = _col(np.array(app.hair) * 0.7 + np.array(skin) * 0.1)
        for sgn in (-1, 1):
            xs = _FACE_CX + sgn * (app.eye_dx + np.linspace(-12, 12, 12)) + dx
            ys = app.eye_y - 11 - 3.0 * np.cos(np.linspace(-1.3, 1.3, 12)) + dy
            cv2.polylines(img, [_pts(xs, ys)], False, brow, app.brow_thick, _AA, _SHIFT)
        # eyes
        self.eye_centres = []
        for sgn in (-1, 1):
            ex, ey = _FACE_CX + sgn * app.eye_dx + dx, app.eye_y + dy
            self.eye_centres.append((ex, ey))
            _ellipse(img, ex, ey, 11, 5.2, (235, 238, 240))
            _ellipse(img, ex, ey, 4.6, 4.6, app.iris)
            _ellipse(img, ex, ey, 2.0, 2.0, (15, 15, 15))
            _ellipse(img, ex, ey, 11.5, 5.8, _col(np.array(skin) * 0.45), thickness=1, a0=180, a1=360)
        # nose: tip, alae and nostrils
        nose_dark = _col(np.array(skin) * 0.7)
        ny = app.nose_y + dy
        _ellipse(img, _FACE_CX + dx, ny - 3, 6.5, 5.5, _col(np.array(skin) * 0.95))
        _ellipse(img, _FACE_CX + dx, ny - 5, 3.0, 2.5, _col(np.minimum(np.array(skin) * 1.06, 255)))
        for sgn in (-1, 1):
            _ellipse(img, _FACE_CX + sgn * 7.5 + dx, ny - 2, 3.2, 4.2, _col(np.array(skin) * 0.88),
                     thickness=1, a0=90 - sgn * 90, a1=270 - sgn * 90)
            _ellipse(img, _FACE_CX + sgn * 4.5 + dx, ny + 1, 2.6, 1.5, nose_dark, angle=sgn * 15)
        # philtrum
        cv2.polylines(img, [_pts(np.array([_FACE_CX, _FACE_CX]) + dx,
                                 np.array([ny + 5, MOUTH_CENTER_XY[1] - 9.0]) + dy)],
                      False, _col(np.array(skin) * 0.93), 2, _AA, _SHIFT)
        # shading: radial falloff over the face, directional light
        Y, X = np.mgrid[0:H, 0:H].astype(np.float32)
        rx = (X - _FACE_CX - dx) / (app.face_w * 1.05)
        ry = (Y - 115.0 - dy) / (app.face_top * 1.05)
        r2 = rx * rx + ry * ry
        shade = 1.0 - 0.22 * np.clip(r2, 0, 1.6) ** 1.5 / 1.6 ** 1.5
        shade += 0.08 * self.light_dir * (X - _FACE_CX) / 112.0
        shade = np.clip(shade * 235.0, 0, 255).astype(np.uint8)
        shade_dir = np.clip(((X - _FACE_CX) / 112.0 + 1.0) * 30.0, 0, 255).astype(np.uint8)
        return img, cv2.merge([shade] * 3), cv2.merge([shade_dir] * 3)

    # -------------------------------------------------------------- mouth geometry
    def mouth_geometry(self, params: np.ndarray, nx: int = 25):
        """Vectorised lip contours for all frames (face coordinates, before head motion).

        Args:
            params: (T, N_PARAMS) mouth parameters.
        Returns:
            dict of arrays (T, nx) / (T,): outer grid x, inner grid x, contours y.
        """
        app = self.app
        s = app.mouth_scale
        o = params[:, P["open"]]
        sp = params[:, P["spread"]]
        r = params[:, P["round"]]
        pr = params[:, P["protrude"]]
        tk = params[:, P["tuck"]]
        cx = MOUTH_CENTER_XY[0] + self.offset[0]
        cy = MOUTH_CENTER_XY[1] + self.offset[1]
        W = s * 23.0 * (1.0 + 0.20 * sp - 0.28 * r)  # (T,) outer half width
        G = s * 34.0 * np.clip((o - 0.06) / 0.94, 0.0, 1.0) * (1.0 - 0.5 * tk)
        G = np.maximum(G, tk * s * 4.5)  # f/v: upper teeth resting on the lower lip
        Gu = 0.28 * G
        Gl = 0.72 * G
        Wi = W * (0.9 - 0.3 * r)
        n_exp = 2.0 + 2.0 * (1.0 - r)  # superellipse exponent: round -> 2, spread -> 4
        press = np.clip((0.05 - o) / 0.05, 0.0, 1.0)  # closed lips are pressed thinner
        Tu = s * app.lip_up * (1 + 0.35 * pr) * (1 - 0.12 * sp) * (1 - 0.2 * press)
        Tl = s * app.lip_lo * (1 + 0.35 * pr) * (1 - 0.12 * sp) * (1 - 0.45 * tk) * (1 - 0.2 * press)
        u = np.linspace(-1.0, 1.0, nx)[None, :]
        xo = W[:, None] * u  # (T, nx)
        xi = Wi[:, None] * u

        def f(x, wi):
            a = np.clip(np.abs(x) / wi[:, None], 0.0, 1.0)
            return np.power(1.0 - np.power(a, n_exp[:, None]), 1.0 / n_exp[:, None])

        g = np.power(np.clip(1.0 - u * u, 0.0, 1.0), 0.55)  # lip thickness profile
        bow = 1.0 - 0.22 * np.exp(-np.square(u / 0.13)) + 0.06 * np.exp(-np.square((np.abs(u) - 0.3) / 0.12))
        fo = f(xo, Wi)
        fi = f(xi, Wi)
        geo = {
            "cx": cx, "cy": cy, "W": W, "Wi": Wi, "G": G, "Gl": Gl, "xo": xo, "xi": xi,
            "y_ui": -Gu[:, None] * fi, "y_li": Gl[:, None] * fi,
            "y_uo": -Gu[:, None] * fo - Tu[:, None] * g * bow,
            "y_lo": Gl[:, None] * fo + Tl[:, None] * g,
            "y_ui_o": -Gu[:, None] * fo, "y_li_o": Gl[:, None] * fo,
            "Tl": Tl, "pr": pr,
        }
        return geo

    def head_matrices(self) -> np.ndarray:
        """(T, 2, 3) affine head-motion matrices (frame -> frame)."""
        mats = np.zeros((self.n, 2, 3))
        for i in range(self.n):
            M = cv2.getRotationMatrix2D(_PIVOT, float(self.roll[i]), float(self.zoom[i]))
            M[0, 2] += self.tx[i]
            M[1, 2] += self.ty[i]
            mats[i] = M
        return mats

    def mouth_outline(self, params: np.ndarray) -> np.ndarray:
        """(T, K, 2) outer lip contour per frame in final frame coordinates (after motion)."""
        geo = self.mouth_geometry(params)
        cx, cy = geo["cx"], geo["cy"]
        xs = np.concatenate([geo["xo"], geo["xo"][:, ::-1]], axis=1) + cx
        ys = np.concatenate([geo["y_uo"], geo["y_lo"][:, ::-1] + 3.0], axis=1) + cy  # +shadow
        mats = self.head_matrices()
        pts = np.stack([xs, ys, np.ones_like(xs)], axis=-1)  # (T, K, 3)
        return np.einsum("tij,tkj->tki", mats, pts)

    # -------------------------------------------------------------- per frame
    def render(self, params: np.ndarray) -> np.ndarray:
        """Render all frames: (T, FRAME_SIZE, FRAME_SIZE, 3) uint8 BGR."""
        assert params.shape[0] == self.n, (params.shape, self.n)
        app = self.app
        H = FRAME_SIZE
        geo = self.mouth_geometry(params)
        mats = self.head_matrices()
        cx, cy = geo["cx"], geo["cy"]
        skin = app.skin
        lip_up = _col(np.array(app.lip) * 0.92)
        lip_lo = app.lip
        seam = _col(np.array(app.lip) * 0.5)
        shadow = _col(np.array(skin) * 0.9)
        corner = _col(np.array(skin) * 0.7)
        lid = _col(np.array(skin) * 0.97)
        lid_line = _col(np.array(skin) * 0.45)
        out = np.empty((self.n, H, H, 3), dtype=np.uint8)
        ksize = int(2 * np.ceil(3 * self.blur) + 1)
        for i in range(self.n):
            img = self.base.copy()
            # blink
            b = self.blink[i]
            if b > 0.05:
                for ex, ey in self.eye_centres:
                    _ellipse(img, ex, ey - 6 + 6 * b, 12.5, 6.0 * b + 0.5, lid)
                    if b > 0.8:
                        lash_x = ex + np.linspace(-11, 11, 9)
                        lash_y = ey + 0.5 + 1.5 * np.cos(np.linspace(-1.4, 1.4, 9))
                        cv2.polylines(img, [_pts(lash_x, lash_y)], False, lid_line, 1, _AA, _SHIFT)
            # jaw drop moves the lower face with the lower lip
            drop = 0.55 * float(geo["Gl"][i])
            if drop > 0.3:
                lx, ly = _lower_face(app, self.offset[0], self.offset[1], cy + 6.0)
                _fill(img, lx, ly + drop, skin)
            xo, xi = geo["xo"][i] + cx, geo["xi"][i] + cx
            y_ui, y_li = geo["y_ui"][i] + cy, geo["y_li"][i] + cy
            y_uo, y_lo = geo["y_uo"][i] + cy, geo["y_lo"][i] + cy
            y_ui_o, y_li_o = geo["y_ui_o"][i] + cy, geo["y_li_o"][i] + cy
            W, Wi, G = float(geo["W"][i]), float(geo["Wi"][i]), float(geo["G"][i])
            # shadow under the lower lip (deeper with protrusion)
            _ellipse(img, cx, float(y_lo.max()) - 2.0, 0.45 * W,
                     0.5 * float(geo["Tl"][i]) + 1.0 + 2.0 * float(geo["pr"][i]), shadow)
            for sgn in (-1, 1):
                _ellipse(img, cx + sgn * W, cy, 1.6, 2.4, corner)
            if G > 0.4:
                # mouth cavity
                _fill(img, np.concatenate([xi, xi[::-1]]), np.concatenate([y_ui, y_li[::-1]]), app.cavity)
                # lower teeth
                tl = params[i, P["teeth_lo"]]
                if tl > 0.05:
                    m = np.abs(xi - cx) < 0.78 * Wi
                    x_t = xi[m]
                    top = np.maximum(y_li[m] - app.mouth_scale * 4.0 * tl, y_ui[m])
                    _fill(img, np.concatenate([x_t, x_t[::-1]]), np.concatenate([y_li[m], top[::-1]]), app.teeth)
                # tongue
                tg = params[i, P["tongue"]]
                m = np.abs(xi - cx) < 0.72 * Wi
                x_t = xi[m]
                prof = np.sqrt(np.clip(1.0 - np.square((x_t - cx) / (0.72 * Wi)), 0.0, 1.0))
                top = np.maximum(y_li[m] - G * (0.22 + 0.62 * tg) * prof, y_ui[m])
                _fill(img, np.concatenate([x_t, x_t[::-1]]), np.concatenate([y_li[m], top[::-1]]), app.tongue)
                # upper teeth
                tu = params[i, P["teeth_up"]]
                if tu > 0.05:
                    m = np.abs(xi - cx) < 0.8 * Wi
                    x_t = xi[m]
                    bot = np.minimum(y_ui[m] + app.mouth_scale * 6.5 * tu, y_li[m])
                    _fill(img, np.concatenate([x_t, x_t[::-1]]), np.concatenate([y_ui[m] - 1.0, bot[::-1]]), app.teeth)
                # tongue tip between the teeth (/th/, /l/)
                if tg > 0.5:
                    wt = 0.45 * Wi * tg
                    m = np.abs(xi - cx) < wt
                    if m.sum() >= 3:
                        x_t = xi[m]
                        prof = np.sqrt(np.clip(1.0 - np.square((x_t - cx) / wt), 0.0, 1.0))
                        top = np.maximum(y_li[m] - G * (0.55 + 0.4 * (tg - 0.5)) * prof - 1.0, y_ui[m] + 0.5)
                        _fill(img, np.concatenate([x_t, x_t[::-1]]), np.concatenate([y_li[m], top[::-1]]), app.tongue)
            # lips
            _fill(img, np.concatenate([xo, xo[::-1]]), np.concatenate([y_uo, y_ui_o[::-1]]), lip_up)
            _fill(img, np.concatenate([xo, xo[::-1]]), np.concatenate([y_li_o, y_lo[::-1]]), lip_lo)
            if G <= 1.5:
                cv2.polylines(img, [_pts(xo, 0.5 * (y_ui_o + y_li_o))], False, seam, 1, _AA, _SHIFT)
            # lighting (static shading + drifting direction) and gain
            k = float(self.dir_drift[i])
            sh = cv2.addWeighted(self.shade, 1.0, self.shade_dir, k, -30.0 * k)
            img = cv2.multiply(img, sh, scale=float(self.gain[i]) / 235.0)
            # head motion
            img = cv2.warpAffine(img, mats[i], (H, H), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REFLECT101)
            img = cv2.GaussianBlur(img, (ksize, ksize), self.blur)
            # sensor noise (saturating add of positive and negative parts)
            k = int(self.rng.integers(NOISE_BANK))
            img = cv2.subtract(cv2.add(img, self.noise_pos[k]), self.noise_neg[k])
            out[i] = img
        return out
