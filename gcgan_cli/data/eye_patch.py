"""The 60 x 36 gray eye patch that FP-GAN's networks see, shared by the eye renderer and the gaze readers.

It holds the pixel pipeline (gray conversion, histogram equalisation, [-1, 1] scaling), the UnityEyes
crop (GazeML's affine around the lid margin, with its optional scale and shift jitter), the 18 ELG
landmarks pushed through that crop, and UnityEyes' look-vector and head-pose conventions. The renderer
uses the very functions the readers use, so its labels agree with what a reader returns by construction.

Coordinates are pixels, x right and y down, pixel centres at integers (OpenCV's warpAffine and
resize convention). UnityEyes JSON points have their origin at the bottom-left: y_image = height - y.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

PATCH = (60, 36)  # width, height
EYE_SHAPE = (1, PATCH[1], PATCH[0])  # an eye patch as a tensor: channels, height, width
EYEBALL_RADIUS = 71.7593  # UnityEyes' eyeball radius in raw pixels; the eyeball centre is the image centre
CROP_SPAN = 1.5  # the crop is this many corner-to-corner distances wide
OUTER_CORNER = 8  # interior_margin_2d index of the corner opposite the caruncle
JITTER_SCALE = 0.1  # GazeML's crop jitter at difficulty 1: scale 1 + 0.1 n, shift 10 n raw px
JITTER_SHIFT = 10.0
NO_JITTER = (1.0, 0.0, 0.0)
N_LANDMARKS = 18  # margin[::2] (8), iris[::4] (8), iris centre, eyeball centre
IRIS_CENTRE, EYEBALL_CENTRE = 16, 17
GRAY_MODES = ("mean", "luma")


def to_gray(bgr: np.ndarray, mode: str) -> np.ndarray:
    """BGR uint8 [H, W, 3] -> gray uint8 [H, W]. "mean" is MPII's plain channel mean, truncated;
    "luma" is 0.299 R + 0.587 G + 0.114 B, as OpenCV's gray decoder reads UnityEyes' JPEGs."""
    if mode == "mean":
        return (bgr.sum(axis=2, dtype=np.uint16) // 3).astype(np.uint8)
    if mode == "luma":
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    raise ValueError(f"gray mode {mode!r}: expected one of {GRAY_MODES}")


def equalise(gray: np.ndarray) -> np.ndarray:
    """Histogram equalisation, as every FP-GAN input gets it (it removes any monotonic tone change)."""
    return cv2.equalizeHist(np.ascontiguousarray(gray))


def to_unit(gray: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [-1, 1] (x / 127.5 - 1)."""
    return gray.astype(np.float32) / 127.5 - 1.0


def from_unit(x: np.ndarray) -> np.ndarray:
    """float in [-1, 1] -> uint8 (rounded, clipped)."""
    return np.clip(np.rint((np.asarray(x, dtype=np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def draw_jitter(rng: np.random.Generator) -> tuple[float, float, float]:
    """GazeML's crop jitter (scale s, shift tx, ty in raw pixels)."""
    n = rng.standard_normal(3)
    return 1.0 + JITTER_SCALE * float(n[0]), JITTER_SHIFT * float(n[1]), JITTER_SHIFT * float(n[2])


def crop_matrix(margin: np.ndarray, caruncle: np.ndarray, jitter: tuple[float, float, float] = NO_JITTER) -> np.ndarray:
    """The 2 x 3 affine from raw image coordinates to the patch: x' = S (x - m + t) + (w, h) / 2, with
    S = s w / (1.5 |mean(caruncle).x - margin[8].x|) and m the centre of the margin's bounding box."""
    margin, caruncle = np.asarray(margin, np.float64)[:, :2], np.asarray(caruncle, np.float64)[:, :2]
    s, tx, ty = jitter
    width = CROP_SPAN * max(abs(caruncle.mean(axis=0)[0] - margin[OUTER_CORNER, 0]), 1e-6)
    scale = PATCH[0] / width * s
    centre = (margin.min(axis=0) + margin.max(axis=0)) / 2
    return np.array(
        [[scale, 0.0, PATCH[0] / 2 - scale * (centre[0] - tx)], [0.0, scale, PATCH[1] / 2 - scale * (centre[1] - ty)]]
    )


def crop(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The patch (bilinear, black outside the image), gray or colour."""
    return cv2.warpAffine(np.ascontiguousarray(image), matrix, PATCH, flags=cv2.INTER_LINEAR, borderValue=0)


def transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float64)[:, :2]
    return points @ matrix[:, :2].T + matrix[:, 2]


def look_vector(pitch: float, yaw: float) -> tuple[float, float, float]:
    """(pitch, yaw) -> UnityEyes' look_vec (its camera looks along -z): (-cos p sin y, sin p, -cos p cos y)."""
    return -math.cos(pitch) * math.sin(yaw), math.sin(pitch), -math.cos(pitch) * math.cos(yaw)


def landmarks(
    matrix: np.ndarray,
    margin: np.ndarray,
    iris: np.ndarray,
    look: tuple[float, float, float],
    image_size: tuple[int, int],
) -> np.ndarray:
    """The 18 ELG landmarks [18, 2] float32 in patch pixels: margin[::2], iris[::4], the iris centre
    c + R (-cos p sin yaw0, -sin p) and the eyeball centre c = (w/2, h/2), where (p, yaw0) is the
    look vector's uncorrected pitch and yaw, yaw0 = atan2(-x, z)."""
    x, y, z = look[:3]
    pitch, yaw0 = math.asin(y / math.sqrt(x * x + y * y + z * z)), math.atan2(-x, z)
    centre = np.array([image_size[0] / 2, image_size[1] / 2])
    iris_centre = centre + EYEBALL_RADIUS * np.array([-math.cos(pitch) * math.sin(yaw0), -math.sin(pitch)])
    points = np.concatenate(
        [np.asarray(margin, np.float64)[::2, :2], np.asarray(iris, np.float64)[::4, :2], [iris_centre, centre]]
    )
    return transform(matrix, points).astype(np.float32)


def head_from_unity(pitch_deg: float, yaw_deg: float) -> tuple[float, float]:
    """UnityEyes' head_pose degrees -> (pitch, yaw) radians: pitch above 180 wraps by 360, yaw loses
    180, then both are negated."""
    if pitch_deg > 180:
        pitch_deg -= 360
    return math.radians(-pitch_deg), math.radians(-(yaw_deg - 180))


def head_to_unity(pitch: float, yaw: float) -> tuple[float, float, float]:
    """(pitch, yaw) radians -> head_pose degrees (pitch, yaw, roll) that `head_from_unity` maps back."""
    pitch_deg = -math.degrees(pitch)
    return pitch_deg + 360 if pitch_deg < 0 else pitch_deg, 180 - math.degrees(yaw), 0.0


def resize_patch(gray: np.ndarray, points: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """A stored patch of another size -> PATCH (bilinear), its landmarks scaled the same way."""
    height, width = gray.shape[:2]
    if (width, height) == PATCH:
        return gray, points
    resized = cv2.resize(gray, PATCH, interpolation=cv2.INTER_LINEAR)
    if points is not None:
        scale = np.array([PATCH[0] / width, PATCH[1] / height], np.float32)
        points = ((points + 0.5) * scale - 0.5).astype(np.float32)
    return resized, points
