"""The segmented-dataset folder (PREP_DIR) that `gcgan segment` writes and `gcgan pack` reads.

    PREP_DIR/rgb/NAME.png        RGB eye strip
    PREP_DIR/mask/NAME.png       class ids (masks.CLASS_NAMES), one channel
    PREP_DIR/manifest.jsonl      one JSON object per strip; the last row for a name wins
    PREP_DIR/segment_report.json counts and every skipped item with its reason
    PREP_DIR/preview.png         a few strips beside their mask overlays

Names keep the reference's gaze encoding, `{cam}_s{subject}_{k}_eregion_{pitch:.4f}_{yaw:.4f}_c_{cam}`
(fields 4 and 5 of a split on `_`), so its tools can still read them; the manifest, with full-precision
gaze, is what gcgan reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gcgan_cli.data.atomic import TMP_SUFFIX, write_atomic
from gcgan_cli.data.image_files import PNG_SIGNATURE
from gcgan_cli.errors import DatasetError, UsageError
from gcgan_cli.outputs import output_folder, reporting_disk_full

MANIFEST = "manifest.jsonl"
REPORT = "segment_report.json"
PREVIEW = "preview.png"


def strip_name(camera: int, subject: str, k: int, pitch: float | None, yaw: float | None) -> str:
    """The reference's file stem; an unlabelled strip gets its dummy gaze `0_0`."""
    gaze = "0_0" if pitch is None or yaw is None else f"{pitch:.4f}_{yaw:.4f}"
    return f"{camera}_s{subject}_{k}_eregion_{gaze}_c_{camera}"


def check_separate(rgb_dir: Path, mask_dir: Path) -> None:
    """Refuse one folder for images and masks (symlinks and `..` resolved): they share file names,
    so each mask would be written over its strip, or read as an image."""
    if rgb_dir.resolve() == mask_dir.resolve():
        raise UsageError(f"--rgb-dir and --mask-dir are the same folder {rgb_dir}; masks and images must be in "
                         "separate folders")


@dataclass(frozen=True)
class PrepDir:
    root: Path
    rgb_dir: Path
    mask_dir: Path

    @classmethod
    def at(cls, root: Path, rgb_dir: Path | None = None, mask_dir: Path | None = None) -> PrepDir:
        """The folders of a PREP_DIR; refuses one folder for strips and masks (same file names)."""
        prep = cls(root, rgb_dir or root / "rgb", mask_dir or root / "mask")
        check_separate(prep.rgb_dir, prep.mask_dir)
        return prep

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def report(self) -> Path:
        return self.root / REPORT

    @property
    def preview(self) -> Path:
        return self.root / PREVIEW

    def create(self) -> None:
        """Make the three folders, or say which option names one that cannot be written."""
        output_folder(self.root, "--outdir")
        output_folder(self.rgb_dir, "--rgb-dir" if self.rgb_dir != self.root / "rgb" else "--outdir")
        output_folder(self.mask_dir, "--mask-dir" if self.mask_dir != self.root / "mask" else "--outdir")

    def remove_leftovers(self) -> None:
        """Temp files of a killed run (only while holding the writer lock: another run's are in use)."""
        for folder in (self.rgb_dir, self.mask_dir):
            for stale in folder.glob(f".*{TMP_SUFFIX}"):
                stale.unlink(missing_ok=True)

    def has_files(self, name: str) -> bool:
        return (self.rgb_dir / f"{name}.png").is_file() and (self.mask_dir / f"{name}.png").is_file()

    def read_pair(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(RGB [H, W, 3], class ids [H, W]) of one strip, or None when a file is missing or unreadable."""
        rgb = cv2.imread(str(self.rgb_dir / f"{name}.png"), cv2.IMREAD_COLOR)
        mask = cv2.imread(str(self.mask_dir / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
        if rgb is None or mask is None or rgb.shape[:2] != mask.shape:
            return None
        return np.ascontiguousarray(rgb[:, :, ::-1]), mask

    def write_pair(self, name: str, rgb_png: bytes, mask_png: bytes) -> None:
        """Both PNGs of one strip, each written under a temp name and renamed; a full disk names its folder."""
        for folder, data in ((self.rgb_dir, rgb_png), (self.mask_dir, mask_png)):
            with reporting_disk_full(folder):
                write_atomic(folder / f"{name}.png", data)


def temp_path(path: Path, tag: str = "tmp") -> Path:
    """A hidden sibling of `path` to build a file or folder under before it is renamed into place."""
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}")


@contextlib.contextmanager
def built_in_place(outdir: Path) -> Iterator[Path]:
    """A fresh hidden sibling of `outdir` to build a folder in; renamed to `outdir` when the block
    ends without error, removed otherwise, so `outdir` is whole or as it was. The leftovers of
    killed builds go first: call it holding `outdir`'s writer lock, so none of them is in use."""
    for stale in outdir.parent.glob(f".{outdir.name}.tmp-*"):
        remove_path(stale)
    building = temp_path(outdir)
    try:
        building.mkdir()
        yield building
        replace_path(building, outdir)
    finally:
        remove_path(building)


def remove_path(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def replace_path(temp: Path, path: Path) -> None:
    """Put the finished `temp` at `path`; an old folder there is moved aside first, then deleted,
    so `path` is never half old and half new."""
    if path.is_dir():
        old = temp_path(path, "old")
        os.replace(path, old)
        os.replace(temp, path)
        shutil.rmtree(old)
    else:
        os.replace(temp, path)


def write_json_atomic(path: Path, value) -> None:
    write_atomic(path, (json.dumps(value, indent=2) + "\n").encode())


def read_manifest(path: Path) -> dict[str, dict]:
    """Rows by name, last one winning; a line cut short by a killed run is ignored (gcgan writes
    ASCII, so bytes that are not UTF-8 mean another file is in its place)."""
    rows: dict[str, dict] = {}
    if not path.exists():
        return rows
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            try:
                row = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError:
                message = f"{path}: not a text manifest (line {number}); move it away and re-run segment"
                raise DatasetError(message) from None
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and isinstance(row.get("name"), str):
                rows.pop(row["name"], None)
                rows[row["name"]] = row
    return rows


def rewrite_manifest(path: Path, rows: Iterable[dict]) -> None:
    write_atomic(path, "".join(json.dumps(row) + "\n" for row in rows).encode())


def encode_png(image: np.ndarray, level: int = 1) -> bytes:
    """PNG bytes of an RGB [H, W, 3] or single-channel [H, W] uint8 image.

    Our own writer: the "Sub" row filter in numpy and zlib at `level`. OpenCV's encoder picks a
    filter per row and takes about twice as long for files of the same size.
    """
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"encode_png: expected uint8 [H, W] or [H, W, 3], got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else 3
    rows = np.ascontiguousarray(image).reshape(height, width * channels)
    filtered = np.empty((height, width * channels + 1), np.uint8)
    filtered[:, 0] = 1  # filter type Sub: each byte minus the same channel of the pixel to its left
    filtered[:, 1 : channels + 1] = rows[:, :channels]
    np.subtract(rows[:, channels:], rows[:, :-channels], out=filtered[:, channels + 1 :])
    header = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(filtered.tobytes(), level)) + _chunk(b"IEND", b"")



def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def decode_png(data: bytes) -> np.ndarray:
    """RGB [H, W, 3] or [H, W] uint8 from PNG bytes."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return image[:, :, ::-1] if image.ndim == 3 else image
