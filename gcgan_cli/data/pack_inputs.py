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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gcgan_cli.data.gaze_values import check_pair
from gcgan_cli.data.image_files import PNG_SIGNATURE, cut_short
from gcgan_cli.data.manifest import MANIFEST, read_manifest
from gcgan_cli.data.masks import RESIZE as MASK_RESIZE
from gcgan_cli.data.png import encode_png
from gcgan_cli.data.prep_dir import REPORT, check_separate
from gcgan_cli.errors import DatasetError, UsageError

SAMPLES = "samples.jsonl"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
LOSSY_SUFFIXES = {".jpg", ".jpeg", ".webp"}  # their compression shifts class ids at region edges
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


def check_folders(folder: Path, rgb_dir: Path | None, mask_dir: Path | None, out: Path) -> None:
    """Refuse folder options that would pack the wrong files: masks read as images, or the DB
    written among the files it is packed from (symlinks and `..` resolved)."""
    check_separate(rgb_dir or folder / "rgb", mask_dir or folder / "mask")
    images, masks = (rgb_dir or folder / "rgb").resolve(), (mask_dir or folder / "mask").resolve()
    target = out.resolve()
    if target == folder.resolve():
        raise UsageError(f"--outdir {out} is the input folder itself; write the DB outside its input folders")
    for what, source in (("image", images), ("mask", masks)):
        if target == source or source in target.parents:
            raise UsageError(f"--outdir {out} is in the {what} folder {source}; write the DB outside its input folders")


