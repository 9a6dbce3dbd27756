"""`gcgan transfer run`: translate every image of an eye source with one generator.

Every sample is translated exactly once, in order, the last partial batch included (the original
dropped up to 99 trailing images and baked its batch size into the exported graph). The output
depends only on the checkpoint and the input (eval mode, instance norm, no dropout), and memory
stays flat in the dataset's size: one batch is held at a time, written, and dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from gcgan_cli.core.gaze.sources import GazeSource
from gcgan_cli.core.transfer.trainer import load_translator
from gcgan_cli.data.atomic import remove_path, replace_path, temp_path
from gcgan_cli.data.eye_patch import from_unit
from gcgan_cli.data.translated_set import TranslatedWriter
from gcgan_cli.errors import UsageError

DIRECTIONS = ("s2r", "r2s")


def _row(source: GazeSource, index: int, item: dict) -> dict:
    landmarks = item["landmarks"].numpy()
    head = item["head"].numpy()
    return {
        "source_id": source.ids[index],
        "person": source.subjects[index],
        "gaze": [float(v) for v in item["gaze"]],
        "head": [float(v) for v in head] if np.isfinite(head).all() else None,
        "landmarks": landmarks.tolist() if np.isfinite(landmarks).all() else None,
    }


@torch.no_grad()
def translate(
    checkpoint: Path,
    source: GazeSource,
    direction: str,
    outdir: Path,
    batch: int,
    device: torch.device,
    overwrite: bool = False,
    on_batch: Callable[[int], None] = lambda done: None,
) -> dict:
    """Write the translated set to `outdir`; returns its summary."""
    if direction not in DIRECTIONS:
        raise UsageError(f"--direction {direction}: choose s2r or r2s")
    if batch < 1:
        raise UsageError(f"--batch {batch}: must be >= 1")
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise UsageError(f"--outdir {outdir} is a file; give a folder")
    if outdir.is_dir() and any(outdir.iterdir()) and not overwrite:
        raise UsageError(f"--outdir {outdir} is not empty; pass --overwrite to replace it, or choose another folder")
    generator, info = load_translator(checkpoint, direction, device)
    header = {
        "kind": "gcgan-transfer",
        "direction": direction,
        "checkpoint": info["path"],
        "step": info["step"],
        "source": source.describe(),
        "count": len(source),
    }
    change = 0.0
    outdir.parent.mkdir(parents=True, exist_ok=True)
    building = temp_path(outdir)  # the old folder stays whole until the new one is complete
    try:
        with TranslatedWriter(building, header) as writer:
            for start in range(0, len(source), batch):
                indices = range(start, min(start + batch, len(source)))
                items = [source[i] for i in indices]
                x = torch.stack([item["image"] for item in items]).to(device)
                y = generator(x).clamp(-1, 1).cpu()
                change += float((y - x.cpu()).abs().sum())
                for index, item, out, clean in zip(indices, items, y[:, 0].numpy(), x[:, 0].cpu().numpy()):
                    writer.add(source.ids[index], from_unit(out), from_unit(clean), _row(source, index, item))
                on_batch(indices.stop)
        replace_path(building, outdir)
    finally:
        remove_path(building)
    return {
        **header,
        "outdir": str(outdir),
        "batches": math.ceil(len(source) / batch),
        "mean_abs_change": change / (len(source) * x.shape[-1] * x.shape[-2]),
    }
