"""A shareable generator: G_ema of a training checkpoint as a model folder that needs no pickle,
no optimizer state and no gcgan run folder, in the layout model hubs expect.

    MODEL/model.safetensors   G_ema's state_dict and the gaze label set (tensor `gaze_labels`,
                              float32 [N, 2] pitch, yaw in radians); its metadata (`gcgan`) repeats
                              the model config, so an edited config.json is caught
    MODEL/config.json         format marker, the ModelConfig, the weights file's sha256, step,
                              kimg, where it came from and what was measured
    MODEL/README.md           a model card written from config.json alone

`gcgan sample`, `interpolate` and `gaze consistency` take the folder (or its model.safetensors)
wherever they take a training checkpoint, and draw the same images from it.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import safetensors
import safetensors.torch
import torch

import gcgan_cli
from gcgan_cli.checkpoint import contents_of, file_sha256, load_checkpoint, require_entries
from gcgan_cli.core.folders import CARD, CONFIG, WEIGHTS
from gcgan_cli.core.model import Generator, ModelConfig
from gcgan_cli.core.training.run_dir import read_metrics, run_of
from gcgan_cli.data.atomic import write_atomic
from gcgan_cli.data.prep_dir import built_in_place
from gcgan_cli.errors import CheckpointError, UsageError
from gcgan_cli.outputs import folder_place, reporting_disk_full, writer_lock

FORMAT = "gcgan-generator"
FORMAT_VERSION = 1
LABELS_TENSOR = "gaze_labels"
METADATA_KEY = "gcgan"
TRAIN_KIND = "gcgan-train"
TRAIN_KEYS = ("config", "g", "g_ema", "gaze_labels", "step")  # what sampling needs
EXPORT_KEYS = (*TRAIN_KEYS, "data")  # + the batch and world size that give kimg
EXPORT_AGAIN = "export the training checkpoint again (gcgan export --network CKPT --outdir FOLDER --overwrite)"
# Values of the run folder's metrics.jsonl that describe a checkpoint when their row's step is its
# step: FID and KID named as stylegan3 names them (fid, fid10k, kid500, ...), and the gaze
# consistency error in degrees. The card shows each family, or "not measured".
MEASURE = re.compile(r"(fid|kid)(\d+(\.\d+)?k?)?|gaze_consistency_deg")
CARD_MEASURES = {"FID": "fid", "KID": "kid", "gaze consistency (deg)": "gaze_consistency_deg"}


def train_checkpoint(path: Path, required: tuple[str, ...] = TRAIN_KEYS) -> dict:
    """The contents of a `gcgan train` checkpoint; any other gcgan checkpoint is refused by kind."""
    record = load_checkpoint(path)
    if record.get("kind") != TRAIN_KIND:
        kind = record.get("kind")
        found = f"a {kind} checkpoint" if isinstance(kind, str) else "a checkpoint without a kind"
        raise CheckpointError(
            f"{path} is not a `gcgan train` checkpoint ({found}); give one from a training run's checkpoints/ folder"
        )
    require_entries(record, required, path)
    return record


def is_export(path: Path) -> bool:
    """Whether `path` names an export (its folder or its weights file) rather than a checkpoint."""
    return path.is_dir() or path.suffix == ".safetensors"


@dataclass
class ExportedModel:
    config: ModelConfig
    state: dict[str, torch.Tensor]  # G_ema's state_dict
    gaze_labels: torch.Tensor  # [N, 2]
    step: int
    gaze_loss_model: dict | None
    sha256: str  # of the weights file
    weights: Path


def read_export(path: Path) -> ExportedModel:
    """The checked contents of an export folder (or its model.safetensors); a missing file, an edited
    config.json or a changed weights file is a CheckpointError naming the file."""
    folder, weights = (path, path / WEIGHTS) if path.is_dir() else (path.parent, path)
    config_file = folder / CONFIG
    if not weights.is_file() or not config_file.is_file():
        missing = weights if not weights.is_file() else config_file
        hint = f"; {folder} holds a run: give one of its checkpoints/*.pt" if (folder / "checkpoints").is_dir() else ""
        raise CheckpointError(f"{missing} does not exist: {folder} is not a whole `gcgan export` folder{hint}")
    record = _read_config(config_file)
    model = ModelConfig.from_dict(record.get("model"), f"{config_file}: model config", CheckpointError)
    sha = file_sha256(weights)
    if sha != record.get("weights_sha256"):
        raise CheckpointError(
            f"{weights}: its sha256 differs from the weights_sha256 in {config_file} (one of them "
            f"was changed or damaged); {EXPORT_AGAIN}"
        )
    try:
        with safetensors.safe_open(str(weights), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {name: handle.get_tensor(name) for name in handle.keys()}
    except (safetensors.SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({exc}); {EXPORT_AGAIN}") from exc
    if metadata.get(METADATA_KEY) != _metadata_text(model):
        raise CheckpointError(
            f"{config_file}: its model config differs from the one {weights} was exported with "
            f"(edited?); restore it or {EXPORT_AGAIN}"
        )
    labels = state.pop(LABELS_TENSOR, None)
    if labels is None or labels.ndim != 2 or labels.shape[1] != 2 or len(labels) == 0:
        raise CheckpointError(f"{weights}: no {LABELS_TENSOR} tensor [N, 2]; {EXPORT_AGAIN}")
    step = record.get("step")
    if not isinstance(step, int) or isinstance(step, bool):
        raise CheckpointError(f"{config_file}: step {step!r} is not an integer; restore it or {EXPORT_AGAIN}")
    return ExportedModel(model, state, labels.float(), step, record.get("gaze_loss_model"), sha, weights)


def _read_config(config_file: Path) -> dict:
    try:
        record = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{config_file}: not valid JSON ({exc}); restore it or {EXPORT_AGAIN}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{config_file}: not a gcgan export config (no '{FORMAT}' format marker)")
    if record.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{config_file}: export format version {record.get('format_version')}; this gcgan "
            f"reads version {FORMAT_VERSION}"
        )
    return record


def _metadata_text(config: ModelConfig) -> str:
    """The weights file's one metadata entry: the format and the model config as one canonical JSON
    text (safetensors writes several entries in no fixed order, so one keeps the file reproducible)."""
    return json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, "model": config.to_dict()}, sort_keys=True)


def check_outdir(outdir: Path, network: Path, overwrite: bool) -> None:
    """Refuse, before any work, an --outdir that holds other files, or an earlier export without
    --overwrite, or one the checkpoint lies in."""
    if outdir.resolve() in network.resolve().parents:
        raise UsageError(f"--outdir {outdir} holds --network {network}; write the export elsewhere")
    if not outdir.is_dir() or not any(outdir.iterdir()):
        return
    if not (outdir / CONFIG).is_file() or not (outdir / WEIGHTS).is_file():
        raise UsageError(
            f"--outdir {outdir} is a folder that is not a gcgan export; refusing to replace it: choose another folder"
        )
    if not overwrite:
        raise UsageError(f"--outdir {outdir} already holds an export; pass --overwrite to replace it")


def export_generator(network: Path, outdir: Path, overwrite: bool) -> dict:
    """Write the export of training checkpoint `network` to `outdir`, built beside it under a
    hidden name and renamed when whole; returns its config.json record."""
    if is_export(network):
        raise UsageError(f"--network {network} is an export already; give the training checkpoint it came from")
    outdir = folder_place(outdir, "--outdir")
    check_outdir(outdir, network, overwrite)
    record = train_checkpoint(network, EXPORT_KEYS)
    config = ModelConfig.from_checkpoint(record, network)
    with contents_of(network):
        Generator(config).load_state_dict(record["g_ema"])  # refuse weights that do not fit, before writing
        labels = record["gaze_labels"].float().contiguous()
        step, total_batch = int(record["step"]), int(record["data"]["batch"]) * int(record["data"]["world_size"])
    summary = describe(record, network, labels, step, total_batch)
    tensors = {**{name: value.contiguous() for name, value in record["g_ema"].items()}, LABELS_TENSOR: labels}
    weights = safetensors.torch.save(tensors, metadata={METADATA_KEY: _metadata_text(config)})
    summary = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": config.to_dict(),
        "weights": WEIGHTS,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        **summary,
    }
    with writer_lock(outdir, "export"):
        check_outdir(outdir, network, overwrite)  # again: another export may have finished meanwhile
        with built_in_place(outdir) as building, reporting_disk_full(outdir, needed=len(weights)):
            write_atomic(building / WEIGHTS, weights, durable=True)
            write_atomic(building / CONFIG, (json.dumps(summary, indent=2) + "\n").encode(), durable=True)
            write_atomic(building / CARD, model_card(summary).encode(), durable=True)
    return summary


def describe(record: dict, network: Path, labels: torch.Tensor, step: int, total_batch: int) -> dict:
    """What config.json says of the model beyond its weights: training progress, data, label set,
    what was measured at this step, and where it came from."""
    train = record["config"].get("train")
    train = train if isinstance(train, dict) else {}
    low, high = labels.min(dim=0).values.tolist(), labels.max(dim=0).values.tolist()
    return {
        "stage": record.get("stage"),
        "step": step,
        "total_batch": total_batch,
        "kimg": step * total_batch / 1000,
        "gaze_labels": {
            "tensor": LABELS_TENSOR,
            "count": len(labels),
            "pitch": [low[0], high[0]],
            "yaw": [low[1], high[1]],
        },
        "gaze_loss_model": record.get("gaze_loss_model"),
        "training_data": training_data(record["config"], train),
        "stage1_checkpoint": train.get("ckpt"),
        "metrics": measured(network, step),
        "source": {
            "checkpoint": str(network.resolve()),
            "sha256": file_sha256(network),
            "gcgan_version": record.get("gcgan_version"),
        },
        "exported_by": {"gcgan_version": gcgan_cli.__version__, "git_revision": git_revision()},
    }


def training_data(config: dict, train: dict) -> dict:
    """The DB a checkpoint was trained on: its path, and the kind, record count and inputs_sha256
    of its metadata where the checkpoint's config recorded them (None where it did not)."""
    recorded = config.get("dataset") if isinstance(config.get("dataset"), dict) else {}
    return {
        "path": recorded.get("path", train.get("dataset")),
        **{name: recorded.get(name) for name in ("kind", "count", "inputs_sha256")},
    }


