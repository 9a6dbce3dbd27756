"""A face photograph -> (RGB eye strip, class-id mask): landmarks, crop box, mask, one resampling."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gcgan_cli.data import masks
from gcgan_cli.data.eye_crop import StripBox, crop_strip, strip_box
from gcgan_cli.data.landmarks import LandmarkDetector


class NoFace(Exception):
    """FaceMesh found no face, or not enough of one to place the strip."""


@dataclass(frozen=True)
class DetectionView:
    """How the reference showed a face to FaceMesh: resized to `resize` square, then centred on a
    black `canvas` square (0 = no canvas). ETH-XGaze: 256 on 500 ("preprocessed data are not
    perfectly aligned"); CelebA-HQ: 512, no canvas. Only detection sees this view; the strip is
    cut from the source pixels."""

    resize: int
    canvas: int = 0

    def landmarks(self, rgb: np.ndarray, detector: LandmarkDetector) -> np.ndarray | None:
        """Landmarks [478, 2] in source-image pixels, or None."""
        height, width = rgb.shape[:2]
        view = cv2.resize(rgb, (self.resize, self.resize), interpolation=cv2.INTER_LINEAR)
        offset = 0
        if self.canvas:
            offset = (self.canvas - self.resize) // 2
            padded = np.zeros((self.canvas, self.canvas, 3), dtype=np.uint8)
            padded[offset : offset + self.resize, offset : offset + self.resize] = view
            view = padded
        points = detector.detect(view)
        if points is None:
            return None
        scale = np.array([width / self.resize, height / self.resize], dtype=np.float32)
        return (points - offset) * scale


ETHX_VIEW = DetectionView(resize=256, canvas=500)
CELEBA_VIEW = DetectionView(resize=512)


def locate(rgb: np.ndarray, detector: LandmarkDetector, view: DetectionView) -> tuple[np.ndarray, StripBox]:
    """Landmarks (source pixels) and the strip box of the face in `rgb`; NoFace when there is none."""
    points = view.landmarks(rgb, detector)
    if points is None:
        raise NoFace("no face found")
    try:
        return points, strip_box(points)
    except ValueError as exc:
        raise NoFace(str(exc)) from exc


def strip_from_landmarks(rgb: np.ndarray, points: np.ndarray, box: StripBox, size: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB strip [size, size, 3] and its landmark-drawn mask [size, size]."""
    return crop_strip(rgb, box, size), masks.mask_from_landmarks(box.to_strip(points, size), size)


def strip_from_annotations(
    rgb: np.ndarray, points: np.ndarray, box: StripBox, parts: dict[int, np.ndarray], size: int
) -> tuple[np.ndarray, np.ndarray]:
    """RGB strip and a mask whose skin/brow/nose/mouth/eye regions come from human annotations.

    `parts` maps a class id to a boolean map of any resolution (CelebAMask-HQ: 512 for a 1024
    photo); the iris is still the FaceMesh disk, kept inside the annotated eyes.
    """
    mask = np.zeros((size, size), dtype=np.uint8)
    eyes = np.zeros((size, size), dtype=bool)
    for class_id in masks.PAINT_ORDER:
        if class_id not in parts or class_id == masks.IRIS:
            continue
        layer = parts[class_id].astype(np.uint8)
        cropped = crop_strip(layer, box.scaled(layer.shape[1] / rgb.shape[1]), size, labels=True).astype(bool)
        if class_id == masks.EYE:
            eyes = cropped
        else:
            mask[cropped] = class_id
    masks.paint_iris(mask, eyes, box.to_strip(points, size))
    return crop_strip(rgb, box, size), masks.blank_bands(mask)
