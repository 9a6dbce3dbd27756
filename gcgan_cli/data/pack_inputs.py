"""What `gcgan pack` reads: pairs of (image, class-id mask) with their gaze, and how one pair
becomes the two PNGs of a record.

Three kinds of folder are understood:
- a PREP_DIR from `gcgan segment` (rgb/, mask/, manifest.jsonl): gaze from the manifest;
- a `gcgan sample` folder: `samples.jsonl`, one row per sample with `image` and `mask` paths
  relative to the folder and `pitch`, `yaw` (radians, null when unconditioned);
- any image folder plus mask folder (`--rgb-dir/--mask-dir`), paired by file stem: gaze from the
  name's fields 4 and 5 (split on `_`), the reference's encoding, else unlabelled.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gcgan_cli.data.masks import RESIZE as MASK_RESIZE
from gcgan_cli.data.prep_dir import MANIFEST, encode_png, read_manifest
from gcgan_cli.errors import DatasetError

SAMPLES = "samples.jsonl"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
_SHOWN = 5  # names listed in an error before "... and N more"


@dataclass(frozen=True)
class Pair:
    name: str
    image: Path
    mask: Path
    gaze: tuple[float, float] | None
    gaze_from: str  # "manifest", "samples", "name" or "none"


@dataclass(frozen=True)
class PackInputs:
    kind: str  # "prep", "samples" or "folders"
    pairs: list[Pair]
    manifest: Path | None  # the file the gaze came from, hashed into the DB's metadata

    def fingerprint(self, size: int, class_names: Sequence[str], labelled: bool) -> str:
        """Changes whenever the DB built from these inputs would: names, files, gaze, settings."""
        digest = hashlib.sha256(json.dumps([size, list(class_names), labelled]).encode())
        for pair in self.pairs:
            for file in (pair.image, pair.mask):
                stat = file.stat()
                digest.update(f"{file}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
            digest.update(f"{pair.name}\0{pair.gaze}\n".encode())
        return digest.hexdigest()


def sha256_of(path: Path | None) -> str | None:
    if path is None or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(names: Sequence[str]) -> str:
    """`a, b, c ... and 7 more`: how an error names many files."""
    shown = ", ".join(str(n) for n in names[:_SHOWN])
    return shown + (f" ... and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def find_inputs(folder: Path, rgb_dir: Path | None = None, mask_dir: Path | None = None) -> PackInputs:
    """The pairs to pack from `folder`, sorted by name; a DatasetError lists every problem name."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder; give a PREP_DIR from `gcgan segment` or a `gcgan sample` folder")
    if (folder / SAMPLES).is_file() and rgb_dir is None and mask_dir is None:
        return _sample_inputs(folder)
    images = _files_by_stem(rgb_dir or folder / "rgb", "--rgb-dir")
    masks = _files_by_stem(mask_dir or folder / "mask", "--mask-dir")
    only_images, only_masks = sorted(images.keys() - masks.keys()), sorted(masks.keys() - images.keys())
    if only_images or only_masks:
        parts = [f"{len(only_images)} image(s) without a mask ({listing(only_images)})"] if only_images else []
        parts += [f"{len(only_masks)} mask(s) without an image ({listing(only_masks)})"] if only_masks else []
        raise DatasetError(f"{folder}: unmatched names: {'; '.join(parts)}. Images and masks pair by file name.")
    manifest = folder / MANIFEST
    rows = read_manifest(manifest)
    pairs = []
    for name in sorted(images):
        row = rows.get(name)
        if row is not None:
            gaze = _gaze(row.get("pitch"), row.get("yaw"), f"{manifest} row {name!r}")
            pairs.append(Pair(name, images[name], masks[name], gaze, "manifest" if gaze else "none"))
        else:
            gaze = gaze_from_name(name)
            pairs.append(Pair(name, images[name], masks[name], gaze, "name" if gaze else "none"))
    return PackInputs("prep" if rows else "folders", pairs, manifest if rows else None)


def gaze_from_name(name: str) -> tuple[float, float] | None:
    """(pitch, yaw) from fields 4 and 5 of the reference's names, `..._eregion_{pitch}_{yaw}_c_{cam}`."""
    fields = name.split("_")
    if len(fields) < 6:
        return None
    try:
        pitch, yaw = float(fields[4]), float(fields[5])
    except ValueError:
        return None
    return (pitch, yaw) if math.isfinite(pitch) and math.isfinite(yaw) else None


def _gaze(pitch, yaw, where: str) -> tuple[float, float] | None:
    if pitch is None and yaw is None:
        return None
    try:
        gaze = float(pitch), float(yaw)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: pitch/yaw must be numbers or both null, got {pitch!r}, {yaw!r}") from None
    if not all(math.isfinite(v) for v in gaze):
        raise DatasetError(f"{where}: pitch/yaw must be finite, got {pitch!r}, {yaw!r}")
    return gaze