def measured(network: Path, step: int) -> dict[str, float]:
    """The MEASURE values the run folder's metrics.jsonl holds for this step, by name (the last row
    wins); a checkpoint outside a run folder has none."""
    values = {}
    run = run_of(network)
    if run is not None and run.metrics.is_file():
        for row in read_metrics(run.metrics):
            if row.get("step") == step:
                values.update(
                    {
                        name: value
                        for name, value in row.items()
                        if MEASURE.fullmatch(name) and isinstance(value, (int, float))
                    }
                )
    return values


def git_revision() -> str:
    """`git rev-parse HEAD` of the gcgan source tree when it is a git checkout, else "unknown"."""
    source = Path(gcgan_cli.__file__).resolve().parent.parent
    if not (source / ".git").exists():
        return "unknown"
    try:
        result = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else "unknown"


def model_card(summary: dict) -> str:
    """README.md of an export, from its config.json record alone (the card never says more than the
    config holds)."""
    model, data, labels, source = summary["model"], summary["training_data"], summary["gaze_labels"], summary["source"]
    recorded = [f"{name} {data[name]}" for name in ("kind", "count", "inputs_sha256") if data[name] is not None]
    unrecorded = "kind, count and inputs_sha256 not recorded in the checkpoint"
    data_line = f"`{data['path']}` ({', '.join(recorded) or unrecorded})"
    if summary["stage1_checkpoint"]:
        data_line += f", unlabelled domain of stage 2 from `{summary['stage1_checkpoint']}`"
    loss_model = summary["gaze_loss_model"]
    rows = [
        ("training data", data_line),
        ("steps", f"{summary['step']} (stage {summary['stage']})"),
        ("kimg", f"{summary['kimg']:g} ({summary['step']} steps x {summary['total_batch']} images / 1000)"),
        *[
            (
                label,
                ", ".join(
                    f"{name} {value:.4g}" for name, value in summary["metrics"].items() if name.startswith(family)
                )
                or "not measured",
            )
            for label, family in CARD_MEASURES.items()
        ],
        (
            "images",
            f"{model['size']} x {model['size']} RGB with a {len(model['class_names'])}-class part mask "
            f"({', '.join(model['class_names'])})",
        ),
        (
            "gaze labels",
            f"{labels['count']}: pitch {labels['pitch'][0]:.3f} to {labels['pitch'][1]:.3f}, "
            f"yaw {labels['yaw'][0]:.3f} to {labels['yaw'][1]:.3f} rad",
        ),
        (
            "gaze loss model",
            f"`{loss_model.get('path')}` (sha256 {loss_model.get('sha256')})" if loss_model else "none",
        ),
        (
            "gcgan",
            f"trained with {source['gcgan_version'] or 'unknown'}, exported with "
            f"{summary['exported_by']['gcgan_version']} (git revision {summary['exported_by']['git_revision']})",
        ),
        ("source checkpoint", f"`{source['checkpoint']}` (sha256 {source['sha256']})"),
        ("weights", f"`{WEIGHTS}` (sha256 {summary['weights_sha256']})"),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"""---
library_name: gcgan
tags: [gan, gaze-estimation, image-generation, semantic-segmentation]
---

# GC-GAN generator, step {summary["step"]}

G_ema of a `gcgan train` run: eye-region images with part masks, conditioned on a gaze (pitch, yaw in radians).

| | |
|---|---|
{table}

## Use

Give this folder to `gcgan sample`, `gcgan interpolate` or `gcgan gaze consistency` wherever they take a training
checkpoint; the same seed and options draw the same images as from the checkpoint itself.

The weights load without gcgan's code too (no pickle):

```python
from safetensors.torch import load_file
tensors = load_file("{WEIGHTS}")  # G_ema's state_dict, plus "{LABELS_TENSOR}" [N, 2] (pitch, yaw)
```

`{CONFIG}` holds the model config that rebuilds the generator (`ModelConfig.from_dict(config["model"])`).
"""
