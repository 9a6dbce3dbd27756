"""Where the FID Inception weights come from.

The standard FID network (the Inception-v3 port of TF's 2015-12-05 graph used by
pytorch-fid) is read from, in this order: an explicit ``--weights PATH``, the
``GCGAN_INCEPTION_WEIGHTS`` variable, or torch hub's checkpoint cache under the
file name the official release uses.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from gcgan_cli.errors import UsageError

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_ENV = "GCGAN_INCEPTION_WEIGHTS"


def hub_cache_path() -> Path:
    """The torch hub cache file the weights are looked up (and downloaded) under."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def ways_to_provide() -> str:
    """One line listing the three ways to make the weights available."""
    return (
        f"pass --weights PATH, set {WEIGHTS_ENV}=PATH, or put {WEIGHTS_FILE} in "
        f"{hub_cache_path().parent} (fetched there automatically when online)"
    )


def locate_inception_weights(explicit: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """(path, where it came from); path is None when no source has the file.

    A path that was asked for explicitly (option or variable) but does not exist
    is a user mistake and raises UsageError rather than silently falling through.
    """
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise UsageError(f"--weights {path}: no such file")
        return path, "--weights"
    env = os.environ.get(WEIGHTS_ENV, "").strip()
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise UsageError(f"{WEIGHTS_ENV}={env}: no such file; fix the variable or unset it")
        return path, WEIGHTS_ENV
    cached = hub_cache_path()
    if cached.is_file():
        return cached, "torch hub cache"
    return None, "not found"