def _files_by_stem(folder: Path, option: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder; point {option} at it")
    found: dict[str, Path] = {}
    clashes = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file():
            if path.stem in found:
                clashes.append(f"{found[path.stem].relative_to(folder)} / {path.relative_to(folder)}")
            found[path.stem] = path
    if clashes:
        raise DatasetError(f"{folder}: {len(clashes)} name(s) appear twice ({listing(clashes)}); names must be unique")
    if not found:
        raise DatasetError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return found


def _sample_inputs(folder: Path) -> PackInputs:
    file = folder / SAMPLES
    pairs, missing = [], []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            image, mask = folder / row["image"], folder / row["mask"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{file}:{number}: expected a JSON object with image, mask, pitch, yaw ({exc})") from None
        missing += [str(p.relative_to(folder)) for p in (image, mask) if not p.is_file()]
        gaze = _gaze(row.get("pitch"), row.get("yaw"), f"{file}:{number}")
        pairs.append(Pair(str(row.get("name") or image.stem), image, mask, gaze, "samples" if gaze else "none"))
    if missing:
        raise DatasetError(f"{file}: {len(missing)} listed file(s) missing ({listing(missing)})")
    if not pairs:
        raise DatasetError(f"{file}: no samples listed")
    return PackInputs("samples", sorted(pairs, key=lambda p: p.name), file)


# --- one record, in a worker process ---


class RecordError(Exception):
    """This pair cannot be packed; the message names the file and the problem."""


def make_record(pair: tuple[str, str], size: int, num_classes: int) -> tuple[bytes | None, bytes | None] | str:
    """(image PNG, mask PNG) at size x size, or the reason the pair cannot be packed.

    Images: the shorter side resized to `size` (area filter when shrinking, bicubic when
    enlarging: at the reference's 250 -> 256 it differs from its Lanczos by 0.3 grey levels on
    average, at a tenth of the cost), then centre-cropped, as the reference packs. Masks: the same geometry with
    nearest neighbour. A file that already is a PNG of the right kind and size is packed byte
    for byte: None stands for "the file's own bytes", which the caller reads (cheaper than
    sending them back from a worker).
    """
    image_path, mask_path = pair
    try:
        image_bytes, mask_bytes = Path(image_path).read_bytes(), Path(mask_path).read_bytes()
        image = _decode(image_bytes, image_path)
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        elif image.shape[2] == 4:
            image = image[:, :, :3]
        mask = _decode(mask_bytes, mask_path)
        if mask.ndim == 3:
            if not (np.array_equal(mask[:, :, 0], mask[:, :, 1]) and np.array_equal(mask[:, :, 0], mask[:, :, 2])):
                raise RecordError(f"{mask_path}: a colour mask; expected one channel of class ids")
            mask = np.ascontiguousarray(mask[:, :, 0])
        if image.dtype != np.uint8 or mask.dtype != np.uint8:
            raise RecordError(f"{image_path if image.dtype != np.uint8 else mask_path}: expected 8-bit pixels")
        if image.shape[:2] != mask.shape:
            raise RecordError(f"{mask_path}: {mask.shape[1]}x{mask.shape[0]}, but its image is {image.shape[1]}x{image.shape[0]}")
        top = int(mask.max())
        if top >= num_classes:
            raise RecordError(f"{mask_path}: class id {top}, but only ids 0..{num_classes - 1} are declared")
        image_png = None if _is_png(image_bytes, size, colour_type=2) else encode_png(_fit(image[:, :, ::-1], size, _image_filter(image, size)))
        mask_png = None if _is_png(mask_bytes, size, colour_type=0) else encode_png(_fit(mask, size, MASK_RESIZE))
        return image_png, mask_png
    except RecordError as exc:
        return str(exc)
    except OSError as exc:
        return f"{exc.filename or image_path}: {exc.strerror or exc}"


def _decode(data: bytes, path: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise RecordError(f"{path}: not a readable image")
    return image


def _is_png(data: bytes, size: int, colour_type: int) -> bool:
    """A non-interlaced 8-bit PNG of `colour_type` (2 RGB, 0 grey), size x size."""
    if len(data) < 33 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return False
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return (width, height, depth, colour, interlace) == (size, size, 8, colour_type, 0)


def _image_filter(image: np.ndarray, size: int) -> int:
    return cv2.INTER_AREA if min(image.shape[:2]) > size else cv2.INTER_CUBIC


def _fit(image: np.ndarray, size: int, interpolation: int) -> np.ndarray:
    """Shorter side to `size`, then the centre size x size."""
    height, width = image.shape[:2]
    if (height, width) != (size, size):
        scale = size / min(height, width)
        new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
        image = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
        top, left = (new_h - size) // 2, (new_w - size) // 2
        image = image[top : top + size, left : left + size]
    return np.ascontiguousarray(image)
