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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gcgan_cli.data.atomic import TMP_SUFFIX, remove_path, replace_path, temp_path, write_atomic
from gcgan_cli.data.manifest import MANIFEST
from gcgan_cli.errors import UsageError
from gcgan_cli.outputs import output_folder, reporting_disk_full

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
        raise UsageError(
            f"--rgb-dir and --mask-dir are the same folder {rgb_dir}; masks and images must be in separate folders"
        )


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
