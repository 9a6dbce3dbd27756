"""CelebAMask-HQ folders: `CelebA-HQ-img/{id}.jpg` photos (1024^2) and optional human part
annotations `CelebAMask-HQ-mask-anno/{id // 2000}/{id:05d}_{part}.png` (512^2, white = part)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from gcgan_cli.data import masks
from gcgan_cli.data.image_files import cut_short
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


def read_image(path: Path, flags: int, what: str = "image") -> np.ndarray:
    """`path` decoded with OpenCV `flags`; ValueError "unreadable WHAT" or "truncated WHAT".

    A file cut short is refused before decoding, which would print libjpeg's warning and give a
    picture grey below the cut.
    """
    data = path.read_bytes()
    if cut_short(data):
        raise ValueError(f"truncated {what}")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise ValueError(f"unreadable {what}")
    return image


def load_annotations(folder: Path, image_id: int) -> dict[int, np.ndarray]:
    """Boolean part maps per class id for one image; ValueError when it has no annotation at all,
    or one that is unreadable, cut short, not square or not the size of the others."""
    sub = folder / str(image_id // IMAGES_PER_ANNOTATION_FOLDER)
    parts: dict[int, np.ndarray] = {}
    for class_id, names in ANNOTATION_PARTS.items():
        for name in names:
            path = sub / f"{image_id:05d}_{name}.png"
            if not path.exists():
                continue  # absent part (e.g. closed mouth has no `mouth` file)
            layer = read_image(path, cv2.IMREAD_GRAYSCALE, f"annotation {path.name}")
            height, width = layer.shape
            if height != width:  # scaled to the photo by its width: a non-square map would misplace the parts
                raise ValueError(f"annotation {path.name} is {width}x{height} px; CelebAMask-HQ's are square (512x512)")
            if parts and layer.shape != next(iter(parts.values())).shape:
                raise ValueError(f"annotation {path.name} is {width}x{height} px, unlike the other parts of {image_id}")
            layer = layer > 127
            parts[class_id] = parts[class_id] | layer if class_id in parts else layer
    if masks.SKIN not in parts:
        raise ValueError(f"no skin annotation {sub.name}/{image_id:05d}_skin.png")
    return parts
