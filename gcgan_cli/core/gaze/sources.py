"""Gaze sources: every kind of labelled image set the estimator and the eye translator read, behind one interface.

A source holds its labels in memory (`gazes` [N, 2] float32 (pitch, yaw) radians; `heads` [N, 2],
NaN where unknown; `ids`; a subject per sample, or None) and decodes images lazily. Two modes:

    face mode (eye=None)     items {"image": [3, S, S] float in [-1, 1], "gaze": [2], "index"}
    eye mode (EyeOptions)    items {"image": [1, 36, 60] float in [-1, 1], histogram-equalised,
                             "gaze": [2], "head": [2], "landmarks": [18, 2] (x, y) patch pixels or NaN,
                             "index"}: FP-GAN's gray eye patch (`gcgan_cli.data.eye_patch`)

Kinds (first match wins; to read a new format add how to recognise it to `kinds.KINDS`, its class to SOURCES):

    db          a `gcgan pack` DB (data.mdb + meta); subjects from ETH/synthetic names `C_sSUBJ_...`; face mode only
    samples     a `gcgan sample` folder (samples.jsonl); face mode only
    mpii        an MPIIFaceGaze-style .h5: /pXX/image (N, H, W, 3) BGR uint8, /pXX/gaze (N, 2), optional
                /pXX/head (N, 2) and /pXX/landmarks (N, 18, 2); eye mode grays by channel mean
    translated  a folder of translated eye patches (transfer.json + manifest.jsonl, `data.translated_set`)
    unityeyes   a UnityEyes folder of N.jpg + N.json (eye_details.look_vec, head_pose, lid margin, caruncle,
                iris); the eye is cropped to 60 x 36 around the lid margin (the GazeML crop; its random
                jitter only with EyeOptions(jitter=True)); eye mode grays by luminance. A `gcgan_person`
                key, when present, is the subject.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from gcgan_cli.core.dataset import GazeMaskDataset
from gcgan_cli.core.gaze.angles import unity_look_vec
from gcgan_cli.core.gaze.kinds import KINDS
from gcgan_cli.data import eye_patch, gaze_db, translated_set
from gcgan_cli.data.gaze_values import check_gaze
from gcgan_cli.data.pack_inputs import SAMPLES
from gcgan_cli.errors import DatasetError, GcganError, UsageError

_SUBJECT = re.compile(r"^\d+_s([^_]+)_")
_NO_LANDMARKS = np.full((eye_patch.N_LANDMARKS, 2), np.nan, np.float32)


@dataclass(frozen=True)
class EyeOptions:
    """How eye mode builds the 36 x 60 gray patch."""

    gray: str | None = None  # "mean" or "luma"; None = the kind's own (mean for mpii, luma for unityeyes)
    equalise: bool = True
    jitter: bool = False  # the GazeML crop jitter (scale 1 + 0.1 n, shift 10 n raw px); training only
    max_head_pose: float | None = None  # degrees; drop UnityEyes samples beyond it (GazeML used 20)
    seed: int = 0


class GazeSource(Dataset):
    kind = ""
    eye_gray = "mean"  # the kind's own gray conversion in eye mode

    def __init__(
        self,
        path: Path,
        size: int,
        gazes: np.ndarray,
        subjects: list[str | None],
        heads: np.ndarray | None = None,
        ids: list[str] | None = None,
        eye: EyeOptions | None = None,
        where: str | None = None,
    ):
        """`where` names the file (and key) the gazes came from in errors; by default `path`."""
        self.path, self.size, self.eye = Path(path), size, eye
        if np.size(gazes) == 0:
            raise DatasetError(f"{self.path}: no labelled samples")
        self.gazes = check_gaze(gazes, where or str(self.path)).astype(np.float32)
        self.subjects = subjects
        self.heads = (
            np.full_like(self.gazes, np.nan) if heads is None else np.asarray(heads, dtype=np.float32).reshape(-1, 2)
        )
        self.ids = [str(i) for i in range(len(self.gazes))] if ids is None else ids
        self.shape = eye_patch.EYE_SHAPE if eye is not None else (3, size, size)
        if eye is not None and eye.gray not in (None, *eye_patch.GRAY_MODES):
            raise UsageError(f"--gray {eye.gray}: expected one of {', '.join(eye_patch.GRAY_MODES)}")

    def __len__(self) -> int:
        return len(self.gazes)

    def rgb(self, index: int) -> np.ndarray:
        """The sample's image, RGB uint8 [H, W, 3]."""
        raise NotImplementedError

    @property
    def gray_mode(self) -> str:
        return (self.eye.gray if self.eye is not None else None) or self.eye_gray

    def patch(self, index: int) -> np.ndarray:
        """The gray 36 x 60 eye patch, uint8, before equalisation and without crop jitter."""
        return self._eye(index, jittered=False)[0]

    def _eye(self, index: int, jittered: bool) -> tuple[np.ndarray, np.ndarray]:
        """(gray patch uint8 [36, 60], landmarks [18, 2] float32, NaN when unknown)."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        if self.eye is None:
            return {
                "image": prepare(self.rgb(index), self.size),
                "gaze": torch.from_numpy(self.gazes[index]),
                "index": index,
            }
        gray, marks = self._eye(index, jittered=self.eye.jitter)
        if self.eye.equalise:
            gray = eye_patch.equalise(gray)
        return {
            "image": torch.from_numpy(eye_patch.to_unit(gray)[None]),
            "gaze": torch.from_numpy(self.gazes[index]),
            "head": torch.from_numpy(self.heads[index]),
            "landmarks": torch.from_numpy(np.asarray(marks, np.float32)),
            "index": index,
        }

    def describe(self) -> str:
        known = len({s for s in self.subjects if s is not None})
        return f"{self.kind} {self.path} ({len(self)} samples" + (f", {known} subjects)" if known else ")")


def prepare(rgb: np.ndarray, size: int) -> torch.Tensor:
    """RGB uint8 [H, W, 3] -> [3, size, size] float in [-1, 1] (area when shrinking, else cubic)."""
    if rgb.shape[:2] != (size, size):
        shrink = rgb.shape[0] > size or rgb.shape[1] > size
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(127.5).sub_(1.0)


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{path}: not a readable image")
    return image[:, :, ::-1]


def _face_only(path: Path, what: str, eye: EyeOptions | None) -> None:
    if eye is not None:
        raise DatasetError(
            f"{path}: {what} holds face images, not eye patches; for eye mode pass an MPIIFaceGaze .h5, "
            "a UnityEyes folder or a translated folder"
        )


class DbSource(GazeSource):
    kind = "db"

    def __init__(self, path: Path, size: int, eye: EyeOptions | None = None):
        _face_only(path, "a `gcgan pack` DB", eye)
        meta = gaze_db.read_meta(path)
        if not meta.labelled:
            raise DatasetError(f"{path}: the DB has no gaze labels (packed --unlabelled); the estimator needs labels")
        with gaze_db.reader(path).begin() as txn:
            names = [gaze_db.read_name(txn, i, path) for i in range(meta.count)]
        subjects = [m.group(1) if (m := _SUBJECT.match(name)) else None for name in names]
        self.records = GazeMaskDataset(path, with_mask=False)  # the training reader decodes the records
        labels = path / gaze_db.LABELS_FILE
        super().__init__(path, size, gaze_db.read_labels(labels), subjects, ids=names, where=str(labels))

    def rgb(self, index: int) -> np.ndarray:
        return self.records.rgb(index)


class SampleFolderSource(GazeSource):
    kind = "samples"

    def __init__(self, path: Path, size: int, eye: EyeOptions | None = None):
        _face_only(path, "a `gcgan sample` folder", eye)
        manifest = path / SAMPLES
        rows = []
        for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
            try:
                row = json.loads(line)
                rows.append((path / row["image"], float(row["pitch"]), float(row["yaw"])))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise DatasetError(f"{manifest}:{number}: expected a JSON row with image, pitch and yaw") from None
        self.files = [file for file, _, _ in rows]
        super().__init__(
            path,
            size,
            np.array([[p, y] for _, p, y in rows]),
            [None] * len(rows),
            ids=[f.stem for f in self.files],
            where=str(manifest),
        )

    def rgb(self, index: int) -> np.ndarray:
        return _read_rgb(self.files[index])


class MpiiSource(GazeSource):
    kind = "mpii"
    eye_gray = "mean"

    def __init__(self, path: Path, size: int, eye: EyeOptions | None = None):
        try:
            with h5py.File(path, "r") as handle:
                people = sorted(name for name in handle if isinstance(handle[name], h5py.Group))
                gazes, heads, index, self.has_landmarks = [], [], [], {}
                for person in people:
                    group = handle[person]
                    if "image" not in group or "gaze" not in group:
                        raise DatasetError(f"{path}: group /{person} lacks image or gaze")
                    gaze = check_gaze(group["gaze"][()], f"{path}:/{person}/gaze")
                    if group["image"].ndim != 4 or group["image"].shape[0] != len(gaze):
                        raise DatasetError(f"{path}: /{person}/image must be (N, H, W, 3) with one row per gaze")
                    for key, shape in (("head", (len(gaze), 2)), ("landmarks", (len(gaze), eye_patch.N_LANDMARKS, 2))):
                        if key in group and group[key].shape[: len(shape)] != shape:
                            raise DatasetError(f"{path}: /{person}/{key} must be {shape}")
                    heads.append(
                        np.asarray(group["head"][:, :2], np.float32) if "head" in group else np.full_like(gaze, np.nan)
                    )
                    self.has_landmarks[person] = "landmarks" in group
                    gazes.append(gaze)
                    index += [(person, i) for i in range(len(gaze))]
        except OSError as exc:  # h5py's own text spans lines; the errno's says the same in one
            reason = os.strerror(exc.errno) if exc.errno else str(exc).splitlines()[0]
            raise DatasetError(f"{path}: not a readable HDF5 file ({reason})") from None
        if not index:
            raise DatasetError(f"{path}: no person groups (/p00, /p01, ...) with image and gaze")
        self.index, self._file = index, None
        super().__init__(
            path,
            size,
            np.concatenate(gazes),
            [person for person, _ in index],
            heads=np.concatenate(heads),
            ids=[f"{person}_{i}" for person, i in index],
            eye=eye,
        )

    def _group(self, index: int):
        if self._file is None:  # opened lazily: each DataLoader worker gets its own handle
            self._file = h5py.File(self.path, "r")
        person, i = self.index[index]
        return self._file[person], person, i

    def rgb(self, index: int) -> np.ndarray:
        group, _, i = self._group(index)
        return np.ascontiguousarray(group["image"][i][:, :, ::-1])  # BGR -> RGB

    def _eye(self, index: int, jittered: bool) -> tuple[np.ndarray, np.ndarray]:
        group, person, i = self._group(index)
        marks = np.asarray(group["landmarks"][i], np.float32) if self.has_landmarks[person] else _NO_LANDMARKS.copy()
        gray, marks = eye_patch.resize_patch(eye_patch.to_gray(np.asarray(group["image"][i]), self.gray_mode), marks)
        return gray, marks

    def __getstate__(self):
        return {**self.__dict__, "_file": None}


def _points(values) -> np.ndarray:
    """UnityEyes point lists: strings "(x, y, z)" parsed as literals (never eval)."""
    return np.array(
        [ast.literal_eval(v)[:2] if isinstance(v, str) else v[:2] for v in values], dtype=np.float64
    ).reshape(-1, 2)


def _head_pose(record: dict) -> tuple[float, float]:
    """UnityEyes' head_pose string -> (pitch, yaw) radians, NaN when absent."""
    if "head_pose" not in record:
        return math.nan, math.nan
    pitch, yaw = ast.literal_eval(record["head_pose"])[:2]
    return eye_patch.head_from_unity(float(pitch), float(yaw))


