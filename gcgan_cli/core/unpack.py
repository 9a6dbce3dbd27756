"""A packed DB back as a PREP_DIR (data.prep_dir): every record's PNGs as they are stored, and a
manifest with its name and gaze, so that `gcgan pack` of the folder (same --size and --classes)
rebuilds the same records, byte for byte.

The folder is built beside --outdir under a hidden name and renamed when whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gcgan_cli.data import gaze_db
from gcgan_cli.data.image_files import PNG_SIGNATURE
from gcgan_cli.data.manifest import MANIFEST, rewrite_manifest
from gcgan_cli.data.pack_inputs import listing
from gcgan_cli.data.prep_dir import PrepDir, built_in_place
from gcgan_cli.errors import DatasetError, UsageError
from gcgan_cli.outputs import folder_place, reporting_disk_full, writer_lock

_NAME_BYTES = 250  # a name becomes NAME.png: at most 255 bytes on common filesystems


@dataclass(frozen=True)
class UnpackResult:
    outdir: Path
    meta: gaze_db.DbMeta
    labelled: int  # records with a gaze
    in_name_order: bool  # pack sorts by name: otherwise the rebuilt DB holds the same records in another order


def check_outdir(outdir: Path, db: Path, overwrite: bool) -> None:
    """Refuse, before any work, an --outdir that is or holds the DB, lies in it, holds files that
    are not a PREP_DIR, or holds one without --overwrite."""
    place, source = outdir.resolve(), db.resolve()
    if place == source or source in place.parents or place in source.parents:
        raise UsageError(f"--outdir {outdir} and --data {db} overlap; write the folder outside the DB and its parents")
    if not outdir.is_dir() or not any(outdir.iterdir()):
        return
    if not (outdir / MANIFEST).is_file():
        raise UsageError(
            f"--outdir {outdir} is a folder that is not a PREP_DIR (no manifest.jsonl); refusing to "
            "replace it: choose another folder"
        )
    if not overwrite:
        raise UsageError(f"--outdir {outdir} already holds a PREP_DIR; pass --overwrite to replace it")


def unpack(
    db: Path,
    outdir: Path,
    overwrite: bool,
    on_start: Callable[[int], None] = lambda n: None,
    on_advance: Callable[[], None] = lambda: None,
) -> UnpackResult:
    """Write the records of the DB at `db` as the PREP_DIR `outdir`."""
    outdir = folder_place(outdir, "--outdir")
    check_outdir(outdir, db, overwrite)
    meta = gaze_db.read_meta(db)
    on_start(meta.count)
    with writer_lock(outdir, "unpack"):
        check_outdir(outdir, db, overwrite)  # again: another unpack may have finished meanwhile
        with built_in_place(outdir) as building:
            prep = PrepDir.at(building)
            for folder in (prep.rgb_dir, prep.mask_dir):
                folder.mkdir(parents=True)
            rows = _write_records(db, meta.count, prep, on_advance)
            with reporting_disk_full(outdir):
                rewrite_manifest(prep.manifest, rows)
    names = [row["name"] for row in rows]
    return UnpackResult(outdir, meta, sum(row["pitch"] is not None for row in rows), names == sorted(names))


def _write_records(db: Path, count: int, prep: PrepDir, on_advance: Callable[[], None]) -> list[dict]:
    """rgb/NAME.png and mask/NAME.png of every record; its manifest rows (name, pitch, yaw)."""
    rows, seen = [], set()
    with gaze_db.reader(db).begin() as txn:
        for index in range(count):
            record = gaze_db.read_record(txn, index, db)
            _check_record(record, index, db, seen)
            prep.write_pair(record.name, record.image_png, record.mask_png)
            pitch, yaw = record.gaze if record.gaze is not None else (None, None)
            rows.append({"name": record.name, "pitch": pitch, "yaw": yaw})
            on_advance()
    return rows


def _check_record(record: gaze_db.Record, index: int, db: Path, seen: set[str]) -> None:
    """Refuse a record whose name cannot be a file stem that `gcgan pack` reads back (a path, a
    hidden file, a second record of that name) or whose image is not a PNG."""
    name = record.name
    if not name or name.startswith(".") or any(c in name for c in "/\\\0") or len(name.encode()) > _NAME_BYTES:
        raise DatasetError(
            f"{db}: record {index}'s name {name[:80]!r} cannot be a file name (empty, hidden, a path or "
            f"over {_NAME_BYTES} bytes); pack the DB again from files with plain names"
        )
    if name in seen:
        raise DatasetError(
            f"{db}: two records are named {name!r}; names must be unique to unpack (pack the DB "
            "again from files with unique names)"
        )
    seen.add(name)
    damaged = [
        kind
        for kind, data in (("image", record.image_png), ("mask", record.mask_png))
        if not data.startswith(PNG_SIGNATURE)
    ]
    if damaged:
        raise DatasetError(f"{db}: record {index}'s {listing(damaged)} is not a PNG; the DB is damaged, pack it again")
