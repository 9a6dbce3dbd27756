"""Turn a source (ETH-XGaze, CelebAMask-HQ, synthetic) into a PREP_DIR of strips and masks.

Work is spread over spawned worker processes (each with its own FaceMesh and HDF5 handles);
they return encoded PNGs and the main process writes each file under a temp name and renames
it, then logs the strip in the manifest. So an interrupted run (Ctrl-C, a full disk, a dead
worker, kill -9) leaves only whole files, and a re-run skips every strip whose manifest row and
two files exist. One run at a time writes a PREP_DIR (its writer lock), and a run does not
continue strips made with other strip options (size, style...): it stops, or redoes them all
with --overwrite.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial

import numpy as np

from gcgan_cli.core.pool import map_in_order, useful_workers
from gcgan_cli.data.atomic import write_atomic, write_json_atomic
from gcgan_cli.data.contact_sheet import contact_sheet
from gcgan_cli.data.manifest import read_manifest, rewrite_manifest
from gcgan_cli.data.png import encode_png
from gcgan_cli.data.prep_dir import PrepDir
from gcgan_cli.data.sources import ItemError, Skipped, Task
from gcgan_cli.errors import DatasetError, UsageError
from gcgan_cli.outputs import reporting_disk_full, writer_lock

PREVIEW_STRIPS = 8


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
            "counts": {
                "candidates": self.candidates,
                "written": self.written,
                "already_done": self.already_done,
                "failed": len(self.failed),
            },
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
    """Make every strip of `source` not yet in `prep`; leaves a report unless the disk is full.

    Raises UsageError (another run writes `prep`, or it holds strips made with other strip
    options and `overwrite` is not set), DiskFullError and WorkerDied (the manifest keeps every
    whole strip), and DatasetError when the input yields nothing at all (after the report).
    """
    options = dict(options or {})
    tasks, skipped = source.tasks()
    prep.create()
    with writer_lock(prep.root.resolve(), "segment"):
        prep.remove_leftovers()
        existing = _continued_rows(prep, source, options, overwrite)
        todo = tasks if overwrite else [t for t in tasks if not (t.name in existing and prep.has_files(t.name))]
        result = SegmentResult(source.kind, candidates=len(tasks), failed=list(skipped))
        result.already_done = len(tasks) - len(todo)
        result.workers = useful_workers(workers, len(todo))
        if on_start:
            on_start(len(todo))
        start = time.perf_counter()
        new_rows: dict[str, dict] = {}
        try:
            with reporting_disk_full(prep.root):
                _write_strips(source, prep, todo, result, new_rows, on_advance)
        except KeyboardInterrupt:
            result.interrupted = True
        except BaseException:
            # What is whole is kept: a failed rewrite (the disk is full) leaves the append log as it was.
            with contextlib.suppress(OSError):
                _finish(prep, existing, new_rows, result, options, start)
            raise
        with reporting_disk_full(prep.root):
            _finish(prep, existing, new_rows, result, options, start)
    if not result.interrupted and result.usable == 0:
        reasons = sorted({s.reason for s in result.failed})[:3]
        raise DatasetError(f"nothing could be segmented ({'; '.join(reasons) or 'no input'}); see {prep.report}")
    return result


def _write_strips(
    source,
    prep: PrepDir,
    todo: list[Task],
    result: SegmentResult,
    new_rows: dict[str, dict],
    on_advance: Callable[[], None] | None,
) -> None:
    """Make and write the strips of `todo`, logging each whole one in the manifest at once."""
    labels = {task.item: task.label for task in todo}
    work = map_in_order(partial(_make, source), [t.item for t in todo], result.workers, label=labels.__getitem__)
    with open(prep.manifest, "a", encoding="utf-8") as log, contextlib.closing(work) as outcomes:
        for task, outcome in zip(todo, outcomes):
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


def _finish(
    prep: PrepDir,
    existing: dict[str, dict],
    new_rows: dict[str, dict],
    result: SegmentResult,
    options: dict,
    start: float,
) -> None:
    """The manifest without duplicates, the report and the preview, each written whole."""
    result.elapsed_s = time.perf_counter() - start
    rows = _final_rows(prep, existing, new_rows)
    rewrite_manifest(prep.manifest, rows)
    write_json_atomic(prep.report, result.report(options))
    _write_preview(prep, rows)


def _continued_rows(prep: PrepDir, source, options: dict, overwrite: bool) -> dict[str, dict]:
    """The manifest rows this run builds on: none when the previous run's report says they were
    made with other strip options (refused without `overwrite`: the old strips would stay under
    a report that claims the new options)."""
    existing = read_manifest(prep.manifest)
    made = _reported_options(prep)
    wanted = {"source": source.kind, **{key: options[key] for key in source.strip_options if key in options}}
    wanted = json.loads(json.dumps(wanted))  # as the report stores it (tuples become lists)
    changed = [key for key in wanted if made is not None and key in made and made[key] != wanted[key]]
    if not existing or not changed:
        return existing
    if overwrite:
        return {}
    raise UsageError(
        f"--outdir {prep.root} holds strips made with {_listed(made, changed)}; this run asks for "
        f"{_listed(wanted, changed)}: pass --overwrite to redo them, or choose another --outdir"
    )


def _reported_options(prep: PrepDir) -> dict | None:
    """Source and options of the run that wrote the report, or None when there is no readable one."""
    try:
        report = json.loads(prep.report.read_bytes())
        return {"source": report["source"], **report["options"]}
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _listed(options: dict, keys: list[str]) -> str:
    def shown(value) -> str:
        if value is None:
            return "all"
        return ",".join(map(str, value)) if isinstance(value, list) else str(value)

    return ", ".join(f"{key.replace('_', '-')} {shown(options[key])}" for key in keys)


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


def _make(source, item) -> tuple[bytes, bytes] | str:
    """Encoded (rgb, mask) PNGs of one item, or the reason it yields none."""
    try:
        rgb, mask = source.make(item)
        return encode_png(rgb), encode_png(mask)
    except ItemError as exc:
        return " ".join(str(exc).split())  # one line: the summary and the error line show it
    except Exception as exc:  # a broken input nobody foresaw: report it and go on
        return " ".join(f"{type(exc).__name__}: {exc}".split())