def find_inputs(
    folder: Path, rgb_dir: Path | None = None, mask_dir: Path | None = None, unlabelled: bool = False
) -> PackInputs:
    """The pairs to pack from `folder`, sorted by name; a DatasetError lists every problem name.
    With `unlabelled`, gaze is neither read nor checked."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder; give a PREP_DIR from `gcgan segment` or a `gcgan sample` folder")
    if (folder / SAMPLES).is_file() and rgb_dir is None and mask_dir is None:
        return _sample_inputs(folder, unlabelled)
    mask_folder = mask_dir or folder / "mask"
    images = _files_by_stem(rgb_dir or folder / "rgb", "--rgb-dir")
    masks = _files_by_stem(mask_folder, "--mask-dir")
    _refuse_lossy_masks(masks.values(), mask_folder)
    manifest = folder / MANIFEST
    rows = read_manifest(manifest)
    only_images, only_masks = sorted(images.keys() - masks.keys()), sorted(masks.keys() - images.keys())
    if only_images or only_masks:
        parts = [f"{len(only_images)} image(s) without a mask ({listing(only_images)})"] if only_images else []
        parts += [f"{len(only_masks)} mask(s) without an image ({listing(only_masks)})"] if only_masks else []
        raise DatasetError(
            f"{folder}: unmatched names: {'; '.join(parts)}. Images and masks pair by file name"
            + _unfinished_segment_hint(folder, rows, only_images + only_masks)
        )
    rowless = sorted(name for name in images if rows and name not in rows)
    if rowless:  # a segment run stopped between writing a strip and logging it
        raise DatasetError(
            f"{folder}: {len(rowless)} strip(s) have no row in {MANIFEST} ({listing(rowless)})"
            + _unfinished_segment_hint(folder, rows, rowless)
        )
    pairs = []
    for name in sorted(images):
        row = rows.get(name)
        if unlabelled:
            gaze, source = None, "none"
        elif row is not None:
            gaze, source = _gaze(row.get("pitch"), row.get("yaw"), f"{manifest} row {name!r}"), "manifest"
        else:
            gaze, source = gaze_from_name(name), "name"
            if gaze is not None:
                gaze = check_pair(
                    *gaze,
                    f"{images[name]}: the gaze in its name (fields 4 and 5; pass --unlabelled if the names carry none)",
                )
        pairs.append(Pair(name, images[name], masks[name], gaze, source if gaze else "none"))
    return PackInputs("prep" if rows else "folders", pairs, manifest if rows else None)


def _unfinished_segment_hint(folder: Path, rows: dict[str, dict], unmatched: list[str]) -> str:
    """What to do when the unmatched files are the footprint of a `gcgan segment` run that was
    stopped: its report says so, or none of them has a manifest row yet."""
    try:
        interrupted = json.loads((folder / REPORT).read_bytes()).get("interrupted") is True
    except (OSError, ValueError, AttributeError):
        interrupted = False
    if interrupted or (rows and not any(name in rows for name in unmatched)):
        return (
            f"; the segment run that wrote {folder} did not finish: run the same `gcgan segment` command "
            "again to complete it"
        )
    return "."


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
    return check_pair(*gaze, where, DatasetError)


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


def _refuse_lossy_masks(masks: Iterable[Path], folder: Path) -> None:
    lossy = sorted(_shown(p, folder) for p in masks if p.suffix.lower() in LOSSY_SUFFIXES)
    if lossy:
        raise DatasetError(
            f"{folder}: {len(lossy)} mask(s) in a lossy format ({listing(lossy)}); masks must be "
            "lossless class-id images (PNG or BMP): JPEG and WebP change the ids along region edges"
        )


def _shown(path: Path, folder: Path) -> str:
    """`path` as an error lists it: relative to `folder` when inside it."""
    return str(path.relative_to(folder) if path.is_relative_to(folder) else path)


def _sample_inputs(folder: Path, unlabelled: bool) -> PackInputs:
    file = folder / SAMPLES
    pairs, missing = [], []
    for number, raw in enumerate(file.read_bytes().splitlines(), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DatasetError(
                f"{file}:{number}: not UTF-8 text (a binary file?); expected one JSON object per line "
                "as `gcgan sample` writes"
            ) from None
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            image, mask = folder / row["image"], folder / row["mask"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(
                f"{file}:{number}: expected a JSON object with image, mask, pitch, yaw ({exc})"
            ) from None
        missing += [_shown(p, folder) for p in (image, mask) if not p.is_file()]
        gaze = None if unlabelled else _gaze(row.get("pitch"), row.get("yaw"), f"{file}:{number}")
        pairs.append(Pair(str(row.get("name") or image.stem), image, mask, gaze, "samples" if gaze else "none"))
    if missing:
        raise DatasetError(f"{file}: {len(missing)} listed file(s) missing ({listing(missing)})")
    if not pairs:
        raise DatasetError(f"{file}: no samples listed")
    _refuse_lossy_masks([p.mask for p in pairs], folder)
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
            raise RecordError(
                f"{mask_path}: {mask.shape[1]}x{mask.shape[0]}, but its image is {image.shape[1]}x{image.shape[0]}"
            )
        top = int(mask.max())
        if top >= num_classes:
            raise RecordError(f"{mask_path}: class id {top}, but only ids 0..{num_classes - 1} are declared")
        image_png = (
            None
            if _is_png(image_bytes, size, colour_type=2)
            else encode_png(_fit(image[:, :, ::-1], size, _image_filter(image, size)))
        )
        mask_png = None if _is_png(mask_bytes, size, colour_type=0) else encode_png(_fit(mask, size, MASK_RESIZE))
        return image_png, mask_png
    except RecordError as exc:
        return str(exc)
    except OSError as exc:
        return f"{exc.filename or image_path}: {exc.strerror or exc}"


def _decode(data: bytes, path: str) -> np.ndarray:
    if not data:
        raise RecordError(f"{path}: empty file (0 bytes)")
    if cut_short(data):
        raise RecordError(f"{path}: not a readable image (truncated?)")
    previous = cv2.getLogLevel()
    cv2.setLogLevel(0)  # silent: libpng and OpenCV print warnings on stderr for a damaged file
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    finally:
        cv2.setLogLevel(previous)
    if image is None:
        raise RecordError(f"{path}: not a readable image (truncated?)")
    return image


def _is_png(data: bytes, size: int, colour_type: int) -> bool:
    """A non-interlaced 8-bit PNG of `colour_type` (2 RGB, 0 grey), size x size."""
    if len(data) < 33 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
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
