"""Pack image + mask pairs into one LMDB (data.gaze_db) with the gaze label set beside it.

The DB is built under `DB.partial` and renamed into place only when complete, so the final
name only ever holds a whole DB (the old one, until the new one is done). Worker processes
decode, check, resize and encode; this process writes in order and commits every
COMMIT_RECORDS records or COMMIT_BYTES, with a progress record. A run stopped by Ctrl-C, killed
or out of disk space resumes from the last commit when started again on the same inputs. One
pack at a time writes a given DB (a lock beside it).
"""

from __future__ import annotations

import io
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import lmdb
import numpy as np

import gcgan_cli
from gcgan_cli.core.pool import map_in_order, useful_workers
from gcgan_cli.data import gaze_db
from gcgan_cli.data.atomic import replace_path, write_atomic
from gcgan_cli.data.contact_sheet import contact_sheet
from gcgan_cli.data.pack_inputs import PackInputs, listing, make_record, sha256_of
from gcgan_cli.data.png import decode_png, encode_png
from gcgan_cli.errors import DatasetError, UsageError, WorkerDied
from gcgan_cli.outputs import folder_place, reporting_disk_full, writer_lock

COMMIT_RECORDS = 500
COMMIT_BYTES = 64 << 20
PREVIEW_RECORDS = 8


@dataclass
class PackResult:
    db: Path
    count: int
    size: int
    labelled: bool
    written: int = 0
    resumed_from: int = 0
    workers: int = 1
    elapsed_s: float = 0.0
    interrupted: bool = False
    gaze_from: dict[str, int] = field(default_factory=dict)
    db_bytes: int = 0


def partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def check_destination(out: Path, overwrite: bool) -> None:
    """Refuse a place that cannot be written, and replacing anything but an earlier DB (that only
    with --overwrite). Creates nothing."""
    if out.is_dir():
        if not overwrite:
            raise UsageError(f"--outdir {out} already exists; pass --overwrite to replace it")
        if not (out / gaze_db.DATA_FILE).is_file() and any(out.iterdir()):
            raise UsageError(f"--outdir {out} is a folder that is not a packed dataset; refusing to replace it")
    folder_place(out.parent if out.is_dir() else out, "--outdir")  # the DB is built beside it, then renamed


def pack(
    inputs: PackInputs,
    out: Path,
    size: int,
    class_names: Sequence[str],
    workers: int,
    overwrite: bool = False,
    unlabelled: bool = False,
    on_start: Callable[[int, int], None] | None = None,
    on_advance: Callable[[], None] | None = None,
) -> PackResult:
    """Build the DB at `out`; returns with `interrupted` set when stopped by Ctrl-C.

    Raises DatasetError listing every pair that cannot be packed (bad mask id, unreadable
    file, size mismatch), or when labelled and unlabelled pairs are mixed; DiskFullError when
    the disk fills (the partial DB keeps its commits); UsageError while another pack writes `out`.
    """
    with writer_lock(out, "pack"):
        return _pack(inputs, out, size, class_names, workers, overwrite, unlabelled, on_start, on_advance)


def _pack(
    inputs: PackInputs,
    out: Path,
    size: int,
    class_names: Sequence[str],
    workers: int,
    overwrite: bool,
    unlabelled: bool,
    on_start: Callable[[int, int], None] | None,
    on_advance: Callable[[], None] | None,
) -> PackResult:
    """`pack` while holding the DB's writer lock."""
    check_destination(out, overwrite)  # again: another pack may have finished it meanwhile
    pairs = inputs.pairs
    labelled = _labelled(inputs, unlabelled)
    fingerprint = inputs.fingerprint(size, class_names, labelled)
    building = partial_path(out)
    start = _resume_point(building, fingerprint)
    result = PackResult(out, len(pairs), size, labelled, resumed_from=start)
    for pair in pairs:
        source = pair.gaze_from if labelled else "none"
        result.gaze_from[source] = result.gaze_from.get(source, 0) + 1
    todo = pairs[start:]
    result.workers = useful_workers(workers, len(todo))
    if on_start:
        on_start(len(pairs), start)
    work = partial(make_record, size=size, num_classes=len(class_names))
    failures: list[str] = []
    began = time.perf_counter()
    with reporting_disk_full(out.parent):
        env = gaze_db.open_writer(building)
    try:
        writer = _Writer(env, out.parent, fingerprint, start)
        try:
            for pair, outcome in zip(
                todo, map_in_order(work, [(str(p.image), str(p.mask)) for p in todo], result.workers)
            ):
                if isinstance(outcome, str):
                    failures.append(outcome)
                elif not failures:  # after a failure the DB cannot be completed: only collect errors
                    image_png, mask_png = outcome
                    writer.add(
                        pair.name,
                        image_png or pair.image.read_bytes(),
                        mask_png or pair.mask.read_bytes(),
                        pair.gaze if labelled else None,
                    )
                if on_advance:
                    on_advance()
        except KeyboardInterrupt:
            result.interrupted = True
        except WorkerDied:
            if not failures:
                writer.commit()  # a re-run continues from here
            raise
        if not failures:
            writer.commit()  # on Ctrl-C too: a re-run continues from here
        result.written = writer.next_index - start
        if not failures and not result.interrupted:
            meta = gaze_db.DbMeta(
                len(pairs),
                size,
                tuple(class_names),
                labelled,
                gcgan_cli.__version__,
                {
                    "kind": inputs.kind,
                    "manifest": str(inputs.manifest) if inputs.manifest else None,
                    "manifest_sha256": sha256_of(inputs.manifest),
                    "inputs_sha256": fingerprint,
                    "gaze_from": result.gaze_from,
                },
            )
            writer.commit(meta)
            with reporting_disk_full(out.parent):
                env.sync(True)
                _write_preview(env, building, len(pairs))
    finally:
        env.close()
        result.elapsed_s = time.perf_counter() - began
        if failures:
            shutil.rmtree(building, ignore_errors=True)
    if failures:
        raise DatasetError(f"{len(failures)} pair(s) cannot be packed, no DB written: {listing(failures)}")
    if result.interrupted:
        return result
    if labelled:
        labels = io.BytesIO()
        np.save(labels, np.asarray([p.gaze for p in pairs], np.float32), allow_pickle=False)
        with reporting_disk_full(out.parent, needed=labels.tell()):
            write_atomic(building / gaze_db.LABELS_FILE, labels.getvalue())
    _move_into_place(building, out)
    result.db_bytes = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    return result


