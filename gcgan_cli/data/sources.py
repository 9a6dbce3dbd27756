"""What `gcgan segment` can read: each source lists its strips (name, manifest row, work item)
in the main process and makes one strip from a work item in a worker process.

A source is picklable: it carries only settings, and opens its heavy state (a FaceMesh, HDF5
handles) lazily, once per process. `strip_options` names the settings that change a strip's
pixels or name: a PREP_DIR made with other values is not continued (see core.segment).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np

from gcgan_cli.data import celeba, ethx, face_strip, synthetic
from gcgan_cli.data.gaze_values import check_pair
from gcgan_cli.data.landmarks import LandmarkDetector
from gcgan_cli.data.prep_dir import strip_name
from gcgan_cli.errors import DatasetError


@dataclass(frozen=True)
class Task:
    """One strip to make: its file stem, its manifest row, what the worker needs, and how the
    report names its input."""

    name: str
    row: dict
    item: Any
    label: str


@dataclass(frozen=True)
class Skipped:
    """An input that yields no strip, and why (listed in the report)."""

    item: str
    reason: str


class ItemError(Exception):
    """This item cannot become a strip (no face, broken image...); the run goes on."""


_detector: LandmarkDetector | None = None


def face_detector() -> LandmarkDetector:
    """This process's one FaceMesh."""
    global _detector
    if _detector is None:
        _detector = LandmarkDetector()
    return _detector


def locate_face(rgb: np.ndarray, view: face_strip.DetectionView, anchor: face_strip.Anchor | None = None):
    """Landmarks and strip box of the face in `rgb`: near `anchor` (face_strip.locate_near), or
    with the detector when there is none."""
    try:
        return face_strip.locate_near(rgb, face_detector(), view, anchor)
    except face_strip.NoFace as exc:
        raise ItemError(str(exc)) from exc


DETECT_MODES = ("every", "track")
ANCHORS_KEPT = 64  # anchors a process keeps (the oldest goes): more than the 18 cameras of a subject


@dataclass
class EthxSource:
    """ETH-XGaze rows. `detect`: "track" runs the face detector on the first frame of each span of
    TRACK_SPAN frames of one (subject, camera) run and the landmark model alone on the others
    (face_strip.locate_near); "every" runs FaceMesh's detector on every frame. "every" is the default:
    with workers it is the faster (2 workers at 2,000 rows: 230 img/s against 136-161 for "track",
    whose workers also detect the first frames of spans that other workers hold)."""

    h5_dir: Path
    size: int = 256
    keep: ethx.EthxFilter = field(default_factory=ethx.EthxFilter)
    limit: int | None = None
    detect: str = "every"
    kind = "ethx"
    strip_options = ("size", "cameras", "max_frame", "detect")  # the filters change `k`, so the names

    def tasks(self) -> tuple[list[Task], list[Skipped]]:
        tasks: list[Task] = []
        skipped: list[Skipped] = []
        for path in ethx.subject_files(self.h5_dir, self.keep.subjects):
            try:
                rows = ethx.scan_subject(path, self.keep)
            except ethx.EthxFileError as exc:
                skipped.append(Skipped(path.name, str(exc)))
                continue
            spans: dict[int, tuple[int, int]] = {}  # camera -> (its frames so far, the row of its span's first)
            for r in rows:
                if self.limit is not None and len(tasks) >= self.limit:
                    return tasks, skipped
                seen, first = spans.get(r.camera, (0, r.row))
                first = r.row if seen % face_strip.TRACK_SPAN == 0 else first
                spans[r.camera] = (seen + 1, first)
                label = f"{path.name} row {r.row}"
                problem = None if r.pitch is None else _gaze_problem(r.pitch, r.yaw)
                if problem:
                    skipped.append(Skipped(label, problem))
                    continue
                name = strip_name(r.camera, r.subject, r.k, r.pitch, r.yaw)
                row = {
                    "name": name,
                    "pitch": r.pitch,
                    "yaw": r.yaw,
                    "subject": r.subject,
                    "camera": r.camera,
                    "frame": r.frame,
                    "source": self.kind,
                    "file": path.name,
                    "row": r.row,
                }
                tasks.append(Task(name, row, (r.path, r.row, first if self.detect == "track" else None), label))
        return tasks, skipped

    def make(self, item) -> tuple[np.ndarray, np.ndarray]:
        path, row, first = item
        try:
            rgb = ethx.read_face(self._open(path), row)
        except (OSError, ValueError, KeyError) as exc:
            raise ItemError(f"unreadable face_patch ({exc})") from exc
        anchor = None if first is None else self._anchor(path, first, rgb if first == row else None)
        points, box = locate_face(rgb, face_strip.ETHX_VIEW, anchor)
        return face_strip.strip_from_landmarks(rgb, points, box, self.size)

    def _anchor(self, path: str, row: int, rgb: np.ndarray | None) -> face_strip.Anchor | None:
        """The anchor of the span that starts at `row` (its face patch `rgb` when at hand), found
        once per process; None when that frame has no face or cannot be read."""
        anchors = self.__dict__.setdefault("_anchors", {})
        if (path, row) not in anchors:
            try:
                rgb = ethx.read_face(self._open(path), row) if rgb is None else rgb
                anchors[path, row] = face_strip.find_anchor(rgb, face_detector(), face_strip.ETHX_VIEW)
            except (OSError, ValueError, KeyError):
                anchors[path, row] = None
            if len(anchors) > ANCHORS_KEPT:
                del anchors[next(iter(anchors))]  # the oldest
        return anchors[path, row]

    def _open(self, path: str) -> h5py.File:
        handles = self.__dict__.setdefault("_handles", {})
        if path not in handles:
            handles[path] = h5py.File(path, "r")
        return handles[path]

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_handles", "_anchors")}


