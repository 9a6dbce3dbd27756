"""Eye-region strip geometry, computed once and applied to image and mask alike.

The reference pads the face to a 500x500 canvas, cuts a face box of side 4.857x the wider eye,
resizes it to 250 with nearest neighbour, keeps its upper half in rows [62, 187) of a black
250x250 strip, and later resizes 250 -> 256 with LANCZOS. We keep that layout but resample
once, straight from the source pixels to the output size (area when shrinking, bicubic when
enlarging; nearest for label maps), and pad with black instead of stretching a box that runs off
the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gcgan_cli.data.landmarks import LEFT_EYE_CORNERS, MOUTH, RIGHT_EYE_CORNERS

EYE_BOX_RATIO = 1.7  # per-eye square side / eye width
EYE_FACE_RATIO = 0.35  # eye square side / face box side (GazeCapture convention)
REF_STRIP = 250  # the reference strip size; the band below is given in its rows
REF_BAND = (62, 187)  # rows of the reference strip that show the upper half of the face box


def band_rows(size: int) -> tuple[int, int]:
    """Rows [top, bottom) of a `size` strip that hold the face; the rest is black.

    A row is kept when its centre falls inside the reference band: (63, 191) at 256, (62, 187) at 250.
    """
    scale = REF_STRIP / size
    top = int(np.ceil(REF_BAND[0] / scale - 0.5))
    bottom = int(np.ceil(REF_BAND[1] / scale - 0.5))
    return top, bottom


@dataclass(frozen=True)
class StripBox:
    """The square of source pixels [x0, x0+side) x [y0, y0+side) that becomes the strip."""

    x0: int
    y0: int
    side: int

    def scaled(self, factor: float) -> StripBox:
        """The same box on an image `factor` times the size (e.g. a 512 label map of a 1024 photo)."""
        return StripBox(round(self.x0 * factor), round(self.y0 * factor), max(1, round(self.side * factor)))

    def to_strip(self, points: np.ndarray, size: int) -> np.ndarray:
        """Source pixel coordinates [..., 2] -> strip coordinates of a `size` strip."""
        return (points - np.array([self.x0, self.y0], dtype=np.float32)) * (size / self.side)


def strip_box(points: np.ndarray) -> StripBox:
    """The strip box of a face from its landmarks [478, 2] (NaN = not in the image).

    Raises ValueError when an eye corner is missing (no strip can be placed).
    """
    corners = points[[*RIGHT_EYE_CORNERS, *LEFT_EYE_CORNERS]]
    if np.isnan(corners).any():
        raise ValueError("an eye corner is outside the image")
    right_w = abs(corners[0, 0] - corners[1, 0])
    left_w = abs(corners[2, 0] - corners[3, 0])
    face_side = EYE_BOX_RATIO * max(right_w, left_w) / EYE_FACE_RATIO
    if face_side < 1.0:
        raise ValueError("the eyes are too small to place a strip")
    eyes = corners.mean(axis=0)  # midpoint between the two eye centres
    mouth = points[list(MOUTH)]
    mouth = mouth[~np.isnan(mouth).any(axis=1)]
    centre = 0.5 * (eyes + (mouth.mean(axis=0) if len(mouth) else eyes))
    face_top = centre[1] - face_side / 2
    strip_top = face_top - face_side * REF_BAND[0] / REF_STRIP
    return StripBox(round(float(centre[0] - face_side / 2)), round(float(strip_top)), max(1, round(face_side)))


def crop_strip(image: np.ndarray, box: StripBox, size: int, labels: bool = False) -> np.ndarray:
    """Cut `box` from `image` [H, W(, C)], pad outside with 0, resample to `size`, black the bands.

    `labels=True` resamples with nearest neighbour (class-id maps); images use area or bicubic.
    """
    height, width = image.shape[:2]
    square = np.zeros((box.side, box.side, *image.shape[2:]), dtype=image.dtype)
    sx0, sy0 = max(box.x0, 0), max(box.y0, 0)
    sx1, sy1 = min(box.x0 + box.side, width), min(box.y0 + box.side, height)
    if sx1 > sx0 and sy1 > sy0:
        square[sy0 - box.y0 : sy1 - box.y0, sx0 - box.x0 : sx1 - box.x0] = image[sy0:sy1, sx0:sx1]
    if labels:
        interpolation = cv2.INTER_NEAREST
    else:
        interpolation = cv2.INTER_AREA if box.side > size else cv2.INTER_CUBIC
    strip = cv2.resize(square, (size, size), interpolation=interpolation)
    top, bottom = band_rows(size)
    strip[:top] = 0
    strip[bottom:] = 0
    return strip