def _labelled(inputs: PackInputs, unlabelled: bool) -> bool:
    if unlabelled:
        return False
    missing = [p.name for p in inputs.pairs if p.gaze is None]
    if missing and len(missing) < len(inputs.pairs):
        raise DatasetError(
            f"{len(missing)} of {len(inputs.pairs)} pairs have no gaze ({listing(missing)}); "
            "fix their manifest rows, or pass --unlabelled to pack the whole set without gaze"
        )
    return not missing


def _resume_point(building: Path, fingerprint: str) -> int:
    """Records already committed by an earlier run on the same inputs; otherwise start over."""
    if not building.exists():
        return 0
    try:
        with gaze_db.reader(building).begin() as txn:
            progress = json.loads(txn.get(gaze_db.PROGRESS_KEY) or b"{}")
        if progress.get("inputs_sha256") == fingerprint:
            return int(progress["done"])
    except (DatasetError, lmdb.Error, ValueError, KeyError, TypeError):
        pass
    finally:
        gaze_db.release(building)
    shutil.rmtree(building)
    return 0


class _Writer:
    """Buffers records and commits them with a progress record, growing the map when full."""

    def __init__(self, env: lmdb.Environment, place: Path, fingerprint: str, start: int):
        self.env, self.place, self.fingerprint, self.next_index = env, place, fingerprint, start
        self.pending: list[tuple[bytes, bytes]] = []
        self.pending_records = self.pending_bytes = 0

    def add(self, name: str, image_png: bytes, mask_png: bytes, gaze: tuple[float, float] | None) -> None:
        index = self.next_index + self.pending_records
        self.pending += [
            (gaze_db.key("image", index), image_png),
            (gaze_db.key("mask", index), mask_png),
            (gaze_db.key("name", index), name.encode()),
        ]
        if gaze is not None:
            self.pending.append((gaze_db.key("gaze", index), gaze_db.encode_gaze(*gaze)))
        self.pending_records += 1
        self.pending_bytes += len(image_png) + len(mask_png)
        if self.pending_records >= COMMIT_RECORDS or self.pending_bytes >= COMMIT_BYTES:
            self.commit()

    def commit(self, meta: gaze_db.DbMeta | None = None) -> None:
        """Write what is pending; with `meta`, also the metadata record that ends the build.

        LMDB reports a full disk as an I/O error; the earlier commits stay whole either way. A
        commit needs room for its pages and their copies in the free list: about twice its bytes.
        """
        done = self.next_index + self.pending_records
        if meta is None:
            last = (gaze_db.PROGRESS_KEY, json.dumps({"inputs_sha256": self.fingerprint, "done": done}).encode())
        else:
            last = (gaze_db.META_KEY, meta.to_json())
        with reporting_disk_full(self.place, needed=2 * self.pending_bytes):
            self._write(last, finished=meta is not None)
        self.next_index = done
        self.pending, self.pending_records, self.pending_bytes = [], 0, 0

    def _write(self, last: tuple[bytes, bytes], finished: bool) -> None:
        """One transaction: the pending records, then `last`."""
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for k, v in self.pending:
                        txn.put(k, v)
                    txn.put(*last)
                    if finished:
                        txn.delete(gaze_db.PROGRESS_KEY)
                return
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)


def _write_preview(env: lmdb.Environment, db: Path, count: int) -> None:
    """Records read back from the DB itself: what training will see."""
    with env.begin() as txn:
        picks = np.linspace(0, count - 1, min(PREVIEW_RECORDS, count)).round().astype(int)
        records = [gaze_db.read_record(txn, int(i), db) for i in picks]
    pairs = [(decode_png(r.image_png), decode_png(r.mask_png)) for r in records]
    write_atomic(db / gaze_db.PREVIEW_FILE, encode_png(contact_sheet(pairs)))


def _move_into_place(building: Path, out: Path) -> None:
    gaze_db.release(out)
    replace_path(building, out)
