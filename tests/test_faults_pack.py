"""Faults around `gcgan pack` and the packed DB: bad inputs and options, damaged DBs and label
files, a full disk, a concurrent or killed pack. Each ends with one `error:` line and exit 2, and
leaves no half-written DB behind."""

import json
import os
import shutil
import signal
import subprocess
import sys

import cv2
import lmdb
import numpy as np
import pytest
from faults import edited, one_error, packed, synthetic_prep

from gcgan_cli import cli, outputs
from gcgan_cli.core import pack as pack_core
from gcgan_cli.core.dataset import GazeMaskDataset
from gcgan_cli.data import gaze_db
from gcgan_cli.data.manifest import read_manifest
from gcgan_cli.data.pack_inputs import make_record
from gcgan_cli.data.png import encode_png
from gcgan_cli.data.prep_dir import strip_name
from gcgan_cli.errors import DatasetError

pytestmark = pytest.mark.faults

N = 16
SIZE = 32
QUICK_FIT = ("--epochs", "1", "--device", "cpu")


@pytest.fixture(scope="module")
def prep(tmp_path_factory):
    return synthetic_prep(tmp_path_factory.mktemp("synthetic") / "prep", N, SIZE)


@pytest.fixture(scope="module")
def db(prep, tmp_path_factory):
    return packed(prep, tmp_path_factory.mktemp("packed") / "db", SIZE)


def no_db(out):
    assert not out.exists() and not pack_core.partial_path(out).exists()


def names(prep):
    return sorted(read_manifest(prep / "manifest.jsonl"))


def items(db):
    """Every key and value of the DB, read back through LMDB."""
    try:
        with gaze_db.reader(db).begin() as txn:
            return [(bytes(k), bytes(v)) for k, v in txn.cursor()]
    finally:
        gaze_db.release(db)


def progress_done(db):
    """Records a stopped pack committed (its progress record)."""
    try:
        with gaze_db.reader(db).begin() as txn:
            return json.loads(txn.get(gaze_db.PROGRESS_KEY))["done"]
    finally:
        gaze_db.release(db)


def child(script, *args):
    """A Python process running `script`, its output readable line by line."""
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def started(process, word):
    """Wait until the child prints `word` (it has reached the point to test)."""
    for line in process.stdout:
        if word in line:
            return
    raise AssertionError(f"the child ended before `{word}`: {process.stderr.read()}")


# --- damaged DBs ---

CUT_READER = """
import sys
from gcgan_cli.core.dataset import GazeMaskDataset
from gcgan_cli.errors import DatasetError
for path in sys.argv[1:]:
    try:
        GazeMaskDataset(path)[0]
        print("read")
    except DatasetError as exc:
        print(exc)
"""


