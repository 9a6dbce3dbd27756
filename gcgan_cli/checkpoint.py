"""Checkpoints as plain dicts: written atomically, read without unpickling code.

A checkpoint holds only tensors, numbers, strings, None and lists / tuples /
dicts of those (state_dicts, optimizer states, a JSON-able config, the step,
RNG states), plus two marker keys, ``format`` and ``format_version``. Saving
checks that, so every file we write loads with ``torch.load(weights_only=True)``;
loading refuses anything else instead of executing it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import random
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gcgan_cli.data.atomic import write_atomic
from gcgan_cli.errors import CheckpointError
from gcgan_cli.outputs import reporting_disk_full

FORMAT_NAME = "gcgan-checkpoint"
FORMAT_VERSION = 1

_SCALARS = (str, int, float, bool, type(None), torch.dtype, torch.device, torch.Size)


def _check_plain(value: Any, where: str) -> None:
    """Raise TypeError naming the first value that weights_only loading would refuse."""
    if isinstance(value, (torch.Tensor, *_SCALARS)):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"checkpoint key {where}[{key!r}] is a {type(key).__name__}")
            _check_plain(item, f"{where}[{key!r}]")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    raise TypeError(
        f"checkpoint value {where} is a {type(value).__name__}; store plain types "
        "(tensors, numbers, strings, lists, dicts) so it loads with weights_only=True"
    )


def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` (+ format markers) to ``path`` atomically and durably; return the path.

    A crash leaves either the old file or the new one, never half (data.atomic.write_atomic).
    ``payload['config']``, when present, must survive a JSON round trip.
    """
    path = Path(path)
    if "config" in payload:
        try:
            json.dumps(payload["config"])
        except (TypeError, ValueError) as exc:
            raise TypeError(f"checkpoint config is not JSON-able: {exc}") from exc
    record = {**payload, "format": FORMAT_NAME, "format_version": FORMAT_VERSION}
    _check_plain(record, "checkpoint")
    path.parent.mkdir(parents=True, exist_ok=True)
    with reporting_disk_full(path.parent, needed=_tensor_bytes(record)):
        return write_atomic(path, lambda handle: torch.save(record, handle), durable=True)


def _tensor_bytes(value: Any) -> int:
    """The bytes of the tensors in a plain payload: about the size of its file."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, Mapping):
        return sum(_tensor_bytes(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(item) for item in value)
    return 0


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks: how samples and exports name their source."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


NEXT_STEP = "use an earlier checkpoint or re-run the step that wrote it"


@contextlib.contextmanager
def contents_of(path: str | os.PathLike) -> Iterator[None]:
    """Entries of checkpoint `path` that do not fit the model they configure (an edited or damaged
    file) are the file's fault: a CheckpointError naming it, not a traceback from deep inside."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise CheckpointError(
            f"checkpoint {path}: its contents do not fit its model config ({detail}); {NEXT_STEP}"
        ) from exc


# How torch's weights-only unpickler words a refusal to build an object (other errors of it mean
# the bytes are not a pickle at all: "Unsupported operand", "String is too long").
_REFUSALS = ("GLOBAL", "allowlisted")


def load_error_reason(exc: Exception) -> str:
    """The informative part of a torch.load error, one short line (torch wraps the unpickler's
    message in paragraphs of advice, and miniz's in a hint about corruption)."""
    text = str(exc).split("WeightsUnpickler error:", 1)[-1]
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line.split(". ")[0][:160] or type(exc).__name__


def load_checkpoint(
    path: str | os.PathLike,
    map_location: str | torch.device = "cpu",
    required: Iterable[str] = (),
) -> dict[str, Any]:
    """Read a gcgan checkpoint with ``weights_only=True``, mapped to ``map_location``.

    Raises CheckpointError, naming the file, when it is missing, truncated or
    corrupt, carries pickled objects, is not a gcgan checkpoint, was written by
    another format version, or lacks one of the ``required`` keys.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); {NEXT_STEP}")
    try:
        record = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = load_error_reason(exc)
        if not any(word in reason for word in _REFUSALS):
            raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({reason}); {NEXT_STEP}") from exc
        raise CheckpointError(
            f"checkpoint {path} was refused: it carries pickled objects that are not plain "
            f"data ({reason}). gcgan never unpickles code; re-save it as plain tensors"
        ) from exc
    except Exception as exc:  # what a damaged file makes torch.load raise: EOFError, RuntimeError, OSError...
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({load_error_reason(exc)}); {NEXT_STEP}"
        ) from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path} is not a gcgan checkpoint (no '{FORMAT_NAME}' marker)")
    version = record.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version}; this gcgan reads version {FORMAT_VERSION}"
        )
    require_entries(record, required, path)
    return record


def require_entries(record: Mapping[str, Any], required: Iterable[str], path: Path) -> None:
    """Refuse a checkpoint read from `path` that lacks one of the `required` keys."""
    missing = [key for key in required if key not in record]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks required entries: {', '.join(missing)}")


def capture_rng_state() -> dict[str, Any]:
    """The state of every generator a training step draws from, as plain data."""
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of ``capture_rng_state`` (CUDA states are restored where GPUs exist)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": np_state["bit_generator"],
            "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), index)
