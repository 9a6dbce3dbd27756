"""Sample sheets of translated eye patches: x | G(x) | F(G(x)) | |G(x) - x| per row, the source's
gaze drawn as an arrow on x and G(x) (the translation must keep it), and landmarks when known.
The difference column shows at a glance a generator that returns its input."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from gcgan_cli.core.visualize import draw_gaze_arrow, to_uint8
from gcgan_cli.data.contact_sheet import tile

SCALE = 3  # 36 x 60 patches enlarged to 108 x 180
TITLE_HEIGHT = 18
LANDMARK_RGB = (255, 80, 80)


def _rgb(images: torch.Tensor) -> np.ndarray:
    """[B, 1, H, W] in [-1, 1] -> [B, H*SCALE, W*SCALE, 3] uint8."""
    return to_uint8(images.expand(-1, 3, -1, -1)).repeat(SCALE, 1).repeat(SCALE, 2)


def _difference(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """|a - b| mapped so that a difference of 1 (half the [-1, 1] range) or more is white."""
    return _rgb((a - b).abs().clamp(0, 1) * 2 - 1)


def draw_landmarks(image: np.ndarray, points: np.ndarray, colour=LANDMARK_RGB) -> np.ndarray:
    out = image.copy()
    for x, y in np.asarray(points, np.float64):
        if np.isfinite(x) and np.isfinite(y):
            cv2.circle(out, (round(x * SCALE), round(y * SCALE)), 2, colour, -1, cv2.LINE_AA)
    return out


def _title(text: str, width: int) -> np.ndarray:
    band = np.full((TITLE_HEIGHT, width, 3), 255, np.uint8)
    cv2.putText(band, text, (4, TITLE_HEIGHT - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return band


def translation_sheet(blocks, titles, landmarks=None) -> np.ndarray:
    """One block per direction: (x, G(x), F(G(x)), gazes [B, 2] numpy) with a title each;
    `landmarks`, when given, holds per block [B, 18, 2] patch-pixel points (or None) drawn on x."""
    pictures = []
    for number, ((x, translated, back, gazes), title) in enumerate(zip(blocks, titles)):
        points = landmarks[number] if landmarks is not None else None
        cells = []
        for i, (source, out, cycle, diff) in enumerate(
            zip(_rgb(x), _rgb(translated), _rgb(back), _difference(translated, x))
        ):
            pitch, yaw = (float(v) for v in gazes[i])
            if points is not None:
                source = draw_landmarks(source, points[i])
            cells += [draw_gaze_arrow(source, pitch, yaw), draw_gaze_arrow(out, pitch, yaw), cycle, diff]
        grid = tile(cells, 4)
        header = _title(f"{title}:  x | translated | cycled back | |translated - x|", grid.shape[1])
        pictures.append(np.concatenate([header, grid], axis=0))
    width = max(p.shape[1] for p in pictures)
    padded = [np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=255) for p in pictures]
    return np.concatenate(padded, axis=0)
