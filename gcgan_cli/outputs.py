"""Where commands write: an output folder checked before any work starts, one writer per
folder at a time, and a full disk reported as such (naming the place, keeping what is whole).

A leaf module like `errors`: every layer may import it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from gcgan_cli.errors import DiskFullError, UsageError

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SLACK_BYTES = 1 << 20  # below this much free space an opaque write error is taken for a full disk


def output_folder(path: Path, option: str) -> Path:
    """Make `path` (and its parents) a writable folder, or say what is wrong with `option`."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path}: a file is in the way; give a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"{option} {path}: a part of the path is a file; give a folder path") from None
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            raise disk_full(path) from exc
        raise UsageError(f"{option} {path}: cannot create it ({exc.strerror}); choose a writable place") from None
    check_writable(path, option)
    return path


def folder_place(path: Path, option: str) -> Path:
    """Check, creating nothing, that the folder `path` can be made or written: no file in its place
    or among its parents, the nearest existing folder writable. Returned absolute, so that even "."
    has a name to lock and to build beside."""
    path = Path(os.path.abspath(path))
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        where = "a file is in the way" if existing == path else f"{existing} is a file, not a folder"
        raise UsageError(f"{option} {path}: {where}; give a folder path")
    check_writable(existing, option)
    return path


def output_file(path: Path, option: str, overwrite: bool) -> Path:
    """Refuse, before any work, an output file that must not or cannot be written: a folder in its
    place, an existing file without --overwrite, a parent that is a file or not writable. Creates
    the missing parent folders."""
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise UsageError(f"{option} {path} exists; pass --overwrite to replace it")
    folder_place(path.parent if path.exists() else path, option)
    output_folder(path.parent, option)
    return path


def check_writable(folder: Path, option: str) -> None:
    """Refuse a folder this process cannot create files in (a probe file, since root ignores modes
    but not a read-only mount)."""
    probe = folder / f".gcgan-probe-{os.getpid()}"
    try:
        probe.touch()
        probe.unlink()
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            raise disk_full(folder) from exc
        raise UsageError(f"{option} {folder}: cannot write there ({exc.strerror}); choose another folder") from None


def lock_path(folder: Path) -> Path:
    """The lock file of `folder`: a hidden sibling, so it exists before the folder does."""
    return folder.with_name(f".{folder.name}.lock")


@contextlib.contextmanager
def writer_lock(folder: Path, command: str) -> Iterator[None]:
    """Hold `folder`'s writer lock for the block: a second gcgan writing there stops at once with
    a message instead of interleaving its files. The kernel drops the lock when the process dies.
    When the folder was never made (a refusal during setup), the lock file goes too."""
    lock = lock_path(folder)
    lock.parent.mkdir(parents=True, exist_ok=True)
    handle = _locked(lock, folder)
    try:
        handle.truncate(0)
        handle.write(f"gcgan {command}, pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        if not folder.exists():
            lock.unlink(missing_ok=True)  # while still locked: a waiting opener sees the inode change
        handle.truncate(0)
        handle.close()


def _locked(lock: Path, folder: Path):
    """The open lock file, exclusively locked; retried when the file was replaced meanwhile (a
    holder removed it after we opened it)."""
    while True:
        handle = open(lock, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise UsageError(
                f"another gcgan is writing {folder} ({owner}); wait for it to finish or choose another output"
            ) from None
        try:
            same = os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return handle
        handle.close()


def free_bytes(path: Path) -> int:
    """Free space on the filesystem holding `path` (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def disk_full(path: Path) -> DiskFullError:
    free = free_bytes(path)
    return DiskFullError(
        f"disk full at {path} ({free / 2**20:.1f} MiB free); free some space and run the same command "
        "again: what was finished is kept"
    )


@contextlib.contextmanager
def reporting_disk_full(path: Path, needed: int = 0) -> Iterator[None]:
    """Turn a full disk while writing under `path` into a DiskFullError naming it.

    An OSError carries its errno; torch.save and LMDB do not (`unexpected pos`, `Input/output
    error`), so any other error counts as a full disk when less than `needed` bytes (plus 1 MiB)
    are left.
    """
    try:
        yield
    except DiskFullError:
        raise
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS or free_bytes(path) < needed + _SLACK_BYTES:
            raise disk_full(path) from exc
        raise
    except Exception as exc:
        if free_bytes(path) < needed + _SLACK_BYTES:
            raise disk_full(path) from exc
        raise
