"""Helpers the fault-injection tests (test_faults_*.py) share: the one-`error:`-line check, a tiny
synthetic PREP_DIR and its DB, a folder's files, and a DB copy with one record changed. The
fixtures they share (`tmpfs`, `lock_holder`) are in conftest.py."""

import shutil
from pathlib import Path

import lmdb

from gcgan_cli import cli


def one_error(err: str, *words) -> str:
    """stderr is exactly one `error: ` line (not a doubled `error: error:`), no traceback, holding
    every word; returns that line."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and not lines[0].startswith("error: error:"), err
    assert "Traceback" not in err, err
    for word in words:
        assert str(word) in lines[0], (word, lines[0])
    return lines[0]


def synthetic_prep(out: Path, n: int = 16, size: int = 32) -> Path:
    """A PREP_DIR of `n` synthetic strips at `size` px (`gcgan segment synthetic`, one process)."""
    assert cli.run(["segment", "synthetic", "--n", str(n), "--size", str(size), "--outdir", str(out), "-j", "1"]) == 0
    return out


def packed(prep: Path, out: Path, size: int = 32, *extra: str) -> Path:
    """The DB `gcgan pack` makes of `prep` (one process)."""
    assert cli.run(["pack", "--data", str(prep), "--outdir", str(out), "--size", str(size), "-j", "1", *extra]) == 0
    return out


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, hidden ones too: relative POSIX path -> bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def edited(db: Path, target: Path, change) -> Path:
    """A copy of `db` at `target` with `change(txn)` applied in one write transaction."""
    shutil.copytree(db, target)
    env = lmdb.open(str(target))
    with env.begin(write=True) as txn:
        change(txn)
    env.close()
    return target
