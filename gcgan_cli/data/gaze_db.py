"""The packed dataset: one LMDB of eye strips, their part masks and their gaze.

    DB/data.mdb, DB/lock.mdb    the LMDB environment (a directory)
    DB/labels_gaze.npy          float32 [N_labelled, 2] (pitch, yaw) in radians: the label set that
                                training draws fake gazes from (np.load(..., allow_pickle=False))
    DB/preview.png              a few records beside their mask overlays, decoded from the DB

Keys, with i = 0 .. count-1 as 8 decimal digits:

    image-{i}   PNG, RGB 8-bit, size x size
    mask-{i}    PNG, grey 8-bit, size x size, class ids (meta class_names)
    gaze-{i}    8 bytes, little-endian float32 pitch, yaw (radians); absent when unlabelled
    name-{i}    UTF-8 name of the source strip
    meta        JSON (FORMAT, FORMAT_VERSION, count, size, class_names, labelled, ...),
                written in the last transaction: a DB without it is unfinished

Unlike the reference, gaze is stored as floats (not parsed from a 4-decimal name) and keys do
not embed the label, so no pickled side dictionary is needed to read a record.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lmdb
import numpy as np

from gcgan_cli.data.gaze_values import check_gaze
from gcgan_cli.errors import DatasetError

FORMAT = "gcgan-lmdb"
FORMAT_VERSION = 1
LABELS_FILE = "labels_gaze.npy"
PREVIEW_FILE = "preview.png"
META_KEY = b"meta"
PROGRESS_KEY = b"pack-progress"  # present only while a pack is being built
INITIAL_MAP_BYTES = 64 << 20
DATA_FILE = "data.mdb"
GAZE_BYTES = 8
# LMDB's pages are the page size of the machine that wrote the DB, 4 KiB or more; its first two are
# the meta pages, so a shorter file cannot be a DB.
_MIN_PAGE_BYTES = 4096


def key(kind: str, index: int) -> bytes:
    return f"{kind}-{index:08d}".encode()


def encode_gaze(pitch: float, yaw: float) -> bytes:
    return np.array([pitch, yaw], "<f4").tobytes()


def decode_gaze(data: bytes) -> tuple[float, float]:
    pitch, yaw = np.frombuffer(data, "<f4")
    return float(pitch), float(yaw)


@dataclass(frozen=True)
class DbMeta:
    count: int
    size: int
    class_names: tuple[str, ...]
    labelled: bool
    gcgan_version: str
    source: dict = field(default_factory=dict)  # path, kind, manifest_sha256, inputs_sha256
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_json(self) -> bytes:
        record = asdict(self)
        record["class_names"] = list(self.class_names)
        return json.dumps(record, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, where: Path) -> DbMeta:
        try:
            record = json.loads(data)
            if record.get("format") != FORMAT:
                raise DatasetError(f"{where}: an LMDB, but not a gcgan dataset (format {record.get('format')!r})")
            if record.get("format_version") != FORMAT_VERSION:
                raise DatasetError(
                    f"{where}: gcgan dataset format version {record.get('format_version')}, this gcgan reads "
                    f"version {FORMAT_VERSION}; pack it again with this version (gcgan pack ... --overwrite)"
                )
            return cls(
                int(record["count"]),
                int(record["size"]),
                tuple(record["class_names"]),
                bool(record["labelled"]),
                str(record["gcgan_version"]),
                dict(record.get("source") or {}),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{where}: the metadata record is damaged ({exc}); pack it again") from exc


_readers: dict[tuple[int, int], tuple[Path, lmdb.Environment]] = {}
_readers_pid: int | None = None


def reader(path: Path) -> lmdb.Environment:
    """This process's one read-only handle on the DB at `path`, or a DatasetError saying why not.

    LMDB allows one open handle per process on the same files, so handles are shared, keyed by
    the data file's inode (a DB rebuilt at the same path gets a new one). Handles inherited
    through fork are unusable: the first call in a new process closes them.
    """
    global _readers_pid
    if _readers_pid != os.getpid():
        for _, env in _readers.values():
            env.close()
        _readers.clear()
        _readers_pid = os.getpid()
    try:
        stat = (path / DATA_FILE).stat()
    except OSError:
        what = "does not exist" if not path.exists() else "is not a packed dataset (no data.mdb)"
        raise DatasetError(f"{path} {what}; make one with `gcgan pack --data PREP_DIR --outdir {path}`") from None
    identity = (stat.st_dev, stat.st_ino)
    if identity not in _readers:
        if stat.st_size < 2 * _MIN_PAGE_BYTES:  # lmdb.open would take an empty file for a new DB
            raise _cut_short(path, stat.st_size, f"at least {2 * _MIN_PAGE_BYTES}")
        try:
            # lock=False: readers never write, and a read-only or shared filesystem stays usable.
            env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False, max_readers=256)
        except lmdb.Error as exc:
            raise DatasetError(f"{path}: cannot open as LMDB ({exc})") from exc
        # The file is memory-mapped: reading a page past its end kills the process with SIGBUS. The
        # meta pages (read with pread by lmdb.open) say how many pages the DB uses.
        needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
        if stat.st_size < needed:
            env.close()
            raise _cut_short(path, stat.st_size, str(needed))
        _readers[identity] = (path, env)
    return _readers[identity][1]


def _cut_short(path: Path, size: int, needed: str) -> DatasetError:
    return DatasetError(
        f"{path}: {DATA_FILE} is {size} bytes but the DB needs {needed}; it was cut short "
        "(copy interrupted?); copy or pack it again"
    )


def release(path: Path) -> None:
    """Close this process's read handles on `path` (before writing, moving or deleting it)."""
    for identity, (opened, env) in list(_readers.items()):
        if opened == path:
            env.close()
            del _readers[identity]


