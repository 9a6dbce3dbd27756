"""The training dataset: records of a packed DB (data.gaze_db) as tensors.

Each item is a dict:
    image  float32 [3, R, R] in [-1, 1]
    mask   float32 [seg_dim, R, R], one-hot in {0, 1} (training maps it to the reference's
           {-1, +1} with 2m - 1)
    gaze   float32 [2] = (pitch, yaw) in radians; only in labelled DBs (stage 2 reads
           unlabelled ones, whose items have no "gaze" key)
    index  int, the record number

Class ids >= seg_dim (the mouth, id 6, when a model has seg_dim 6) are not silently dropped:
`extra_ids="background"` (default) counts those pixels as background, so every pixel has
exactly one class; `extra_ids="none"` reproduces the reference, where they are in no channel.

Horizontal flip (`flip` = probability) mirrors image and mask together and negates yaw:
ETH-XGaze's normalised camera looks along +z with x to the image's right, so a mirror image
of a face looking at yaw looks at -yaw, at the same pitch.

The LMDB is opened lazily, once per process and shared by every dataset on it (DataLoader
workers, forked or spawned, each open their own; a handle is never used across a fork).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from gcgan_cli.data import gaze_db, masks
from gcgan_cli.errors import DatasetError, UsageError

EXTRA_IDS = ("background", "none")


class GazeMaskDataset(Dataset):
    def __init__(
        self,
        path: str | os.PathLike,
        seg_dim: int | None = None,
        resolution: int | None = None,
        flip: float = 0.0,
        extra_ids: str = "background",
        with_mask: bool = True,
    ):
        self.path = Path(path)
        self.meta = gaze_db.read_meta(self.path)
        self.seg_dim = self.meta.num_classes if seg_dim is None else seg_dim
        if not 1 <= self.seg_dim <= 255:
            raise UsageError(f"seg_dim {self.seg_dim}: must be between 1 and 255")
        if extra_ids not in EXTRA_IDS:
            raise UsageError(f"extra_ids {extra_ids!r}: choose one of {', '.join(EXTRA_IDS)}")
        if not 0.0 <= flip <= 1.0:
            raise UsageError(f"flip {flip}: a probability in [0, 1]")
        self.resolution = resolution or self.meta.size
        self.flip, self.extra_ids, self.with_mask = flip, extra_ids, with_mask

    @property
    def labelled(self) -> bool:
        return self.meta.labelled

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.meta.class_names[: self.seg_dim]

    def __len__(self) -> int:
        return self.meta.count

    def record(self, index: int) -> gaze_db.Record:
        if not 0 <= index < len(self):
            raise IndexError(f"record {index} of {len(self)}")
        with gaze_db.reader(self.path).begin() as txn:  # the process's own handle, opened on first use
            return gaze_db.read_record(txn, index, self.path)

    def rgb(self, index: int) -> np.ndarray:
        """Record `index`'s image as stored: RGB uint8 [H, W, 3]."""
        return _decode(self.record(index).image_png, cv2.IMREAD_COLOR, self.path, index)[:, :, ::-1]

    def __getitem__(self, index: int) -> dict:
        record = self.record(index)
        image = _decode(record.image_png, cv2.IMREAD_COLOR, self.path, index)[:, :, ::-1]
        image = self._resized(image, cv2.INTER_AREA if image.shape[0] > self.resolution else cv2.INTER_CUBIC)
        flip = self.flip > 0 and (self.flip >= 1 or torch.rand(()).item() < self.flip)
        if flip:
            image = image[:, ::-1]
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(127.5).sub_(1.0),
            "index": index,
        }
        if self.with_mask:
            mask = self._resized(_decode(record.mask_png, cv2.IMREAD_UNCHANGED, self.path, index), masks.RESIZE)
            if flip:
                mask = mask[:, ::-1]
            item["mask"] = self.one_hot(torch.from_numpy(np.ascontiguousarray(mask)))
        if self.labelled:
            if record.gaze is None:
                raise DatasetError(f"{self.path}: record {index} has no gaze in a labelled DB; pack it again")
            pitch, yaw = record.gaze
            item["gaze"] = torch.tensor([pitch, -yaw if flip else yaw], dtype=torch.float32)
        return item

    def one_hot(self, ids: torch.Tensor) -> torch.Tensor:
        """[H, W] uint8 class ids -> [seg_dim, H, W] float32 one-hot, extra ids as documented."""
        ids = ids.long()
        if self.extra_ids == "background":
            ids = torch.where(ids >= self.seg_dim, 0, ids)
        classes = torch.arange(self.seg_dim).view(-1, 1, 1)
        return (ids.unsqueeze(0) == classes).float()

    def _resized(self, image: np.ndarray, interpolation: int) -> np.ndarray:
        if image.shape[0] == self.resolution:
            return image
        return cv2.resize(image, (self.resolution, self.resolution), interpolation=interpolation)


def _decode(data: bytes, flags: int, path: Path, index: int) -> np.ndarray:
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:  # an empty record: OpenCV asserts instead of returning None
        image = None
    if image is None:
        raise DatasetError(f"{path}: record {index} is not a readable PNG; the DB is damaged, pack it again")
    return image
