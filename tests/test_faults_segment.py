"""Faults around `gcgan segment`, its worker pool and the PREP_DIR: a dead worker, kill -9, a full
or read-only disk, two writers, output options that cannot work, a foreign manifest, a re-run with
other strip options, and inputs a decoder accepts although they are broken.

Each case checks the exit code, that stderr is one `error:` line naming the file or option, and
that what is on disk is whole (byte-identical to a clean run) or was never written.
"""

import contextlib
import glob
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from faults import one_error

from gcgan_cli.core.pool import map_in_order
from gcgan_cli.data import celeba
from gcgan_cli.data.manifest import read_manifest
from gcgan_cli.data.prep_dir import REPORT
from gcgan_cli.errors import WorkerDied

pytestmark = pytest.mark.faults

N, SIZE = 2000, 32  # a run of a few seconds: long enough to stop half-way
SMALL = ("--n", "16", "--size", "32", "-j", "1")


def synthetic_args(out: Path, *extra) -> list[str]:
    return ["segment", "synthetic", "--n", str(N), "--size", str(SIZE), "--outdir", str(out), *extra]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The PREP_DIR of an undisturbed run, to compare interrupted-and-resumed ones with."""
    from gcgan_cli import cli

    out = tmp_path_factory.mktemp("clean") / "prep"
    assert cli.run(synthetic_args(out, "-j", "1")) == 0
    return out


def contents(prep: Path) -> dict[str, str]:
    """Digest of every file under a PREP_DIR, hidden ones too, but the report (its counts and
    times differ between runs)."""
    return {
        str(p.relative_to(prep)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(prep.rglob("*"))
        if p.is_file() and p.name != REPORT
    }


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def report_of(prep: Path) -> dict:
    return json.loads((prep / REPORT).read_text())


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail instead of hanging: SIGALRM raises in this (the main) thread."""

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def start_segment():
    """Start `gcgan segment synthetic` in its own process and return once it has logged its first
    strip; a process a failed test leaves running is killed (its workers die with it)."""
    started = []

    def start(out: Path, *extra) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gcgan_cli", *synthetic_args(out, *extra)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        started.append(proc)
        manifest = out / "manifest.jsonl"
        end = time.monotonic() + 60
        while not (manifest.exists() and manifest.stat().st_size > 0):
            assert proc.poll() is None and time.monotonic() < end, "segment ended or stalled before its first strip"
            time.sleep(0.02)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def workers_of(pid: int) -> list[int]:
    """The pool's worker processes among `pid`'s children (not multiprocessing's resource tracker)."""
    children = [int(c) for f in glob.glob(f"/proc/{pid}/task/*/children") for c in Path(f).read_text().split()]
    return [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def double_or_die_on_13(x: int) -> int:
    """Work for the pool: item 13 kills its worker, as the out-of-memory killer would."""
    if x == 13:
        os.kill(os.getpid(), signal.SIGKILL)
    return 2 * x


# --- the worker pool ---------------------------------------------------------------------------


def test_a_worker_killed_on_an_item_ends_the_map_naming_that_item():
    results = []
    start = time.monotonic()
    with deadline(60), pytest.raises(WorkerDied) as died:
        for value in map_in_order(double_or_die_on_13, list(range(40)), workers=2, batch=1):
            results.append(value)
    assert time.monotonic() - start < 30
    message = str(died.value)
    assert "while working on 13;" in message and "fewer --workers" in message and "\n" not in message
    assert results == [2 * i for i in range(len(results))] and len(results) <= 13  # in order, up to the loss


@pytest.mark.slow
def test_a_worker_killed_from_outside_stops_segment_with_one_line_and_a_rerun_completes(
    clean, tmp_path, run_cli, start_segment
):
    out = tmp_path / "prep"
    proc = start_segment(out, "-j", "2")
    workers = workers_of(proc.pid)
    assert workers
    os.kill(workers[0], signal.SIGKILL)
    assert proc.wait(timeout=60) == 2
    one_error(proc.stderr.read().decode(), "worker process died", "fewer --workers", "finished work is kept")
    report = report_of(out)  # written on the way out, like the manifest
    written = report["counts"]["written"]
    assert 0 < written < N and len(read_manifest(out / "manifest.jsonl")) == written
    code, _, _ = run_cli(*synthetic_args(out, "-j", "1"))
    assert code == 0 and contents(out) == contents(clean)


@pytest.mark.slow
def test_kill_9_leaves_no_worker_behind_and_a_rerun_is_byte_identical(clean, tmp_path, run_cli, start_segment):
    out = tmp_path / "prep"
    proc = start_segment(out, "-j", "2")
    workers = workers_of(proc.pid)
    proc.kill()
    assert proc.wait(timeout=10) == -signal.SIGKILL
    end = time.monotonic() + 10
    while any(alive(w) for w in workers) and time.monotonic() < end:
        time.sleep(0.05)
    assert workers and not any(alive(w) for w in workers)  # they die with their parent
    code, _, _ = run_cli(*synthetic_args(out, "-j", "1"))
    report = report_of(out)
    assert code == 0 and 0 < report["counts"]["already_done"] < N
    assert contents(out) == contents(clean)  # no temp file left, no row lost or doubled


# --- one writer, one folder ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_second_writer_is_refused_while_the_first_runs(clean, tmp_path, run_cli, start_segment):
    out = tmp_path / "prep"
    proc = start_segment(out, "-j", "1")
    code, _, err = run_cli(*synthetic_args(out, "--style", "neon"))
    assert code == 2 and "--style" in err and "another gcgan" not in err  # options are checked without the lock
    code, _, err = run_cli(*synthetic_args(out, "-j", "1"))
    assert code == 2
    one_error(err, "another gcgan is writing", str(out), f"pid {proc.pid}", "wait")
    assert proc.wait(timeout=60) == 0
    assert contents(out) == contents(clean)  # the refused run changed nothing


def test_one_folder_for_strips_and_masks_is_refused_before_any_work(tmp_path, run_cli):
    out, both = tmp_path / "prep", tmp_path / "both"
    code, _, err = run_cli("segment", "synthetic", *SMALL, "--outdir", out, "--rgb-dir", both, "--mask-dir", both)
    assert code == 2
    one_error(err, "--rgb-dir", "--mask-dir", str(both))
    code, _, err = run_cli("segment", "synthetic", *SMALL, "--outdir", out, "--rgb-dir", out / "mask")
    assert code == 2
    one_error(err, "--rgb-dir", str(out / "mask"))
    assert not out.exists() and not both.exists()


def test_output_options_that_cannot_be_written_are_refused_before_any_work(tmp_path, tmpfs, run_cli):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"keep me")
    code, _, err = run_cli("segment", "synthetic", *SMALL, "--outdir", blocker)
    assert code == 2
    one_error(err, "--outdir", str(blocker), "file is in the way")
    out = tmp_path / "prep"
    code, _, err = run_cli("segment", "synthetic", *SMALL, "--outdir", out, "--rgb-dir", blocker)
    assert code == 2
    one_error(err, "--rgb-dir", str(blocker))
    assert blocker.read_bytes() == b"keep me"
    read_only = tmpfs("ro,size=1m", "ro")
    code, _, err = run_cli("segment", "synthetic", *SMALL, "--outdir", out, "--mask-dir", read_only)
    assert code == 2
    one_error(err, "--mask-dir", str(read_only), "cannot write there")
    code, _, err = run_cli("segment", "synthetic", *SMALL, "--outdir", read_only / "prep")
    assert code == 2
    one_error(err, "--outdir", str(read_only / "prep"), "cannot create it")
    assert files_under(out) == []


