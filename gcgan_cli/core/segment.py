"""Turn a source (ETH-XGaze, CelebAMask-HQ, synthetic) into a PREP_DIR of strips and masks.

Work is spread over spawned worker processes (each with its own FaceMesh and HDF5 handles);
they return encoded PNGs and the main process writes each file under a temp name and renames
it, then logs the strip in the manifest. So an interrupted run leaves only whole files, and a
re-run skips every strip whose manifest row and two files exist.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from gcgan_cli.data.contact_sheet import contact_sheet
from gcgan_cli.data.prep_dir import (
    PrepDir,
    encode_png,
    read_manifest,
    rewrite_manifest,
    write_atomic,
    write_json_atomic,
)
from gcgan_cli.data.sources import ItemError, Skipped, Task
from gcgan_cli.errors import DatasetError

BATCH = 8  # work items per message to a worker
PREVIEW_STRIPS = 8


def default_workers() -> int:
    """Every core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass
class SegmentResult:
    source: str
    candidates: int = 0
    written: int = 0
    already_done: int = 0
    failed: list[Skipped] = field(default_factory=list)
    interrupted: bool = False
    elapsed_s: float = 0.0
    workers: int = 1  # processes that did the work (1: this one)

    @property
    def usable(self) -> int:
        return self.written + self.already_done

    def report(self, options: dict) -> dict:
        return {
            "source": self.source,
            "options": options,
            "counts": {"candidates": self.candidates, "written": self.written,
                       "already_done": self.already_done, "failed": len(self.failed)},
            "interrupted": self.interrupted,
            "elapsed_s": round(self.elapsed_s, 3),
            "workers": self.workers,
            "failed": [asdict(s) for s in self.failed],
        }


def segment(
    source,
    prep: PrepDir,
    workers: int,
    overwrite: bool = False,
    options: dict | None = None,
    on_start: Callable[[int], None] | None = None,
    on_advance: Callable[[], None] | None = None,
) -> SegmentResult:
    """Make every strip of `source` not yet in `prep`; always leaves a report.

    Raises DatasetError when the input yields nothing at all (after writing the report).
    """
    options = dict(options or {})
    tasks, skipped = source.tasks()
    result = SegmentResult(source.kind, candidates=len(tasks), failed=list(skipped))
    prep.create()
    existing = read_manifest(prep.manifest)
    todo = tasks if overwrite else [t for t in tasks if not (t.name in existing and prep.has_files(t.name))]
    result.already_done = len(tasks) - len(todo)
    # Worker processes only pay off beyond a batch each; fewer items run in this process.
    result.workers = max(1, min(workers, -(-len(todo) // BATCH))) if workers > 1 else 1
    if on_start:
        on_start(len(todo))
    start = time.perf_counter()
    new_rows: dict[str, dict] = {}
    try:
        with open(prep.manifest, "a", encoding="utf-8") as log:
            for task, outcome in _outcomes(source, todo, result.workers):
                if isinstance(outcome, str):
                    result.failed.append(Skipped(task.label, outcome))
                else:
                    prep.write_pair(task.name, *outcome)
                    log.write(json.dumps(task.row) + "\n")
                    log.flush()
                    new_rows[task.name] = task.row
                    result.written += 1
                if on_advance:
                    on_advance()
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        result.elapsed_s = time.perf_counter() - start
        rows = _final_rows(prep, existing, new_rows)
        rewrite_manifest(prep.manifest, rows)
        write_json_atomic(prep.report, result.report(options))
        _write_preview(prep, rows)
    if not result.interrupted and result.usable == 0:
        reasons = sorted({s.reason for s in result.failed})[:3]
        raise DatasetError(f"nothing could be segmented ({'; '.join(reasons) or 'no input'}); see {prep.report}")
    return result


def _final_rows(prep: PrepDir, existing: dict[str, dict], new_rows: dict[str, dict]) -> list[dict]:
    """Earlier rows keep their place, redone ones are replaced, new ones follow in input order."""
    rows = dict(existing)
    rows.update(new_rows)
    return [row for name, row in rows.items() if prep.has_files(name)]


def _write_preview(prep: PrepDir, rows: list[dict]) -> None:
    if not rows:
        return
    picks = [rows[i] for i in np.linspace(0, len(rows) - 1, min(PREVIEW_STRIPS, len(rows))).round().astype(int)]
    pairs = [pair for pair in (prep.read_pair(row["name"]) for row in picks) if pair is not None]
    if pairs:
        write_atomic(prep.preview, encode_png(contact_sheet(pairs)))


# --- work, in this process or in workers ---

_source = None


def _make(source, item) -> tuple[bytes, bytes] | str:
    """Encoded (rgb, mask) PNGs of one item, or the reason it yields none."""
    try:
        rgb, mask = source.make(item)
        return encode_png(rgb), encode_png(mask)
    except ItemError as exc:
        return str(exc)
    except Exception as exc:  # a broken input nobody foresaw: report it and go on
        return f"{type(exc).__name__}: {exc}"


def _init_worker(source) -> None:
    global _source
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    # Workers report through return values; their stderr would only carry mediapipe's per-image
    # C++ warnings, which its graph threads print at any time.
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
    cv2.setNumThreads(1)  # parallelism comes from the processes
    _source = source


def _make_batch(items: list) -> list:
    return [_make(_source, item) for item in items]


def _outcomes(source, tasks: list[Task], workers: int) -> Iterator[tuple[Task, tuple[bytes, bytes] | str]]:
    if workers <= 1:
        for task in tasks:
            yield task, _make(source, task.item)
        return
    batches = [tasks[i : i + BATCH] for i in range(0, len(tasks), BATCH)]
    # Spawned, not forked: a fork would copy FaceMesh threads and HDF5 state mid-flight.
    context = multiprocessing.get_context("spawn")
    with _main_module_hidden():
        pool = context.Pool(workers, initializer=_init_worker, initargs=(source,))
    with pool:
        for batch, outcomes in zip(batches, pool.imap(_make_batch, [[t.item for t in b] for b in batches])):
            yield from zip(batch, outcomes)


@contextlib.contextmanager
def _main_module_hidden():
    """Start workers without re-running the parent's `__main__`.

    A spawned worker normally imports the parent's main module first; for the `gcgan` script
    that is the whole CLI with torch (about 4 s per worker). The workers need none of it: their
    functions live in this module.
    """
    main = sys.modules["__main__"]
    saved = {key: main.__dict__[key] for key in ("__file__", "__spec__") if key in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)
