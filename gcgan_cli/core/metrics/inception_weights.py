"""Where the FID Inception weights come from.

The standard FID network (the Inception-v3 port of TF's 2015-12-05 graph used by
pytorch-fid) is read from, in this order: an explicit ``--inception-weights PATH``, the
``GCGAN_INCEPTION_WEIGHTS`` variable, or torch hub's checkpoint cache under the
file name the official release uses.

torch is imported in the two functions that use it, so the option help that names WEIGHTS_ENV needs no torch.
"""

from __future__ import annotations

import os
from pathlib import Path

from gcgan_cli.errors import CheckpointError, UsageError

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS_FILE}"
WEIGHTS_SHA256_PREFIX = "6726825d"  # the release names the file after its hash
WEIGHTS_ENV = "GCGAN_INCEPTION_WEIGHTS"


def hub_cache_path() -> Path:
    """The torch hub cache file the weights are looked up (and downloaded) under."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def ways_to_provide() -> str:
    """One line listing the three ways to make the weights available."""
    return (
        f"pass --inception-weights PATH, set {WEIGHTS_ENV}=PATH, or put {WEIGHTS_FILE} in "
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
            raise UsageError(f"--inception-weights {path}: no such file")
        return path, "--inception-weights"
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


def resolve_inception_weights(explicit: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The weights file: located as above, else downloaded into the hub cache (hash-checked).

    Offline with no file anywhere: one CheckpointError listing the three ways to provide it.
    """
    path, _ = locate_inception_weights(explicit)
    if path is not None:
        return path
    if not download:
        raise CheckpointError(f"the FID Inception weights are not on this machine; {ways_to_provide()}")
    import torch

    target = hub_cache_path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written to a temp file and renamed by torch: never a half file under the cache name.
        torch.hub.download_url_to_file(WEIGHTS_URL, str(target), hash_prefix=WEIGHTS_SHA256_PREFIX, progress=True)
    except Exception as exc:  # offline, proxy, disk or hash failure: all leave the same three ways
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"the FID Inception weights could not be downloaded ({reason}); {ways_to_provide()}"
        ) from None
    return target
