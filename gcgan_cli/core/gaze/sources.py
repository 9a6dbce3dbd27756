"""Gaze sources: every kind of labelled image set the estimator reads, behind one interface.

A source holds its labels and subjects in memory ([N, 2] float32 (pitch, yaw) radians; a subject
id per sample, or None) and decodes images lazily. Items are {"image": [3, S, S] float in [-1, 1],
"gaze": [2], "index"}. Kinds (first match wins; add one to KINDS to read a new folder format, e.g.
translated eye images):

    db          a `gcgan pack` DB (data.mdb + meta); subjects from ETH/synthetic names `C_sSUBJ_...`
    samples     a `gcgan sample` folder (samples.jsonl)
    mpii        an MPIIFaceGaze-style .h5: /pXX/image (N, H, W, 3) BGR uint8, /pXX/gaze (N, 2)
    unityeyes   a UnityEyes folder of N.jpg + N.json (eye_details.look_vec); the eye is cropped to
                60 x 36 around the lid margin (the GazeML crop, without its random jitter)
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from gcgan_cli.core.dataset import GazeMaskDataset
from gcgan_cli.core.gaze.angles import unity_look_vec
from gcgan_cli.data import gaze_db
from gcgan_cli.data.pack_inputs import SAMPLES
from gcgan_cli.errors import DatasetError

_SUBJECT = re.compile(r"^\d+_s([^_]+)_")
UNITY_CROP = (60, 36)  # width, height


class GazeSource(Dataset):
    kind = ""

    def __init__(self, path: Path, size: int, gazes: np.ndarray, subjects: list[str | None]):
        self.path, self.size = Path(path), size
        self.gazes = np.asarray(gazes, dtype=np.float32).reshape(-1, 2)
        self.subjects = subjects
        if len(self.gazes) == 0:
            raise DatasetError(f"{self.path}: no labelled samples")
        if not np.isfinite(self.gazes).all():
            raise DatasetError(f"{self.path}: some gaze labels are not finite")

    def __len__(self) -> int:
        return len(self.gazes)

    def rgb(self, index: int) -> np.ndarray:
        """The sample's image, RGB uint8 [H, W, 3]."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        return {"image": prepare(self.rgb(index), self.size), "gaze": torch.from_numpy(self.gazes[index]), "index": index}

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


class DbSource(GazeSource):
    kind = "db"

    def __init__(self, path: Path, size: int):
        meta = gaze_db.read_meta(path)
        if not meta.labelled:
            raise DatasetError(f"{path}: the DB has no gaze labels (packed --unlabelled); the estimator needs labels")
        with gaze_db.reader(path).begin() as txn:
            names = [bytes(txn.get(gaze_db.key("name", i)) or b"").decode() for i in range(meta.count)]
        subjects = [m.group(1) if (m := _SUBJECT.match(name)) else None for name in names]
        self.records = GazeMaskDataset(path, with_mask=False)  # the training reader decodes the records
        super().__init__(path, size, gaze_db.read_labels(path / gaze_db.LABELS_FILE), subjects)

    def rgb(self, index: int) -> np.ndarray:
        return self.records.rgb(index)


class SampleFolderSource(GazeSource):
    kind = "samples"

    def __init__(self, path: Path, size: int):
        manifest = path / SAMPLES
        rows = []
        for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
            try:
                row = json.loads(line)
                rows.append((path / row["image"], float(row["pitch"]), float(row["yaw"])))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise DatasetError(f"{manifest}:{number}: expected a JSON row with image, pitch and yaw") from None
        self.files = [file for file, _, _ in rows]
        super().__init__(path, size, np.array([[p, y] for _, p, y in rows]), [None] * len(rows))

    def rgb(self, index: int) -> np.ndarray:
        return _read_rgb(self.files[index])