@pytest.mark.slow
def test_a_cut_short_db_is_refused_before_any_read(db, tmp_path):
    """LMDB maps data.mdb: reading past a cut end would kill the reader with SIGBUS (exit 135)."""
    full = (db / gaze_db.DATA_FILE).stat().st_size
    cuts = {}
    sizes = {"empty": 0, "tiny": 100, "meta-pages-only": 8192, "half": full // 2, "last-byte": full - 1}
    for name, size in sizes.items():
        shutil.copytree(db, tmp_path / name)
        os.truncate(tmp_path / name / gaze_db.DATA_FILE, size)
        cuts[tmp_path / name] = size
    # A subprocess: a SIGBUS would kill pytest.
    read = subprocess.run(
        [sys.executable, "-c", CUT_READER, *map(str, cuts)], capture_output=True, text=True, timeout=120
    )
    assert read.returncode == 0, read.stderr
    lines = read.stdout.splitlines()
    assert len(lines) == len(cuts)
    for (path, size), line in zip(cuts.items(), lines):
        assert line.startswith(f"{path}: data.mdb is {size} bytes but the DB needs ") and "cut short" in line, line
        assert "pack it again" in line
    assert lines[-1].endswith(f"needs {full}; it was cut short (copy interrupted?); copy or pack it again")
    assert (tmp_path / "empty" / gaze_db.DATA_FILE).stat().st_size == 0  # not initialised as a new DB

    stats = tmp_path / "stats.npz"
    command = subprocess.run(
        [sys.executable, "-m", "gcgan_cli", "inception", "--data", str(tmp_path / "half"), "--out", str(stats)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert command.returncode == 2, command.stderr
    one_error(command.stderr, f"{tmp_path / 'half'}: data.mdb is {full // 2} bytes", "cut short")
    assert not stats.exists()


def test_damaged_records_name_the_record(db, tmp_path, run_cli):
    short_gaze = edited(db, tmp_path / "gaze", lambda txn: txn.put(gaze_db.key("gaze", 7), b"abc"))
    code, _, err = run_cli("gaze", "fit", "--data", short_gaze, "--out", tmp_path / "e.pt", *QUICK_FIT)
    assert code == 2
    one_error(err, f"{short_gaze}: record 7's gaze is 3 bytes, expected 8; the DB is damaged, pack it again")
    assert not (tmp_path / "e.pt").exists()

    bad_name = edited(db, tmp_path / "name", lambda txn: txn.put(gaze_db.key("name", 3), b"\xff\xfe"))
    with pytest.raises(DatasetError, match=r"record 3's name is not UTF-8; the DB is damaged, pack it again"):
        GazeMaskDataset(bad_name).record(3)
    empty_image = edited(db, tmp_path / "image", lambda txn: txn.put(gaze_db.key("image", 5), b""))
    with pytest.raises(DatasetError, match="record 5 is not a readable PNG"):
        GazeMaskDataset(empty_image)[5]


# --- label files ---


@pytest.mark.parametrize(
    "labels, words",
    [
        ([[0.1, 0.2], [np.nan, 0.0], [0.0, 0.1]], ["row 1", "not finite"]),
        (np.full((4, 3), 0.5), ["shape [4, 3]", "gaze vector"]),
        ([[0.1, 0.2], [30.0, -45.0]], ["row 1", "look like degrees"]),
    ],
    ids=["nan", "vectors", "degrees"],
)
def test_bad_label_files_name_the_file_and_row(tmp_path, labels, words):
    file = tmp_path / "labels.npy"
    np.save(file, np.asarray(labels, np.float32), allow_pickle=False)
    with pytest.raises(DatasetError) as caught:
        gaze_db.read_labels(file)
    message = str(caught.value)
    assert caught.value.exit_code == 2 and "\n" not in message and message.startswith(f"{file}: ")
    assert all(word in message for word in words), message


def test_a_label_set_of_another_count_is_refused(db, tmp_path, run_cli):
    copy = tmp_path / "db"
    shutil.copytree(db, copy)
    np.save(copy / gaze_db.LABELS_FILE, np.load(db / gaze_db.LABELS_FILE)[:-1], allow_pickle=False)
    words = [
        f"{copy / gaze_db.LABELS_FILE}: {N - 1} gaze labels, but the DB {copy} has {N} records",
        "pack the DB again",
    ]
    for path in (copy, copy / gaze_db.LABELS_FILE):  # the DB folder, or its label file (as the trainer passes it)
        with pytest.raises(DatasetError) as caught:
            gaze_db.read_labels(path)
        assert all(word in str(caught.value) for word in words)
    code, _, err = run_cli("gaze", "fit", "--data", copy, "--out", tmp_path / "e.pt", *QUICK_FIT)
    assert code == 2
    one_error(err, *words)
    assert not (tmp_path / "e.pt").exists()


# --- inputs ---


def test_gaze_out_of_range_gets_the_degrees_hint(prep, tmp_path, run_cli):
    folder = tmp_path / "prep"
    shutil.copytree(prep, folder)
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    rows[2]["pitch"] = 30.0
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, _, err = run_cli("pack", "--data", folder, "--outdir", tmp_path / "db", "-j", "1")
    assert code == 2
    one_error(err, f"{folder / 'manifest.jsonl'} row {rows[2]['name']!r}", "look like degrees")
    no_db(tmp_path / "db")

    # Names carrying gaze (no manifest): a name in degrees is refused, unless packing without gaze.
    images, masks = tmp_path / "images", tmp_path / "masks"
    shutil.copytree(prep / "rgb", images)
    shutil.copytree(prep / "mask", masks)
    first = names(prep)[0]
    degrees = strip_name(0, "00", 1, 45.0, 30.0)
    for sub in (images, masks):
        (sub / f"{first}.png").rename(sub / f"{degrees}.png")
    command = (
        "pack",
        "--data",
        tmp_path,
        "--rgb-dir",
        images,
        "--mask-dir",
        masks,
        "--outdir",
        tmp_path / "db",
        "-j",
        "1",
    )
    code, _, err = run_cli(*command)
    assert code == 2
    one_error(err, f"{images / degrees}.png: the gaze in its name", "--unlabelled", "look like degrees")
    no_db(tmp_path / "db")
    assert run_cli(*command, "--unlabelled")[0] == 0
    assert not gaze_db.read_meta(tmp_path / "db").labelled


def test_images_and_masks_from_one_folder_are_refused(prep, tmp_path, run_cli):
    folder = tmp_path / "prep"
    shutil.copytree(prep, folder)
    rgb = folder / "rgb"
    (tmp_path / "link").symlink_to(rgb)
    out = tmp_path / "db"
    for options in (
        ["--rgb-dir", rgb, "--mask-dir", rgb],
        ["--rgb-dir", rgb, "--mask-dir", tmp_path / "link"],
        ["--rgb-dir", rgb, "--mask-dir", folder / "mask" / ".." / "rgb"],
        ["--rgb-dir", folder / "mask"],
    ):
        code, _, err = run_cli("pack", "--data", folder, *options, "--outdir", out)
        assert code == 2
        one_error(err, "--rgb-dir and --mask-dir are the same folder", "must be in separate folders")
        no_db(out)
    for inside, words in (
        (folder, "is the input folder itself"),
        (rgb / "db", f"is in the image folder {rgb}"),
        (folder / "mask" / "sub" / "db", f"is in the mask folder {folder / 'mask'}"),
    ):
        code, _, err = run_cli("pack", "--data", folder, "--outdir", inside)
        assert code == 2
        one_error(err, f"--outdir {inside} {words}", "outside its input folders")
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in prep.iterdir())
    assert len(list(rgb.iterdir())) == N and len(list((folder / "mask").iterdir())) == N


def test_lossy_masks_are_refused_lossy_images_are_not(prep, tmp_path, run_cli):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for i, name in enumerate(names(prep)):
        image, mask = cv2.imread(str(prep / "rgb" / f"{name}.png")), cv2.imread(str(prep / "mask" / f"{name}.png"), 0)
        cv2.imwrite(str(images / f"{name}.jpg"), image)
        cv2.imwrite(str(masks / f"{name}{'.webp' if i == 0 else '.jpg'}"), mask)
    out = tmp_path / "db"
    code, _, err = run_cli(
        "pack", "--data", tmp_path, "--rgb-dir", images, "--mask-dir", masks, "--outdir", out, "-j", "1"
    )
    assert code == 2
    one_error(
        err,
        f"{masks}: {N} mask(s) in a lossy format",
        f"{names(prep)[0]}.webp",
        f"{names(prep)[1]}.jpg",
        "lossless class-id images (PNG or BMP)",
    )
    no_db(out)
    for name in names(prep):
        for mask in masks.glob(f"{name}.*"):
            mask.unlink()
        shutil.copy(prep / "mask" / f"{name}.png", masks)
    assert (
        run_cli("pack", "--data", tmp_path, "--rgb-dir", images, "--mask-dir", masks, "--outdir", out, "-j", "1")[0]
        == 0
    )
    assert gaze_db.read_meta(out).count == N


def test_empty_and_truncated_files_are_named(prep, tmp_path, capfd):
    """In this process (-j 1): OpenCV's and libpng's own warnings must not reach stderr either."""
    folder = tmp_path / "prep"
    shutil.copytree(prep, folder)
    empty, cut = folder / "rgb" / f"{names(prep)[1]}.png", folder / "mask" / f"{names(prep)[4]}.png"
    empty.write_bytes(b"")
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "db"
    capfd.readouterr()
    code = cli.run(["pack", "--data", str(folder), "--outdir", str(out), "-j", "1"])
    assert code == 2
    one_error(
        capfd.readouterr().err,
        "2 pair(s) cannot be packed",
        f"{empty}: empty file (0 bytes)",
        f"{cut}: not a readable image (truncated?)",
    )
    no_db(out)


@pytest.mark.parametrize("cut_at", [-12, -2], ids=["png-without-IEND", "jpeg-without-end-marker"])
def test_a_file_cut_before_its_end_marker_is_refused(prep, tmp_path, cut_at):
    name = names(prep)[0]
    image, mask = tmp_path / "image", prep / "mask" / f"{name}.png"
    if cut_at == -2:
        ok, encoded = cv2.imencode(".jpg", cv2.imread(str(prep / "rgb" / f"{name}.png")))
        data = encoded.tobytes()
    else:
        data = (prep / "rgb" / f"{name}.png").read_bytes()
    image.write_bytes(data)
    assert not isinstance(make_record((str(image), str(mask)), SIZE, 7), str)  # the whole file packs
    image.write_bytes(data[:cut_at])
    assert make_record((str(image), str(mask)), SIZE, 7) == f"{image}: not a readable image (truncated?)"


def test_binary_samples_jsonl_names_file_and_line(prep, tmp_path, run_cli):
    folder = tmp_path / "samples"
    folder.mkdir()
    name = names(prep)[0]
    shutil.copy(prep / "rgb" / f"{name}.png", folder / "0.png")
    shutil.copy(prep / "mask" / f"{name}.png", folder / "0_mask.png")
    row = json.dumps({"image": "0.png", "mask": "0_mask.png", "pitch": 0.1, "yaw": 0.2}).encode()
    (folder / "samples.jsonl").write_bytes(row + b"\n\x89PNG\r\n\x1a\n\xff\xfe\x00\x01\n")
    code, _, err = run_cli("pack", "--data", folder, "--outdir", tmp_path / "db")
    assert code == 2
    one_error(err, f"{folder / 'samples.jsonl'}:2: not UTF-8 text")
    no_db(tmp_path / "db")


def test_an_unfinished_segment_run_is_named_with_what_to_do(prep, tmp_path, run_cli):
    hint = "did not finish: run the same `gcgan segment` command again"
    # A killed segment run: one strip's image is written, its mask and manifest row are not.
    killed = tmp_path / "killed"
    shutil.copytree(prep, killed)
    name = names(prep)[2]
    (killed / "mask" / f"{name}.png").unlink()
    rows = [line for line in (killed / "manifest.jsonl").read_text().splitlines() if json.loads(line)["name"] != name]
    (killed / "manifest.jsonl").write_text("\n".join(rows) + "\n")
    code, _, err = run_cli("pack", "--data", killed, "--outdir", tmp_path / "db")
    assert code == 2
    one_error(err, f"1 image(s) without a mask ({name})", f"the segment run that wrote {killed} {hint}")
    no_db(tmp_path / "db")
    # A mask removed by hand from a finished run: the report says it finished, so no such hint.
    edited_by_hand = tmp_path / "edited"
    shutil.copytree(prep, edited_by_hand)
    (edited_by_hand / "mask" / f"{name}.png").unlink()
    code, _, err = run_cli("pack", "--data", edited_by_hand, "--outdir", tmp_path / "db")
    assert code == 2 and hint not in err
    one_error(err, f"1 image(s) without a mask ({name})")
    # The same, with a report of a stopped run (Ctrl-C).
    report = json.loads((edited_by_hand / "segment_report.json").read_text())
    (edited_by_hand / "segment_report.json").write_text(json.dumps({**report, "interrupted": True}))
    code, _, err = run_cli("pack", "--data", edited_by_hand, "--outdir", tmp_path / "db")
    assert code == 2
    one_error(err, hint)
    no_db(tmp_path / "db")
    # Stopped between writing a strip's two files and logging it: whole files, no manifest row.
    unlogged = tmp_path / "unlogged"
    shutil.copytree(prep, unlogged)
    (unlogged / "manifest.jsonl").write_text("\n".join(rows) + "\n")
    code, _, err = run_cli("pack", "--data", unlogged, "--outdir", tmp_path / "db")
    assert code == 2
    one_error(
        err, f"1 strip(s) have no row in manifest.jsonl ({name})", f"the segment run that wrote {unlogged} {hint}"
    )
    no_db(tmp_path / "db")


# --- the output place ---


def test_out_must_be_a_writable_folder_path(prep, tmp_path, tmpfs, run_cli):
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    code, _, err = run_cli("pack", "--data", prep, "--outdir", file)
    assert code == 2
    one_error(err, f"--outdir {file}: a file is in the way")
    code, _, err = run_cli("pack", "--data", prep, "--outdir", file / "db")
    assert code == 2
    one_error(err, f"--outdir {file / 'db'}: {file} is a file")
    assert file.read_text() == "mine"
    read_only = tmpfs("ro,size=1m", "ro")
    for out in (read_only / "db", read_only / "sub" / "db"):
        code, _, err = run_cli("pack", "--data", prep, "--outdir", out)
        assert code == 2
        one_error(err, f"--outdir {read_only}: cannot write there", "choose another folder")
    assert list(read_only.iterdir()) == []


def test_a_second_pack_into_one_out_is_refused(prep, tmp_path, run_cli, lock_holder):
    out = tmp_path / "db"
    holder = lock_holder(out, "pack")
    code, _, err = run_cli("pack", "--data", prep, "--outdir", out, "--size", SIZE, "-j", "1")
    assert code == 2
    one_error(err, f"another gcgan is writing {out} (gcgan pack, pid {holder.pid}); wait for it to finish")
    no_db(out)
    holder.kill()
    holder.wait()
    assert (
        run_cli("pack", "--data", prep, "--outdir", out, "--size", SIZE, "-j", "1")[0] == 0
    )  # the kernel dropped its lock


# --- stopped packs resume ---


def noise_prep(root, count, size=64):
    """A PREP_DIR of incompressible strips (random pixels), so its DB is as big as its pixels."""
    (root / "rgb").mkdir(parents=True)
    (root / "mask").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(count):
        pitch, yaw = rng.uniform(-0.5, 0.5, 2).tolist()
        name = strip_name(0, "00", i, pitch, yaw)
        (root / "rgb" / f"{name}.png").write_bytes(encode_png(rng.integers(0, 256, (size, size, 3), np.uint8)))
        (root / "mask" / f"{name}.png").write_bytes(encode_png(rng.integers(0, 7, (size, size), np.uint8)))
        rows.append({"name": name, "pitch": pitch, "yaw": yaw})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_a_full_disk_stops_pack_and_the_same_command_resumes(tmp_path, tmpfs, monkeypatch, run_cli):
    prep = noise_prep(tmp_path / "noise", 200)  # a DB of about 4 MiB
    monkeypatch.setattr(pack_core, "COMMIT_RECORDS", 20)
    clean = tmp_path / "clean"
    assert run_cli("pack", "--data", prep, "--outdir", clean, "--size", "64", "-j", "1")[0] == 0
    small = tmpfs("size=3m", "small")
    out = small / "db"
    command = ("pack", "--data", prep, "--outdir", out, "--size", "64", "-j", "1")
    code, _, err = run_cli(*command)
    assert code == 2
    one_error(err, f"disk full at {small}", "run the same command again")
    assert not out.exists()
    kept = progress_done(pack_core.partial_path(out))
    assert 0 < kept < 200 and kept % 20 == 0
    subprocess.run(["mount", "-o", "remount,size=16m", str(small)], check=True)
    code, stdout, _ = run_cli(*command)
    assert code == 0 and f"{kept} from an interrupted run" in stdout
    assert items(out) == items(clean)
    for name in (gaze_db.LABELS_FILE, gaze_db.PREVIEW_FILE):
        assert (out / name).read_bytes() == (clean / name).read_bytes()


def test_an_opaque_commit_error_on_a_nearly_full_disk_is_a_full_disk(prep, tmp_path, monkeypatch, run_cli):
    """Where no tmpfs can be mounted: LMDB says `Input/output error`, not ENOSPC."""
    monkeypatch.setattr(pack_core, "COMMIT_RECORDS", 4)
    write, calls = pack_core._Writer._write, []

    def fail_the_second(writer, last, finished):
        calls.append(last)
        if len(calls) == 2:
            raise lmdb.Error("mdb_txn_commit: Input/output error")
        write(writer, last, finished)

    monkeypatch.setattr(pack_core._Writer, "_write", fail_the_second)
    monkeypatch.setattr(outputs, "free_bytes", lambda path: 4096)
    out = tmp_path / "db"
    code, _, err = run_cli("pack", "--data", prep, "--outdir", out, "--size", SIZE, "-j", "1")
    assert code == 2
    one_error(err, f"disk full at {tmp_path} (0.0 MiB free)")
    assert not out.exists() and progress_done(pack_core.partial_path(out)) == 4


KILLED_PACK = """
import sys, time
from gcgan_cli import cli
from gcgan_cli.core import pack
from gcgan_cli.data import pack_inputs

pack.COMMIT_RECORDS = 4
made = []

def make_then_stall(pair, **settings):
    if len(made) == 10:  # records 0-9 are added, 0-7 committed
        print("stalled", flush=True)
        time.sleep(60)
    made.append(pair)
    return pack_inputs.make_record(pair, **settings)

pack.make_record = make_then_stall
sys.exit(cli.run(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_pack_killed_with_sigkill_resumes_to_the_clean_db(prep, tmp_path, run_cli):
    out, clean = tmp_path / "db", tmp_path / "clean"
    command = ["pack", "--data", str(prep), "--outdir", str(out), "--size", str(SIZE), "-j", "1"]
    killed = child(KILLED_PACK, *command)
    try:
        started(killed, "stalled")
        os.kill(killed.pid, signal.SIGKILL)
    finally:
        killed.kill()
        killed.wait()
    assert killed.returncode == -signal.SIGKILL
    assert not out.exists() and progress_done(pack_core.partial_path(out)) == 8
    code, stdout, _ = run_cli(*command)
    assert code == 0 and "8 from an interrupted run" in stdout
    assert not pack_core.partial_path(out).exists()
    assert run_cli("pack", "--data", prep, "--outdir", clean, "--size", SIZE, "-j", "1")[0] == 0
    assert items(out) == items(clean)
    assert (out / gaze_db.LABELS_FILE).read_bytes() == (clean / gaze_db.LABELS_FILE).read_bytes()
