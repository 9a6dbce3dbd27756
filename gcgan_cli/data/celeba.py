"""CelebAMask-HQ folders: `CelebA-HQ-img/{id}.jpg` photos (1024^2) and optional human part
annotations `CelebAMask-HQ-mask-anno/{id // 2000}/{id:05d}_{part}.png` (512^2, white = part)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from gcgan_cli.data import masks
from gcgan_cli.errors import DatasetError

IMAGE_DIR = "CelebA-HQ-img"
ANNOTATION_DIR = "CelebAMask-HQ-mask-anno"
IMAGES_PER_ANNOTATION_FOLDER = 2000
# Our classes from CelebAMask-HQ's part files. Ears, hair, neck, hat, glasses and cloth stay background.
ANNOTATION_PARTS = {
    masks.SKIN: ("skin",),
    masks.EYEBROW: ("l_brow", "r_brow"),
    masks.NOSE: ("nose",),
    masks.MOUTH: ("mouth", "u_lip", "l_lip"),
    masks.EYE: ("l_eye", "r_eye"),
}


def image_folder(root: Path) -> Path:
    """The photo folder: ROOT/CelebA-HQ-img, or ROOT itself when it holds the .jpg files."""
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder; give the CelebAMask-HQ folder (with {IMAGE_DIR}/)")
    folder = root / IMAGE_DIR
    return folder if folder.is_dir() else root


def list_images(root: Path) -> list[tuple[int, Path]]:
    """(id, path) of every `{id}.jpg`, in id order."""
    folder = image_folder(root)
    found = [(int(p.stem), p) for p in folder.glob("*.jpg") if p.stem.isdigit()]
    if not found:
        raise DatasetError(f"{folder}: no CelebA-HQ images named <id>.jpg")
    return sorted(found)


def annotation_root(root: Path) -> Path | None:
    folder = root / ANNOTATION_DIR
    return folder if folder.is_dir() else None


def load_annotations(folder: Path, image_id: int) -> dict[int, np.ndarray]:
    """Boolean part maps per class id for one image; ValueError when it has no annotation at all."""
    sub = folder / str(image_id // IMAGES_PER_ANNOTATION_FOLDER)
    parts: dict[int, np.ndarray] = {}
    for class_id, names in ANNOTATION_PARTS.items():
        for name in names:
            path = sub / f"{image_id:05d}_{name}.png"
            if not path.exists():
                continue  # absent part (e.g. closed mouth has no `mouth` file)
            layer = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if layer is None:
                raise ValueError(f"unreadable annotation {path.name}")
            layer = layer > 127
            parts[class_id] = parts[class_id] | layer if class_id in parts else layer
    if masks.SKIN not in parts:
        raise ValueError(f"no skin annotation {sub.name}/{image_id:05d}_skin.png")
    return parts