def _gaze_problem(pitch: float, yaw: float) -> str | None:
    """Why a face_gaze row cannot label a strip (its name and manifest row would carry it), or None."""
    if not (math.isfinite(pitch) and math.isfinite(yaw)):
        return f"gaze is not finite ({pitch}, {yaw})"
    try:
        check_pair(pitch, yaw, "face_gaze")
    except DatasetError:
        return f"gaze ({pitch:.4g}, {yaw:.4g}) is outside the radians range |pitch| <= pi/2, |yaw| <= pi (degrees?)"
    return None


@dataclass
class CelebaSource:
    root: Path
    size: int = 256
    use_annotations: bool = False
    limit: int | None = None
    kind = "celeba"
    strip_options = ("size", "use_annotations")

    def tasks(self) -> tuple[list[Task], list[Skipped]]:
        images = celeba.list_images(self.root)
        if self.limit is not None:
            images = images[: self.limit]
        anno = celeba.annotation_root(self.root) if self.use_annotations else None
        tasks = []
        for image_id, path in images:
            name = strip_name(0, "0", image_id, None, None)
            row = {
                "name": name,
                "pitch": None,
                "yaw": None,
                "subject": None,
                "camera": None,
                "frame": image_id,
                "source": self.kind,
                "file": path.name,
                "annotations": anno is not None,
            }
            tasks.append(Task(name, row, (str(path), image_id, str(anno) if anno else None), path.name))
        return tasks, []

    def make(self, item) -> tuple[np.ndarray, np.ndarray]:
        path, image_id, anno = item
        try:
            rgb = np.ascontiguousarray(celeba.read_image(Path(path), cv2.IMREAD_COLOR)[:, :, ::-1])
        except ValueError as exc:
            raise ItemError(str(exc)) from exc
        points, box = locate_face(rgb, face_strip.CELEBA_VIEW)
        if anno is None:
            return face_strip.strip_from_landmarks(rgb, points, box, self.size)
        try:
            parts = celeba.load_annotations(Path(anno), image_id)
        except ValueError as exc:
            raise ItemError(str(exc)) from exc
        return face_strip.strip_from_annotations(rgb, points, box, parts, self.size)


@dataclass
class SyntheticSource:
    n: int
    seed: int = 0
    size: int = 256
    style: str = synthetic.DEFAULT_STYLE
    per_subject: int = 20
    kind = "synthetic"
    strip_options = ("seed", "style", "per_subject", "size")

    def tasks(self) -> tuple[list[Task], list[Skipped]]:
        tasks = []
        for index in range(self.n):
            pitch, yaw = synthetic.gaze_of(self.seed, index, self.style)
            subject = f"{index // self.per_subject:04d}"
            name = strip_name(0, subject, index, pitch, yaw)
            row = {
                "name": name,
                "pitch": pitch,
                "yaw": yaw,
                "subject": subject,
                "camera": None,
                "frame": index,
                "source": self.kind,
                "style": self.style,
                "seed": self.seed,
            }
            tasks.append(Task(name, row, index, f"synthetic #{index}"))
        return tasks, []

    def make(self, item) -> tuple[np.ndarray, np.ndarray]:
        strip = synthetic.render(self.seed, item, self.size, self.style, self.per_subject)
        return strip.rgb, strip.mask