def test_a_full_disk_keeps_every_whole_strip_and_a_rerun_continues(tmp_path, tmpfs, run_cli):
    args = ("--n", "200", "--size", "128", "-j", "1")
    clean = tmp_path / "clean"
    assert run_cli("segment", "synthetic", *args, "--outdir", clean)[0] == 0
    disk = tmpfs("size=1m", "disk")  # room for about a third of the strips
    out = disk / "prep"
    code, _, err = run_cli("segment", "synthetic", *args, "--outdir", out)
    assert code == 2
    one_error(err, "disk full at", str(out), "run the same command again")
    rows = read_manifest(out / "manifest.jsonl")
    assert 0 < len(rows) < 200
    kept, whole = contents(out), contents(clean)
    for name in rows:
        for folder in ("rgb", "mask"):
            assert kept[f"{folder}/{name}.png"] == whole[f"{folder}/{name}.png"]
    assert not [p for p in files_under(out) if p.name.startswith(".")]  # no temp file left
    subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)  # space freed
    code, _, _ = run_cli("segment", "synthetic", *args, "--outdir", out)
    assert code == 0 and report_of(out)["counts"]["already_done"] == len(rows)
    assert contents(out) == contents(clean)


# --- what a PREP_DIR already holds --------------------------------------------------------------