class UnityEyesSource(GazeSource):
    kind = "unityeyes"
    eye_gray = "luma"

    def __init__(self, path: Path, size: int, eye: EyeOptions | None = None):
        self.files, self.crops, gazes, heads, subjects, self.looks = [], [], [], [], [], []
        limit = eye.max_head_pose if eye is not None else None
        for meta in sorted(path.glob("*.json"), key=lambda p: (len(p.stem), p.stem)):
            image = meta.with_suffix(".jpg")
            if not image.is_file():
                continue
            try:
                record = json.loads(meta.read_text())
                look = tuple(float(v) for v in ast.literal_eval(record["eye_details"]["look_vec"])[:3])
                margin, caruncle = _points(record["interior_margin_2d"]), _points(record["caruncle_2d"])
                iris = _points(record.get("iris_2d", []))
                head = _head_pose(record)
                person = record.get("gcgan_person")
            except (json.JSONDecodeError, KeyError, ValueError, SyntaxError, TypeError, IndexError):
                raise DatasetError(
                    f"{meta}: not a UnityEyes record (eye_details.look_vec, interior_margin_2d, caruncle_2d)"
                ) from None
            if len(margin) < 9 or len(caruncle) == 0:
                raise DatasetError(f"{meta}: needs 16 interior_margin_2d points and the caruncle")
            if limit is not None:
                if not np.isfinite(head).all():
                    raise DatasetError(f"{meta}: no head_pose, which --max-head-pose needs")
                if max(abs(math.degrees(head[0])), abs(math.degrees(head[1]))) > limit:
                    continue
            try:
                gaze = unity_look_vec(*look)
            except ValueError as exc:
                raise DatasetError(f"{meta}: eye_details.look_vec {exc}; fix or remove this record") from None
            self.files.append(image)
            self.crops.append((margin, caruncle, iris))
            self.looks.append(look)
            gazes.append(gaze)
            heads.append(head)
            subjects.append(str(person) if person is not None else None)
        if not self.files:
            beyond = f" within --max-head-pose {limit:g} degrees" if limit is not None else ""
            raise DatasetError(f"{path}: no UnityEyes N.jpg + N.json pairs{beyond}")
        self.draws = np.zeros(
            len(self.files), np.int64
        )  # jitter draws per item, so that runs repeat (a resumed one restores them)
        super().__init__(
            path, size, np.array(gazes), subjects, heads=np.array(heads), ids=[f.stem for f in self.files], eye=eye
        )

    def _points_in_image(self, index: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        flip = np.array([1, -1]), np.array([0, height])  # origin bottom-left -> top-left
        return tuple(points * flip[0] + flip[1] for points in self.crops[index])

    def rgb(self, index: int) -> np.ndarray:
        image = _read_rgb(self.files[index])
        margin, caruncle, _ = self._points_in_image(index, image.shape[0])
        return eye_patch.crop(image, eye_patch.crop_matrix(margin, caruncle))

    def _eye(self, index: int, jittered: bool) -> tuple[np.ndarray, np.ndarray]:
        bgr = cv2.imread(str(self.files[index]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DatasetError(f"{self.files[index]}: not a readable image")
        margin, caruncle, iris = self._points_in_image(index, bgr.shape[0])
        jitter = eye_patch.NO_JITTER
        if jittered:
            jitter = eye_patch.draw_jitter(np.random.default_rng((self.eye.seed, index, int(self.draws[index]))))
            self.draws[index] += 1
        matrix = eye_patch.crop_matrix(margin, caruncle, jitter)
        gray = eye_patch.crop(eye_patch.to_gray(bgr, self.gray_mode), matrix)
        if len(margin) < 15 or len(iris) < 29:
            return gray, _NO_LANDMARKS.copy()
        return gray, eye_patch.landmarks(matrix, margin, iris, self.looks[index], (bgr.shape[1], bgr.shape[0]))


class TranslatedSource(GazeSource):
    """A folder of translated eye patches (`gcgan_cli.data.translated_set`). Eye mode re-equalises the
    stored image, as FP-GAN's refined reader did; face mode gives the gray image as 3 channels."""

    kind = "translated"

    def __init__(self, path: Path, size: int, eye: EyeOptions | None = None):
        rows = translated_set.read_manifest(path)
        self.files = [path / row["file"] for row in rows]
        self.landmarks = [row["landmarks"] for row in rows]
        super().__init__(
            path,
            size,
            np.array([row["gaze"] for row in rows]),
            [row["person"] for row in rows],
            heads=np.array([row["head"] for row in rows]),
            ids=[row["id"] for row in rows],
            eye=eye,
            where=f"{path / translated_set.MANIFEST}:gaze",
        )

    def _gray(self, index: int) -> np.ndarray:
        gray = cv2.imread(str(self.files[index]), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise DatasetError(f"{self.files[index]}: not a readable image")
        return gray

    def rgb(self, index: int) -> np.ndarray:
        return np.repeat(self._gray(index)[:, :, None], 3, axis=2)

    def _eye(self, index: int, jittered: bool) -> tuple[np.ndarray, np.ndarray]:
        return eye_patch.resize_patch(self._gray(index), self.landmarks[index].copy())


# The class that opens each kind of `kinds.KINDS`.
SOURCES = {
    source.kind: source for source in (DbSource, SampleFolderSource, MpiiSource, TranslatedSource, UnityEyesSource)
}


def open_source(path: str | Path, size: int, eye: EyeOptions | None = None, flag: str = "--data") -> GazeSource:
    """The source at `path`, in face mode (eye=None: [3, size, size] images) or eye mode; `flag`
    names the option it came from in errors."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{flag} {path}: no such file or folder")
    for kind in KINDS:
        if kind.detect(path):
            try:
                return SOURCES[kind.name](path, size, eye)
            except GcganError as exc:  # the same error, naming the option the source came from
                message = str(exc)
                raise type(exc)(message if message.startswith("--") else f"{flag} {message}") from None
    raise DatasetError(
        f"{flag} {path}: not a gaze source; expected a `gcgan pack` DB, a `gcgan sample` folder "
        "(samples.jsonl), an MPIIFaceGaze .h5, a translated folder (transfer.json + manifest.jsonl), "
        "or a UnityEyes folder (N.jpg + N.json)"
    )