def open_writer(path: Path) -> lmdb.Environment:
    """A new writable environment at `path`; its map grows on demand (see core.pack)."""
    release(path)
    return lmdb.open(str(path), map_size=INITIAL_MAP_BYTES, readahead=False, meminit=False)


def read_meta(path: Path) -> DbMeta:
    """The checked metadata of the DB at `path`."""
    env = reader(path)
    try:
        with env.begin() as txn:
            data = txn.get(META_KEY)
            if data is None:
                hint = " (an unfinished pack)" if txn.get(PROGRESS_KEY) is not None else ""
                raise DatasetError(f"{path}: no gcgan metadata record{hint}; pack it again with `gcgan pack`")
            meta = DbMeta.from_json(data, path)
            last = meta.count - 1
            if meta.count < 1 or any(txn.get(key(kind, last)) is None for kind in ("image", "mask")):
                raise DatasetError(
                    f"{path}: truncated ({meta.count} records announced, the last is missing); pack it again"
                )
            return meta
    except lmdb.Error as exc:
        raise DatasetError(f"{path}: unreadable LMDB ({exc}); pack it again") from exc


@dataclass
class Record:
    image_png: bytes
    mask_png: bytes
    gaze: tuple[float, float] | None
    name: str


def read_record(txn: lmdb.Transaction, index: int, where: Path) -> Record:
    image, mask = txn.get(key("image", index)), txn.get(key("mask", index))
    if image is None or mask is None:
        raise DatasetError(f"{where}: record {index} is missing; the DB is damaged, pack it again")
    gaze = txn.get(key("gaze", index))
    if gaze is not None and len(gaze) != GAZE_BYTES:
        raise DatasetError(
            f"{where}: record {index}'s gaze is {len(gaze)} bytes, expected {GAZE_BYTES}; "
            "the DB is damaged, pack it again"
        )
    return Record(
        bytes(image), bytes(mask), decode_gaze(gaze) if gaze is not None else None, read_name(txn, index, where)
    )


def read_name(txn: lmdb.Transaction, index: int, where: Path) -> str:
    """Record `index`'s source name (its number when the DB stores none)."""
    name = txn.get(key("name", index))
    if name is None:
        return str(index)
    try:
        return bytes(name).decode()
    except UnicodeDecodeError:
        raise DatasetError(f"{where}: record {index}'s name is not UTF-8; the DB is damaged, pack it again") from None


def read_labels(path: Path) -> np.ndarray:
    """The float32 [N, 2] gaze label set of a DB folder, or in the file `path`: a .npy array, or a
    .json list of (pitch, yaw) pairs. Never unpickled.

    A DB's own label set (its folder, or the labels_gaze.npy in it) must have one row per record:
    another count means the file belongs to another pack.
    """
    file = path / LABELS_FILE if path.is_dir() else path
    if not file.is_file():
        raise DatasetError(
            f"{file}: no such label file; give a DB from `gcgan pack` or a gaze label file (.npy, .json)"
        )
    try:
        if file.suffix.lower() == ".json":
            labels = np.asarray(json.loads(file.read_text()), dtype=np.float64)
        else:
            labels = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError, TypeError) as exc:
        raise DatasetError(
            f"{file}: not a gaze label file ({exc}); expected float32 (N, 2) (.npy from `gcgan pack`) "
            "or a JSON list of (pitch, yaw) pairs"
        ) from exc
    labels = check_gaze(labels, str(file))
    if len(labels) == 0:
        raise DatasetError(f"{file}: no gaze labels; expected at least one (pitch, yaw) row")
    if file.name == LABELS_FILE and (file.parent / DATA_FILE).is_file():
        count = read_meta(file.parent).count
        if len(labels) != count:
            raise DatasetError(
                f"{file}: {len(labels)} gaze labels, but the DB {file.parent} has {count} records; "
                "the label set is from another pack: pack the DB again"
            )
    return labels.astype(np.float32)