def test_a_binary_manifest_is_refused_and_left_as_it_is(tmp_path, run_cli):
    out = tmp_path / "prep"
    out.mkdir()
    foreign = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    (out / "manifest.jsonl").write_bytes(foreign)
    code, _, err = run_cli("segment", "synthetic", *SMALL, "--outdir", out)
    assert code == 2
    one_error(err, str(out / "manifest.jsonl"), "not a text manifest", "move it away")
    assert (out / "manifest.jsonl").read_bytes() == foreign and files_under(out) == [out / "manifest.jsonl"]


def test_a_manifest_line_cut_short_is_ignored(tmp_path, run_cli):
    out = tmp_path / "prep"
    assert run_cli("segment", "synthetic", *SMALL, "--outdir", out)[0] == 0
    whole = (out / "manifest.jsonl").read_bytes()
    (out / "manifest.jsonl").write_bytes(whole + b'{"name": "0_s0000_3_ereg')  # a killed run's last write
    code, _, _ = run_cli("segment", "synthetic", *SMALL, "--outdir", out)
    assert code == 0 and report_of(out)["counts"]["already_done"] == 16
    assert (out / "manifest.jsonl").read_bytes() == whole


def test_other_strip_options_are_refused_without_overwrite(tmp_path, run_cli):
    out = tmp_path / "prep"
    assert run_cli("segment", "synthetic", "--n", "16", "--size", "32", "-j", "1", "--outdir", out)[0] == 0
    before = contents(out) | {REPORT: (out / REPORT).read_text()}
    changes = ((("--size", "64"), "size 32", "size 64"), (("--style", "wild"), "style studio", "style wild"))
    for extra, old, new in changes:
        code, _, err = run_cli("segment", "synthetic", "--n", "16", "--size", "32", "-j", "1", "--outdir", out, *extra)
        assert code == 2
        line = one_error(err, f"--outdir {out}", "--overwrite", "choose another --outdir")
        assert f"made with {old}; this run asks for {new}" in line
        assert contents(out) | {REPORT: (out / REPORT).read_text()} == before
    code, _, _ = run_cli("segment", "synthetic", "--n", "24", "--size", "32", "-j", "1", "--outdir", out)  # more strips
    assert code == 0 and report_of(out)["counts"] == {"candidates": 24, "written": 8, "already_done": 16, "failed": 0}
    code, _, _ = run_cli("segment", "synthetic", "--n", "24", "--size", "64", "-j", "1", "--outdir", out, "--overwrite")
    assert code == 0 and report_of(out)["options"]["size"] == 64
    rows = read_manifest(out / "manifest.jsonl")
    assert len(rows) == 24
    assert all(cv2.imread(str(out / "rgb" / f"{name}.png")).shape == (64, 64, 3) for name in rows)


# --- inputs that decode although they are broken ---------------------------------------------------


