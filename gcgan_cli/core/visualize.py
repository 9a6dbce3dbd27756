"""Pictures of generator output: images in [-1, 1] to uint8, masks coloured (the reference's colour
map), gaze arrows (the reference's, from the image centre), and sample grids of image | mask pairs."""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from gcgan_cli.data.contact_sheet import tile
from gcgan_cli.data.masks import colorize

ARROW_RGB = (0, 255, 255)
MIN_TILE = 96


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] in [-1, 1] -> [B, H, W, 3] uint8 (clamped)."""
    scaled = (images.detach().float().clamp(-1, 1) * 127.5 + 127.5).round().to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).cpu().numpy()


def class_ids(seg: torch.Tensor) -> np.ndarray:
    """[B, C, H, W] logits -> [B, H, W] uint8 ids (argmax)."""
    return seg.detach().argmax(dim=1).to(torch.uint8).cpu().numpy()


def draw_gaze_arrow(
    image: np.ndarray, pitch: float, yaw: float, length: float | None = None, colour: tuple[int, int, int] = ARROW_RGB
) -> np.ndarray:
    """A copy of `image` [H, W, 3] with the gaze drawn from its centre: dx = -L sin(yaw) cos(pitch),
    dy = -L sin(pitch), L = W/2 by default; anti-aliased, tip 0.2, RGB `colour`."""
    height, width = image.shape[:2]
    length = width / 2 if length is None else length
    centre = (width / 2, height / 2)
    tip = (centre[0] - length * math.sin(yaw) * math.cos(pitch), centre[1] - length * math.sin(pitch))
    out = np.ascontiguousarray(image).copy()
    thickness = max(1, round(width / 64))
    cv2.arrowedLine(
        out,
        tuple(round(v) for v in centre),
        tuple(round(v) for v in tip),
        colour,
        thickness,
        cv2.LINE_AA,
        tipLength=0.2,
    )
    return out


def sample_grid(
    images: torch.Tensor, segs: torch.Tensor, gazes: torch.Tensor | None, columns: int | None = None
) -> np.ndarray:
    """Grid of (image with gaze arrow | coloured mask) pairs; `gazes` [B, 2] (pitch, yaw) or None."""
    rgb, ids = to_uint8(images), class_ids(segs)
    scale = max(1, MIN_TILE // rgb.shape[2])  # small models: enlarge (nearest) so parts and arrows are visible
    if scale > 1:
        rgb, ids = rgb.repeat(scale, 1).repeat(scale, 2), ids.repeat(scale, 1).repeat(scale, 2)
    angles = gazes.detach().float().cpu().tolist() if gazes is not None else [None] * len(rgb)
    pairs = []
    for image, mask, angle in zip(rgb, ids, angles):
        shown = draw_gaze_arrow(image, *angle) if angle is not None else image
        pairs.append(np.concatenate([shown, colorize(mask)], axis=1))
    return tile(pairs, columns or math.ceil(math.sqrt(len(pairs))))
