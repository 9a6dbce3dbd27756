"""ETH-XGaze preprocessed subject files (`subjectXXXX.h5`) read row by row.

Per row: `face_patch` (H, W, 3) BGR uint8, `face_gaze` (pitch, yaw) in radians (train split
only), `frame_index` and `cam_index` ([1] ints). Only the small per-row arrays are read whole;
face patches are read one row at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from gcgan_cli.errors import DatasetError

REQUIRED_KEYS = ("face_patch", "frame_index", "cam_index")
DEFAULT_CAMERAS = (1, 2, 3, 8)  # the reference's "frontal ones" (raw cam_index values)
DEFAULT_MAX_FRAME = 524  # later frames are the dim-lighting ones


class EthxFileError(Exception):
    """One subject file cannot be used (unreadable, truncated, missing keys); the run goes on."""


@dataclass(frozen=True)
class EthxFilter:
    cameras: tuple[int, ...] | None = DEFAULT_CAMERAS  # None = every camera
    max_frame: int | None = DEFAULT_MAX_FRAME  # None = every frame
    subjects: tuple[str, ...] | None = None  # subject ids such as "0000"; None = all


@dataclass(frozen=True)
class EthxRow:
    """One kept frame. `k` counts kept frames per subject, as the reference's running counter."""

    path: str
    row: int
    subject: str
    camera: int
    frame: int
    k: int
    pitch: float | None
    yaw: float | None


def subject_id(path: Path) -> str:
    stem = path.stem
    return stem[len("subject") :] if stem.startswith("subject") else stem


def subject_files(h5_dir: Path, subjects: tuple[str, ...] | None) -> list[Path]:
    """The `.h5` files of `h5_dir`, sorted, optionally only the listed subject ids."""
    if not h5_dir.is_dir():
        raise DatasetError(f"{h5_dir}: not a folder; give the folder of ETH-XGaze subjectXXXX.h5 files")
    files = sorted(h5_dir.glob("*.h5"))
    if not files:
        raise DatasetError(f"{h5_dir}: no .h5 files; give the folder of ETH-XGaze subjectXXXX.h5 files")
    if subjects is not None:
        known = {subject_id(f): f for f in files}
        missing = [s for s in subjects if s not in known]
        if missing:
            raise DatasetError(
                f"--subjects: no file for {', '.join(missing)} in {h5_dir} (have {', '.join(sorted(known))})"
            )
        files = [known[s] for s in subjects]
    return files


def scan_subject(path: Path, keep: EthxFilter) -> list[EthxRow]:
    """The rows of one subject file that pass the filter, with their labels (None if unlabelled)."""
    if path.is_dir():
        raise EthxFileError("a folder, not an HDF5 file")
    try:
        with h5py.File(path, "r") as h5:
            missing = [key for key in REQUIRED_KEYS if key not in h5]
            if missing:
                raise EthxFileError(f"missing key(s) {', '.join(missing)}")
            count = h5["face_patch"].shape[0]
            frames = np.asarray(h5["frame_index"][:]).reshape(-1).astype(np.int64)
            cameras = np.asarray(h5["cam_index"][:]).reshape(-1).astype(np.int64)
            gaze = np.asarray(h5["face_gaze"][:], dtype=np.float64).reshape(-1, 2) if "face_gaze" in h5 else None
    except EthxFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise EthxFileError(f"unreadable HDF5 ({' '.join(str(exc).split())})") from exc  # HDF5's text spans lines
    if len(frames) != count or len(cameras) != count or (gaze is not None and len(gaze) != count):
        raise EthxFileError(f"per-row arrays disagree in length with face_patch ({count} rows)")
    kept = np.ones(count, dtype=bool)
    if keep.cameras is not None:
        kept &= np.isin(cameras, keep.cameras)
    if keep.max_frame is not None:
        kept &= frames <= keep.max_frame
    subject = subject_id(path)
    rows = []
    for k, row in enumerate(np.flatnonzero(kept)):
        pitch, yaw = (float(gaze[row, 0]), float(gaze[row, 1])) if gaze is not None else (None, None)
        rows.append(EthxRow(str(path), int(row), subject, int(cameras[row]), int(frames[row]), k, pitch, yaw))
    return rows


def read_face(h5: h5py.File, row: int) -> np.ndarray:
    """The RGB face patch of one row (the file stores BGR)."""
    patch = np.asarray(h5["face_patch"][row])
    if patch.ndim != 3 or patch.shape[2] != 3 or patch.dtype != np.uint8:
        raise ValueError(f"face_patch row is {patch.dtype} {patch.shape}, expected uint8 (H, W, 3)")
    return np.ascontiguousarray(patch[:, :, ::-1])
