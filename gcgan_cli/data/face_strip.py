"""A face photograph -> (RGB eye strip, class-id mask): landmarks, crop box, mask, one resampling."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gcgan_cli.data import masks
from gcgan_cli.data.eye_crop import StripBox, crop_strip, strip_box
from gcgan_cli.data.landmarks import LandmarkDetector, Region

TRACK_SPAN = 32  # frames of one (subject, camera) run that share one anchor detection
MAX_SHIFT = 0.05  # a face whose landmark region moved more than this fraction of its side is looked at again
MAX_TURN = 0.1  # ... or that turned more than this (radians)


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

    def show(self, rgb: np.ndarray) -> np.ndarray:
        """The image FaceMesh sees."""
        view = cv2.resize(rgb, (self.resize, self.resize), interpolation=cv2.INTER_LINEAR)
        if not self.canvas:
            return view
        offset = self._offset()
        padded = np.zeros((self.canvas, self.canvas, 3), dtype=np.uint8)
        padded[offset : offset + self.resize, offset : offset + self.resize] = view
        return padded

    def to_source(self, points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Pixel coordinates in the view -> in the source image of `shape`."""
        height, width = shape[:2]
        scale = np.array([width / self.resize, height / self.resize], dtype=np.float32)
        return (points - self._offset()) * scale

    def _offset(self) -> int:
        return (self.canvas - self.resize) // 2 if self.canvas else 0


ETHX_VIEW = DetectionView(resize=256, canvas=500)
CELEBA_VIEW = DetectionView(resize=512)


def locate(rgb: np.ndarray, detector: LandmarkDetector, view: DetectionView) -> tuple[np.ndarray, StripBox]:
    """Landmarks (source pixels) and the strip box of the face in `rgb`; NoFace when there is none."""
    face = detector.find(view.show(rgb))
    if face is None:
        raise NoFace("no face found")
    return _placed(face.points, rgb, view)


@dataclass(frozen=True)
class Anchor:
    """The face in the first frame of a span: where the detector found it (the landmark model's
    region for every frame of the span) and the region its landmarks span (what those of later
    frames are compared with). Regions are in view coordinates."""

    crop: Region
    extent: Region


def find_anchor(rgb: np.ndarray, detector: LandmarkDetector, view: DetectionView) -> Anchor | None:
    """The anchor a span starting with `rgb` gets, or None when the detector finds no face."""
    face = detector.find(view.show(rgb))
    return None if face is None else Anchor(face.crop, face.extent)


def locate_near(
    rgb: np.ndarray, detector: LandmarkDetector, view: DetectionView, anchor: Anchor | None
) -> tuple[np.ndarray, StripBox]:
    """`locate` for a frame of a span whose first frame gave `anchor`, mostly without the detector.

    The landmark model looks at the anchor's detector region. When the face's landmark region is
    off the anchor's (more than MAX_SHIFT of its side, or MAX_TURN), it looks again at that region,
    as FaceMesh's tracking mode does. The detector decides (`locate`) when there is no anchor (not
    a span, or its first frame has no face), when the model finds no face, when its second look
    moved again, and when an eye corner is outside the image.

    Why: ETH-XGaze's patches are normalised faces, so within one (subject, camera) run the face
    stays in nearly one box and the detector finds it again; on one core FaceMesh takes about
    3.0 ms per image, the landmark model alone 1.8 ms. Where the face jumps by several pixels from
    frame to frame, about half the frames need the second look, and nothing is saved. Why not
    FaceMesh's tracking mode itself (`static_image_mode=False`, which crops the region of the
    previous frame's landmarks): it costs the same per frame, but makes a strip depend on every
    frame before it, so workers would need whole runs in order, and a resumed run would differ from
    an uninterrupted one. Here a strip depends on its frame and its span's first frame only: any
    number of workers, any split of the work and any resume give the same bytes, and the first
    frame gets exactly the detector path's landmarks (same region, same model). On the real-photo
    fixtures with frames up to 12 px (of 224) off the anchor, the landmarks stay within 1.0 px mean
    of the detector path's (per frame; 0.3-0.55 px on average); cropping the landmarks' own region
    instead of the detector's, as FaceMesh's tracking mode does, moves them by 0.3-0.9 px.
    """
    if anchor is not None:
        shown = view.show(rgb)
        face = detector.follow(shown, anchor.crop)
        if face is not None and moved(face.extent, anchor.extent):
            again = detector.follow(shown, face.extent)
            face = again if again is not None and not moved(again.extent, face.extent) else None
        if face is not None:
            try:
                return _placed(face.points, rgb, view)
            except NoFace:
                pass  # an eye corner left the image: the detector decides
    return locate(rgb, detector, view)


def moved(region: Region, reference: Region) -> bool:
    """Whether `region` is off `reference` by more than MAX_SHIFT of its side (centre or size) or
    MAX_TURN; regions of a square view (their fractions of width and height are alike)."""
    shift = max(np.hypot(region.x - reference.x, region.y - reference.y), abs(region.width - reference.width))
    turn = abs((region.rotation - reference.rotation + np.pi) % (2 * np.pi) - np.pi)
    return shift > MAX_SHIFT * reference.width or turn > MAX_TURN


def _placed(view_points: np.ndarray, rgb: np.ndarray, view: DetectionView) -> tuple[np.ndarray, StripBox]:
    points = view.to_source(view_points, rgb.shape)
    try:
        return points, strip_box(points)
    except ValueError as exc:
        raise NoFace(str(exc)) from exc


def strip_from_landmarks(
    rgb: np.ndarray, points: np.ndarray, box: StripBox, size: int
) -> tuple[np.ndarray, np.ndarray]:
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
