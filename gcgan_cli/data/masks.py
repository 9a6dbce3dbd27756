"""Part masks: class ids (0 background .. 6 mouth), a painter's-algorithm construction, colours for display.

We paint a zero canvas in a fixed order, later parts winning, with our own exact scanline fill
(no OpenCV rasteriser involved, so no version can change a label). The reference instead summed scaled hull
images and relabelled the sums; that arithmetic depends on OpenCV's scalar-multiply semantics (4.x scales channel 0
only) and turns overlaps into wrong ids (eye+brow reads as iris, brow+nose as mouth, an iris
outside the eye becomes skin over the brow). Where parts do not overlap both give the same ids.
Further differences, each a fix: hulls are filled from sub-pixel vertices (a pixel is in when its
centre is), and the iris disk is the minimum enclosing circle itself (the reference shrank its radius by 1 px and
truncated it and the centre to integers).
"""

from __future__ import annotations

import cv2
import numpy as np

from gcgan_cli.data import landmarks as lm
from gcgan_cli.data.eye_crop import band_rows

CLASS_NAMES = ("background", "skin", "eye", "eyebrow", "nose", "iris", "mouth")
BACKGROUND, SKIN, EYE, EYEBROW, NOSE, IRIS, MOUTH = range(len(CLASS_NAMES))
# Masks are resized by the pixel-centre nearest neighbour, which keeps each part where the image's
# area resampling puts it; cv2.INTER_NEAREST samples pixel corners and shifts every part by about
# 0.38 px right and down at a 4x downscale.
RESIZE = cv2.INTER_NEAREST_EXACT
# Paint order: later wins. The iris is painted only where an eye already is.
PAINT_ORDER = (SKIN, EYEBROW, NOSE, MOUTH, EYE, IRIS)

# Display colours (RGB) per class id: the reference's colour map for masks.
PALETTE = np.array(
    [
        (0, 0, 0),
        (239, 234, 90),
        (44, 105, 154),
        (4, 139, 168),
        (13, 179, 158),
        (131, 227, 119),
        (185, 231, 105),
        (107, 137, 198),
        (241, 196, 83),
        (242, 158, 76),
        (234, 114, 71),
        (215, 95, 155),
        (207, 113, 192),
        (159, 89, 165),
        (142, 82, 172),
        (158, 115, 200),
        (116, 95, 159),
    ],
    dtype=np.uint8,
)


def fill_hull(canvas: np.ndarray, points: np.ndarray, value: int) -> None:
    """Paint `value` on every pixel whose centre lies in the convex hull of `points` [K, 2]
    (strip coordinates, pixel i spanning [i, i+1); NaN rows ignored).

    Exact scanline fill in numpy: OpenCV's polygon fill also takes pixels the edges merely
    touch, which grows every part by about half a pixel.
    """
    points = np.asarray(points, dtype=np.float32)
    if np.isnan(points).any():
        points = points[~np.isnan(points).any(axis=1)]
    if len(points) < 3:
        return
    hull = cv2.convexHull(points).reshape(-1, 2).astype(np.float64)
    height, width = canvas.shape[:2]
    row0 = max(int(np.ceil(hull[:, 1].min() - 0.5)), 0)
    row1 = min(int(np.floor(hull[:, 1].max() - 0.5)), height - 1)
    if row1 < row0:
        return
    # Split the hull at its top and bottom vertices into two chains, each monotonic in y, and
    # read both chains' x at every row centre.
    top = int(np.argmin(hull[:, 1]))
    hull = np.concatenate([hull[top:], hull[: top + 1]])  # closed, starting and ending at the top
    bottom = int(np.argmax(hull[:-1, 1]))
    one, two = hull[: bottom + 1], hull[bottom:][::-1]
    centres = np.arange(row0, row1 + 1, dtype=np.float64) + 0.5
    x_one = np.interp(centres, one[:, 1], one[:, 0])
    x_two = np.interp(centres, two[:, 1], two[:, 0])
    left, right = np.minimum(x_one, x_two)[:, None], np.maximum(x_one, x_two)[:, None]
    col0 = max(int(np.ceil(left.min() - 0.5)), 0)
    col1 = min(int(np.floor(right.max() - 0.5)), width - 1)
    if col1 < col0:
        return
    columns = np.arange(col0, col1 + 1, dtype=np.float64)[None, :] + 0.5
    canvas[row0 : row1 + 1, col0 : col1 + 1][(left <= columns) & (columns <= right)] = value


def disk(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    """Boolean map of the pixels whose centre lies within `radius` of `centre` (x, y)."""
    height, width = shape
    inside = np.zeros(shape, dtype=bool)
    row0, row1 = max(int(np.floor(centre[1] - radius)), 0), min(int(np.ceil(centre[1] + radius)) + 1, height)
    col0, col1 = max(int(np.floor(centre[0] - radius)), 0), min(int(np.ceil(centre[0] + radius)) + 1, width)
    if row1 > row0 and col1 > col0:
        ys = np.arange(row0, row1, dtype=np.float64)[:, None] + 0.5
        xs = np.arange(col0, col1, dtype=np.float64)[None, :] + 0.5
        inside[row0:row1, col0:col1] = (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2 <= radius * radius
    return inside


def iris_disk(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The disk through the iris contour landmarks [4, 2] (minimum enclosing circle)."""
    points = points[~np.isnan(points).any(axis=1)].astype(np.float32)
    if len(points) < 2:
        return np.zeros(shape, dtype=bool)
    (cx, cy), radius = cv2.minEnclosingCircle(points)
    return disk(shape, (cx, cy), radius)


def blank_bands(mask: np.ndarray) -> np.ndarray:
    """Set the black bands above and below the face to background (in place)."""
    top, bottom = band_rows(mask.shape[0])
    mask[:top] = BACKGROUND
    mask[bottom:] = BACKGROUND
    return mask


def mask_from_landmarks(points: np.ndarray, size: int) -> np.ndarray:
    """Class-id mask [size, size] uint8 of a strip from landmarks [478, 2] in strip coordinates."""
    mask = np.zeros((size, size), dtype=np.uint8)
    fill_hull(mask, points, SKIN)  # the face: hull of every landmark
    for group, value in ((lm.RIGHT_BROW, EYEBROW), (lm.LEFT_BROW, EYEBROW), (lm.NOSE, NOSE), (lm.MOUTH, MOUTH)):
        fill_hull(mask, points[list(group)], value)
    eyes = np.zeros_like(mask)
    for group in (lm.RIGHT_EYE, lm.LEFT_EYE):
        fill_hull(eyes, points[list(group)], 1)
    paint_iris(mask, eyes.astype(bool), points)
    return blank_bands(mask)


def paint_iris(mask: np.ndarray, eyes: np.ndarray, points: np.ndarray) -> None:
    """Paint the eye region, then each iris disk where it lies inside an eye (in place)."""
    mask[eyes] = EYE
    for group in (lm.RIGHT_IRIS, lm.LEFT_IRIS):
        mask[iris_disk(points[list(group)], mask.shape) & eyes] = IRIS


def colorize(mask: np.ndarray) -> np.ndarray:
    """Class ids [H, W] -> RGB [H, W, 3] uint8 with the reference's palette (PALETTE)."""
    return PALETTE[np.minimum(mask, len(PALETTE) - 1)]


def overlay(rgb: np.ndarray, mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The image with the coloured mask blended over every non-background pixel."""
    blend = rgb.astype(np.float32)
    parts = mask > 0
    blend[parts] = (1 - alpha) * blend[parts] + alpha * colorize(mask)[parts]
    return blend.round().astype(np.uint8)
