"""Files written whole or not at all, for every layer: a file is built under a hidden temp name in
its own folder and renamed over the target, so a crash or a kill leaves the old file or the new
one, never a part. A leaf module: it imports nothing of gcgan, nor torch."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TMP_SUFFIX = ".tmp"  # temp files are `.NAME.PID-N.tmp`: hidden, and found again by `.*.tmp`
_numbers = itertools.count()


def write_atomic(path: Path, data: bytes | Callable[[BinaryIO], None], durable: bool = False) -> Path:
    """Put `data` (bytes, or a function that writes into the open file) at `path`; returns the path.

    The file gets the mode a plain open() gives (0o666 less the umask), not tempfile's 0o600.
    `durable` also fsyncs the file before the rename and the folder after it, so the new file
    survives a power cut: worth it for checkpoints, not for thousands of sample images. The temp
    name is known before the file exists, so a Ctrl-C at any point removes it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{next(_numbers)}{TMP_SUFFIX}")  # no other writer's
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        with os.fdopen(fd, "wb") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