def test_ethx_rows_with_unusable_gaze_are_skipped_and_never_written(tmp_path, run_cli):
    pytest.importorskip("mediapipe")
    import face_fixtures

    h5_dir = tmp_path / "ethx"
    h5_dir.mkdir()
    face = ((0, 0), False)
    rows = [
        (face, 1, 10, -0.2, 0.1),
        (face, 1, 11, math.nan, 0.1),
        (face, 2, 12, 0.1, math.inf),
        (face, 3, 13, 30.0, -45.0),
    ]  # degrees where radians belong
    face_fixtures.write_ethx_subject(h5_dir / "subject0000.h5", rows=rows)
    (h5_dir / "subject0009.h5").mkdir()  # a folder with an .h5 name
    out = tmp_path / "prep"
    code, stdout, err = run_cli("segment", "ethx", "--data", h5_dir, "--outdir", out, "-j", "1")
    assert code == 0 and err == ""
    reasons = {f["item"]: f["reason"] for f in report_of(out)["failed"]}
    assert reasons == {
        "subject0009.h5": "a folder, not an HDF5 file",
        "subject0000.h5 row 1": "gaze is not finite (nan, 0.10000000149011612)",
        "subject0000.h5 row 2": "gaze is not finite (0.10000000149011612, inf)",
        "subject0000.h5 row 3": "gaze (30, -45) is outside the radians range |pitch| <= pi/2, |yaw| <= pi (degrees?)",
    }
    manifest = (out / "manifest.jsonl").read_text()
    written = read_manifest(out / "manifest.jsonl")
    assert [r["row"] for r in written.values()] == [0]
    assert "nan" not in manifest.lower() and "inf" not in manifest.lower()
    assert [p.name for p in files_under(out / "rgb")] == [f"{name}.png" for name in written]
    assert "skipped" in stdout and "4 (first:" in stdout


def test_an_h5_that_is_a_folder_is_one_skipped_item(tmp_path, run_cli):
    h5_dir = tmp_path / "ethx"
    (h5_dir / "subject0000.h5").mkdir(parents=True)
    code, _, err = run_cli("segment", "ethx", "--data", h5_dir, "--outdir", tmp_path / "prep", "-j", "1")
    assert code == 2
    one_error(err, "nothing could be segmented (a folder, not an HDF5 file)", REPORT)
    assert report_of(tmp_path / "prep")["failed"] == [
        {"item": "subject0000.h5", "reason": "a folder, not an HDF5 file"}
    ]


def test_a_truncated_celeba_jpeg_is_skipped_not_segmented_grey(tmp_path, run_cli):
    import face_fixtures

    root = tmp_path / "CelebAMask-HQ"
    face_fixtures.write_celeba(root, ids=(0,), no_face_id=None, annotations=False)
    photo = root / "CelebA-HQ-img" / "0.jpg"
    whole = photo.read_bytes()
    photo.write_bytes(whole[: len(whole) * 6 // 10])  # a download stopped at 60 %
    assert cv2.imread(str(photo)) is not None  # OpenCV decodes it: grey below the cut
    out = tmp_path / "prep"
    code, _, err = run_cli("segment", "celeba", "--data", root, "--outdir", out, "-j", "1")
    assert code == 2
    one_error(err, "nothing could be segmented (truncated image)")
    assert report_of(out)["failed"] == [{"item": "0.jpg", "reason": "truncated image"}]
    assert files_under(out / "rgb") == [] and files_under(out / "mask") == []
    padded = tmp_path / "padded.jpg"  # a whole JPEG with fill bytes after its end marker is fine
    padded.write_bytes(whole + b"\x00" * 32)
    expected = cv2.imdecode(np.frombuffer(whole, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(celeba.read_image(padded, cv2.IMREAD_COLOR), expected)


def test_a_part_annotation_that_is_not_square_is_refused_naming_the_file(tmp_path, run_cli):
    pytest.importorskip("mediapipe")
    import face_fixtures

    root = tmp_path / "CelebAMask-HQ"
    face_fixtures.write_celeba(root, ids=(0,), no_face_id=None, annotations=False)
    parts = root / celeba.ANNOTATION_DIR / "0"
    parts.mkdir(parents=True)
    cv2.imwrite(str(parts / "00000_skin.png"), np.full((3, 7), 255, np.uint8))  # 7 px wide, 3 high
    out = tmp_path / "prep"
    code, _, err = run_cli("segment", "celeba", "--data", root, "--outdir", out, "--use-annotations", "-j", "1")
    assert code == 2
    one_error(err, "00000_skin.png is 7x3 px", "square")
    assert report_of(out)["failed"] == [
        {"item": "0.jpg", "reason": "annotation 00000_skin.png is 7x3 px; CelebAMask-HQ's are square (512x512)"}
    ]
    assert files_under(out / "rgb") == []
