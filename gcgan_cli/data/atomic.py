"""Files and folders written whole or not at all, for every layer: each is built under a hidden temp
name in its own folder and renamed over the target, so a crash or a kill leaves the old one or the
new one, never a part. A leaf module: it imports nothing of gcgan, nor torch."""

from __future__ import annotations

import itertools
import json
import os
import shutil
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


def write_json_atomic(path: Path, value) -> None:
    write_atomic(path, (json.dumps(value, indent=2) + "\n").encode())


def temp_path(path: Path, tag: str = "tmp") -> Path:
    """A hidden sibling of `path` to build a file or folder under before it is renamed into place."""
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}")


def remove_path(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def replace_path(temp: Path, path: Path) -> None:
    """Put the finished `temp` at `path`; an old folder there is moved aside first, then deleted,
    so `path` is never half old and half new."""
    if path.is_dir():
        old = temp_path(path, "old")
        os.replace(path, old)
        os.replace(temp, path)
        shutil.rmtree(old)
    else:
        os.replace(temp, path)
