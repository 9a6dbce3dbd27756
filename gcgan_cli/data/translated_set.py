"""The folder of translated eye patches that the eye translator writes and the gaze readers read.

    OUT/<id>.png          the translation, gray uint8 36 x 60 (PNG: lossless, unlike FP-GAN's JPEG q95)
    OUT/<id>_clean.png    the translator's input as it saw it (the cropped, equalised patch)
    OUT/manifest.jsonl    one row per image: file, id, source_id, person, gaze [p, y], head [p, y] or null,
                          landmarks [[x, y] x 18] (patch pixels) or null, plus whatever the writer adds
    OUT/transfer.json     the header: what made the set

manifest.jsonl and transfer.json are written last, and only when every image is in: a folder without
them is an interrupted run, and no reader takes it for a finished one.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import cv2
import numpy as np

from gcgan_cli.data import eye_patch
from gcgan_cli.data.atomic import write_atomic, write_json_atomic
from gcgan_cli.errors import DatasetError, UsageError

MANIFEST = "manifest.jsonl"
HEADER = "transfer.json"
CLEAN_SUFFIX = "_clean"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def is_translated_set(path: Path) -> bool:
    return path.is_dir() and (path / HEADER).is_file() and (path / MANIFEST).is_file()


def _pair(value) -> list[float] | None:
    """[p, y] as JSON numbers; None when absent or not finite (JSON has no NaN)."""
    if value is None:
        return None
    pair = [float(v) for v in np.asarray(value, np.float64).reshape(2)]
    return pair if all(math.isfinite(v) for v in pair) else None


def _landmarks(value) -> list[list[float]] | None:
    if value is None:
        return None
    points = np.asarray(value, np.float64).reshape(eye_patch.N_LANDMARKS, 2)
    return points.tolist() if np.isfinite(points).all() else None


class TranslatedWriter:
    """Context manager: `add` each image as it comes; the manifest and header appear on a clean exit."""

    def __init__(self, out: Path, header: dict):
        self.out, self.header = Path(out), header
        self.rows: list[dict] = []
        self.ids: set[str] = set()

    def __enter__(self) -> TranslatedWriter:
        if (self.out / HEADER).exists() or (self.out / MANIFEST).exists():
            raise UsageError(f"{self.out}: already holds a translated set; pass a new folder")
        self.out.mkdir(parents=True, exist_ok=True)
        return self

    def add(self, id: str, image_u8: np.ndarray, clean_u8: np.ndarray, row: dict) -> None:
        """One translated patch and the input it came from, both gray uint8 [36, 60]; `row` gives
        gaze and optionally source_id, person, head, landmarks and any extra keys."""
        if not _ID.match(id) or id.endswith(CLEAN_SUFFIX) or id in self.ids:
            raise ValueError(
                f"id {id!r}: must be new, of letters, digits, '_', '.', '-', and not end in {CLEAN_SUFFIX}"
            )
        for name, picture in (("image", image_u8), ("clean", clean_u8)):
            if picture.dtype != np.uint8 or picture.shape != (eye_patch.PATCH[1], eye_patch.PATCH[0]):
                raise ValueError(
                    f"{name} of {id}: expected uint8 {eye_patch.PATCH[1]} x {eye_patch.PATCH[0]}, "
                    f"got {picture.dtype} {picture.shape}"
                )
        gaze = _pair(row["gaze"])
        if gaze is None:
            raise ValueError(f"gaze of {id}: expected a finite [pitch, yaw]")
        for suffix, picture in (("", image_u8), (CLEAN_SUFFIX, clean_u8)):
            write_atomic(self.out / f"{id}{suffix}.png", cv2.imencode(".png", picture)[1].tobytes())
        self.ids.add(id)
        self.rows.append(
            {
                **row,
                "file": f"{id}.png",
                "id": id,
                "source_id": str(row.get("source_id", id)),
                "person": row.get("person"),
                "gaze": gaze,
                "head": _pair(row.get("head")),
                "landmarks": _landmarks(row.get("landmarks")),
            }
        )

    def __exit__(self, exc_type, exc, traceback) -> bool:
        if exc_type is None:
            lines = "".join(json.dumps(row, allow_nan=False) + "\n" for row in self.rows)
            write_atomic(self.out / MANIFEST, lines.encode())
            write_json_atomic(self.out / HEADER, self.header)
        return False


def read_manifest(path: Path) -> list[dict]:
    """The rows of `path`/manifest.jsonl with gaze [2], head [2] (NaN when null) and landmarks [18, 2]
    float32 (NaN when null) as arrays."""
    manifest = path / MANIFEST
    rows = []
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            gaze = np.asarray(row["gaze"], np.float32).reshape(2)
            head = (
                np.full(2, np.nan, np.float32)
                if row.get("head") is None
                else np.asarray(row["head"], np.float32).reshape(2)
            )
            marks = row.get("landmarks")
            shape = (eye_patch.N_LANDMARKS, 2)
            marks = (
                np.full(shape, np.nan, np.float32) if marks is None else np.asarray(marks, np.float32).reshape(shape)
            )
            person = row.get("person")
            rows.append(
                {
                    "file": str(row["file"]),
                    "id": str(row["id"]),
                    "person": None if person is None else str(person),
                    "gaze": gaze,
                    "head": head,
                    "landmarks": marks,
                }
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            raise DatasetError(
                f"{manifest}:{number}: expected a JSON row with file, id, gaze [p, y], head [p, y] or null, "
                "landmarks (18 x [x, y]) or null"
            ) from None
    return rows