class MpiiSource(GazeSource):
    kind = "mpii"

    def __init__(self, path: Path, size: int):
        try:
            with h5py.File(path, "r") as handle:
                people = sorted(name for name in handle if isinstance(handle[name], h5py.Group))
                gazes, index = [], []
                for person in people:
                    group = handle[person]
                    if "image" not in group or "gaze" not in group:
                        raise DatasetError(f"{path}: group /{person} lacks image or gaze")
                    gaze = np.asarray(group["gaze"][:, :2], dtype=np.float32)
                    if group["image"].ndim != 4 or group["image"].shape[0] != len(gaze):
                        raise DatasetError(f"{path}: /{person}/image must be (N, H, W, 3) with one row per gaze")
                    gazes.append(gaze)
                    index += [(person, i) for i in range(len(gaze))]
        except OSError as exc:
            raise DatasetError(f"{path}: not a readable HDF5 file ({exc})") from None
        if not index:
            raise DatasetError(f"{path}: no person groups (/p00, /p01, ...) with image and gaze")
        self.index, self._file = index, None
        super().__init__(path, size, np.concatenate(gazes), [person for person, _ in index])

    def rgb(self, index: int) -> np.ndarray:
        if self._file is None:  # opened lazily: each DataLoader worker gets its own handle
            self._file = h5py.File(self.path, "r")
        person, i = self.index[index]
        return np.ascontiguousarray(self._file[person]["image"][i][:, :, ::-1])  # BGR -> RGB

    def __getstate__(self):
        return {**self.__dict__, "_file": None}


def _points(values) -> np.ndarray:
    """UnityEyes point lists: strings "(x, y, z)" parsed as literals (never eval)."""
    return np.array([ast.literal_eval(v)[:2] if isinstance(v, str) else v[:2] for v in values], dtype=np.float64)


class UnityEyesSource(GazeSource):
    kind = "unityeyes"

    def __init__(self, path: Path, size: int):
        self.files, self.crops, gazes = [], [], []
        for meta in sorted(path.glob("*.json"), key=lambda p: (len(p.stem), p.stem)):
            image = meta.with_suffix(".jpg")
            if not image.is_file():
                continue
            try:
                record = json.loads(meta.read_text())
                x, y, z = ast.literal_eval(record["eye_details"]["look_vec"])[:3]
                margin, caruncle = _points(record["interior_margin_2d"]), _points(record["caruncle_2d"])
            except (json.JSONDecodeError, KeyError, ValueError, SyntaxError, TypeError, IndexError):
                raise DatasetError(f"{meta}: not a UnityEyes record (eye_details.look_vec, interior_margin_2d, caruncle_2d)") from None
            if len(margin) < 9 or len(caruncle) == 0:
                raise DatasetError(f"{meta}: needs 16 interior_margin_2d points and the caruncle")
            self.files.append(image)
            self.crops.append((margin, caruncle))
            gazes.append(unity_look_vec(x, y, z))
        if not self.files:
            raise DatasetError(f"{path}: no UnityEyes N.jpg + N.json pairs")
        super().__init__(path, size, np.array(gazes), [None] * len(gazes))

    def rgb(self, index: int) -> np.ndarray:
        image = _read_rgb(self.files[index])
        margin, caruncle = self.crops[index]
        height = image.shape[0]
        margin, caruncle = margin * [1, -1] + [0, height], caruncle * [1, -1] + [0, height]  # origin bottom-left
        left, right = caruncle.mean(axis=0), margin[8]
        scale = UNITY_CROP[0] / (1.5 * max(abs(left[0] - right[0]), 1e-6))
        centre = (margin.min(axis=0) + margin.max(axis=0)) / 2
        matrix = np.array([[scale, 0, UNITY_CROP[0] / 2 - scale * centre[0]], [0, scale, UNITY_CROP[1] / 2 - scale * centre[1]]])
        return cv2.warpAffine(np.ascontiguousarray(image), matrix, UNITY_CROP, flags=cv2.INTER_LINEAR, borderValue=0)


@dataclass(frozen=True)
class Kind:
    name: str
    detect: Callable[[Path], bool]
    open: Callable[[Path, int], GazeSource]


KINDS = (
    Kind("db", lambda p: p.is_dir() and (p / "data.mdb").is_file(), DbSource),
    Kind("samples", lambda p: p.is_dir() and (p / SAMPLES).is_file(), SampleFolderSource),
    Kind("mpii", lambda p: p.is_file() and p.suffix in (".h5", ".hdf5"), MpiiSource),
    Kind("unityeyes", lambda p: p.is_dir() and any(p.glob("*.json")), UnityEyesSource),
)


def open_source(path: str | Path, size: int) -> GazeSource:
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"--data {path}: no such file or folder")
    for kind in KINDS:
        if kind.detect(path):
            return kind.open(path, size)
    raise DatasetError(f"--data {path}: not a gaze source; expected a `gcgan pack` DB, a `gcgan sample` folder "
                       "(samples.jsonl), an MPIIFaceGaze .h5, or a UnityEyes folder (N.jpg + N.json)")
