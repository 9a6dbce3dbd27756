"""`gcgan segment` on fixtures in the real formats (ETH-XGaze .h5, CelebAMask-HQ) and on
synthetic data: outputs, manifest, filters, failures, resume, interruption, CLI errors; ETH-XGaze
tracking (`--detect track`) against the detector on every frame."""

import json
import shutil
import signal
import subprocess
import sys
import time

import cv2
import face_fixtures
import h5py
import numpy as np
import pytest
import torch

from gcgan_cli import cli
from gcgan_cli.core import segment as segment_core
from gcgan_cli.core.dataset import GazeMaskDataset
from gcgan_cli.data import ethx, face_strip, masks
from gcgan_cli.data.landmarks import LandmarkDetector
from gcgan_cli.data.manifest import read_manifest
from gcgan_cli.data.prep_dir import PrepDir, strip_name
from gcgan_cli.data.sources import EthxSource, SyntheticSource

pytest.importorskip("mediapipe")  # a dependency only where its wheel exists (Python < 3.13)


@pytest.fixture(scope="module")
def ethx_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ethx")
    face_fixtures.write_ethx_subject(folder / "subject0000.h5")
    face_fixtures.write_ethx_subject(folder / "subject0001.h5", labelled=False)  # test split
    face_fixtures.write_truncated(folder / "subject0002.h5", folder / "subject0000.h5")
    with h5py.File(folder / "subject0003.h5", "w") as h5:  # keys missing
        h5.create_dataset("face_patch", data=np.zeros((2, 224, 224, 3), np.uint8))
    return folder


@pytest.fixture(scope="module")
def ethx_prep(ethx_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("prep") / "ethx"
    code = cli.run(["segment", "ethx", "--data", str(ethx_dir), "--outdir", str(out), "--workers", "1"])
    assert code == 0
    return out


def strips(prep):
    rows = [json.loads(line) for line in (prep / "manifest.jsonl").read_text().splitlines()]
    for row in rows:
        rgb = cv2.imread(str(prep / "rgb" / f"{row['name']}.png"), cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(str(prep / "mask" / f"{row['name']}.png"), cv2.IMREAD_UNCHANGED)
        yield row, rgb, mask


def test_ethx_rows_names_and_labels_match_the_h5(ethx_prep):
    rows = [row for row, _, _ in strips(ethx_prep)]
    kept = [(i, r) for i, r in enumerate(face_fixtures.ETHX_ROWS) if r[1] in (1, 2, 3, 8) and r[2] <= 524]
    expected = []
    for subject, labelled in (("0000", True), ("0001", False)):
        for k, (i, (variant, cam, frame, pitch, yaw)) in enumerate(kept):
            if variant is None:
                continue  # the no-face row
            gaze = (pitch, yaw) if labelled else (None, None)
            expected.append((strip_name(cam, subject, k, *gaze), f"subject{subject}.h5", i, cam, frame))
    assert [(r["name"], r["file"], r["row"], r["camera"], r["frame"]) for r in rows] == expected
    for row in rows:
        if row["subject"] == "0000":
            truth = face_fixtures.ETHX_ROWS[row["row"]]
            assert row["pitch"] == pytest.approx(truth[3], abs=1e-6) and row["yaw"] == pytest.approx(truth[4], abs=1e-6)
        else:
            assert row["pitch"] is None and row["yaw"] is None
        assert row["source"] == "ethx"


def test_ethx_strips_have_all_parts_in_place(ethx_prep):
    for row, rgb, mask in strips(ethx_prep):
        assert rgb.shape == (256, 256, 3) and mask.shape == (256, 256) and mask.dtype == np.uint8
        assert set(range(6)) <= set(np.unique(mask)), row["name"]  # 0 bg ... 5 iris
        rows = {c: np.nonzero(mask == c)[0].mean() for c in (masks.EYEBROW, masks.EYE, masks.NOSE)}
        assert rows[masks.EYEBROW] < rows[masks.EYE] < rows[masks.NOSE]
        # One iris per eye, each inside the box of its own eye region.
        for side in (slice(0, 128), slice(128, 256)):
            half = mask[:, side]
            iris = np.argwhere(half == masks.IRIS)
            eye = np.argwhere(np.isin(half, (masks.EYE, masks.IRIS)))
            assert len(iris) > 20
            assert (iris.min(0) >= eye.min(0)).all() and (iris.max(0) <= eye.max(0)).all()
            assert len(np.argwhere(half == masks.EYE)) > len(iris) / 4


def test_ethx_report_lists_every_skip_with_its_reason(ethx_prep):
    report = json.loads((ethx_prep / "segment_report.json").read_text())
    reasons = {f["item"]: f["reason"] for f in report["failed"]}
    assert reasons["subject0000.h5 row 5"] == "no face found"
    assert reasons["subject0001.h5 row 5"] == "no face found"
    assert "unreadable HDF5" in reasons["subject0002.h5"]
    assert "missing key(s) frame_index, cam_index" in reasons["subject0003.h5"]
    assert report["counts"] == {"candidates": 10, "written": 8, "already_done": 0, "failed": 4}
    assert (ethx_prep / "preview.png").exists()


def test_ethx_filters(ethx_dir, tmp_path):
    out = tmp_path / "all"
    assert (
        cli.run(
            [
                "segment",
                "ethx",
                "--data",
                str(ethx_dir),
                "--outdir",
                str(out),
                "-j",
                "1",
                "--cameras",
                "all",
                "--max-frame",
                "all",
                "--subjects",
                "0000",
            ]
        )
        == 0
    )
    rows = read_manifest(out / "manifest.jsonl")
    assert sorted(r["camera"] for r in rows.values()) == [1, 2, 3, 4, 8, 8]  # cam 4 and frame 600 kept
    assert 600 in {r["frame"] for r in rows.values()}
    assert {r["subject"] for r in rows.values()} == {"0000"}
    source = EthxSource(ethx_dir, keep=ethx.EthxFilter(cameras=(8,), subjects=("0000",)), limit=1)
    tasks, _ = source.tasks()
    assert [t.row["camera"] for t in tasks] == [8]


def test_rerun_skips_and_overwrite_redoes(ethx_dir, ethx_prep, tmp_path, run_cli):
    out = tmp_path / "copy"
    shutil.copytree(ethx_prep, out)
    code, stdout, _ = run_cli("segment", "ethx", "--data", ethx_dir, "--outdir", out, "-j", "1")
    report = json.loads((out / "segment_report.json").read_text())
    assert code == 0 and report["counts"]["written"] == 0 and report["counts"]["already_done"] == 8
    assert "already done" in stdout
    (out / "rgb" / f"{next(iter(read_manifest(out / 'manifest.jsonl')))}.png").unlink()  # a lost file is redone
    cli.run(["segment", "ethx", "--data", str(ethx_dir), "--outdir", str(out), "-j", "1"])
    assert json.loads((out / "segment_report.json").read_text())["counts"]["written"] == 1
    cli.run(["segment", "ethx", "--data", str(ethx_dir), "--outdir", str(out), "-j", "1", "--overwrite"])
    assert json.loads((out / "segment_report.json").read_text())["counts"]["written"] == 8
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 8  # no duplicate rows


@pytest.mark.slow
def test_worker_processes_give_the_same_strips(ethx_dir, ethx_prep, tmp_path):
    out = tmp_path / "pool"
    assert cli.run(["segment", "ethx", "--data", str(ethx_dir), "--outdir", str(out), "--workers", "2"]) == 0
    for row, rgb, mask in strips(ethx_prep):
        assert np.array_equal(cv2.imread(str(out / "rgb" / f"{row['name']}.png")), rgb[:, :, :3])
        assert np.array_equal(cv2.imread(str(out / "mask" / f"{row['name']}.png"), cv2.IMREAD_UNCHANGED), mask)


def test_ethx_strips_pack_and_read_back(ethx_dir, ethx_prep, tmp_path, run_cli):
    code, _, err = run_cli("pack", "--data", ethx_prep, "--outdir", tmp_path / "mixed")
    assert code == 2 and "have no gaze" in err  # train and test subjects: labelled and unlabelled rows
    train = tmp_path / "train"
    assert (
        cli.run(["segment", "ethx", "--data", str(ethx_dir), "--outdir", str(train), "--subjects", "0000", "-j", "1"])
        == 0
    )
    assert cli.run(["pack", "--data", str(train), "--outdir", str(tmp_path / "db"), "-j", "1"]) == 0
    dataset = GazeMaskDataset(tmp_path / "db", seg_dim=6)
    rows = read_manifest(train / "manifest.jsonl")
    assert len(dataset) == len(rows) == 4 and dataset.labelled
    for index in range(len(dataset)):
        item, row = dataset[index], rows[dataset.record(index).name]
        assert item["gaze"].tolist() == pytest.approx([row["pitch"], row["yaw"]], abs=1e-6)
        assert item["image"].shape == (3, 256, 256) and torch.equal(item["mask"].sum(0), torch.ones(256, 256))
    assert (
        cli.run(["pack", "--data", str(ethx_prep), "--outdir", str(tmp_path / "all"), "--unlabelled", "-j", "1"]) == 0
    )
    assert len(GazeMaskDataset(tmp_path / "all")) == 8


@pytest.mark.parametrize("annotations", [False, True])
def test_celeba(tmp_path, annotations):
    root = tmp_path / "CelebAMask-HQ"
    face_fixtures.write_celeba(root, ids=(0, 1, 2), no_face_id=2, annotations=annotations)
    (root / "CelebA-HQ-img" / "3.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "prep"
    args = ["segment", "celeba", "--data", str(root), "--outdir", str(out), "-j", "1"] + (
        ["--use-annotations"] if annotations else []
    )
    assert cli.run(args) == 0
    rows = list(read_manifest(out / "manifest.jsonl").values())
    assert [r["name"] for r in rows] == ["0_s0_0_eregion_0_0_c_0", "0_s0_1_eregion_0_0_c_0"]
    assert all(r["pitch"] is None and r["annotations"] == annotations for r in rows)
    report = json.loads((out / "segment_report.json").read_text())
    assert report["failed"] == [
        {"item": "2.jpg", "reason": "no face found"},
        {"item": "3.jpg", "reason": "unreadable image"},
    ]
    for row in rows:
        mask = cv2.imread(str(out / "mask" / f"{row['name']}.png"), cv2.IMREAD_UNCHANGED)
        assert set(range(6)) <= set(np.unique(mask))
    # The stage-2 domain packs as an unlabelled DB on its own (the manifest says null, not the 0_0 name).
    assert cli.run(["pack", "--data", str(out), "--outdir", str(tmp_path / "db"), "-j", "1"]) == 0
    dataset = GazeMaskDataset(tmp_path / "db")
    assert len(dataset) == 2 and not dataset.labelled and "gaze" not in dataset[1]


def test_synthetic_cli_is_deterministic_and_labelled(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert (
        cli.run(["segment", "synthetic", "--n", "24", "--seed", "5", "--size", "64", "--outdir", str(a), "-j", "1"])
        == 0
    )
    assert (
        cli.run(["segment", "synthetic", "--n", "24", "--seed", "5", "--size", "64", "--outdir", str(b), "-j", "2"])
        == 0
    )
    for name in read_manifest(a / "manifest.jsonl"):
        for folder in ("rgb", "mask"):
            assert (a / folder / f"{name}.png").read_bytes() == (b / folder / f"{name}.png").read_bytes()
    rows = list(read_manifest(a / "manifest.jsonl").values())
    assert len(rows) == 24 and all(-0.71 < r["pitch"] < 0.4 for r in rows)
    assert rows[0]["subject"] == "0000" and rows[-1]["subject"] == "0001"


def test_interrupted_run_keeps_whole_files_and_resumes(tmp_path, monkeypatch):
    prep = PrepDir.at(tmp_path / "prep")
    source = SyntheticSource(n=12, size=32)
    real_make, calls = SyntheticSource.make, []

    def make_then_interrupt(self, item):
        calls.append(item)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_make(self, item)

    monkeypatch.setattr(SyntheticSource, "make", make_then_interrupt)
    result = segment_core.segment(source, prep, workers=1)
    assert result.interrupted and result.written == 4
    assert len(read_manifest(prep.manifest)) == 4
    assert json.loads(prep.report.read_text())["interrupted"] is True
    assert not list(prep.rgb_dir.glob(".*")) and not list(prep.mask_dir.glob(".*"))
    monkeypatch.setattr(SyntheticSource, "make", real_make)
    again = segment_core.segment(source, prep, workers=1)
    assert (again.written, again.already_done) == (8, 4)
    assert len(read_manifest(prep.manifest)) == 12


def test_user_errors_are_one_line(tmp_path, run_cli, ethx_dir):
    code, _, err = run_cli("segment", "ethx", "--data", tmp_path / "nope", "--outdir", tmp_path / "o")
    assert code == 2 and "not a folder" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("segment", "ethx", "--data", ethx_dir, "--outdir", tmp_path / "o", "--cameras", "1,x")
    assert code == 2 and "--cameras" in err
    code, _, err = run_cli("segment", "ethx", "--data", ethx_dir, "--outdir", tmp_path / "o", "--subjects", "0042")
    assert code == 2 and "--subjects" in err and "0042" in err
    code, _, err = run_cli("segment", "synthetic", "--outdir", tmp_path / "o", "--style", "neon")
    assert code == 2 and "--style" in err and "studio" in err
    code, _, err = run_cli("segment", "celeba", "--data", tmp_path, "--outdir", tmp_path / "o")
    assert code == 2 and "no CelebA-HQ images" in err


def test_nothing_usable_exits_non_zero_with_a_report(tmp_path, run_cli, ethx_dir):
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(ethx_dir / "subject0002.h5", bad / "subject0002.h5")
    code, _, err = run_cli("segment", "ethx", "--data", bad, "--outdir", tmp_path / "o")
    assert code == 2 and "nothing could be segmented" in err and "segment_report.json" in err
    assert json.loads((tmp_path / "o" / "segment_report.json").read_text())["failed"][0]["item"] == "subject0002.h5"


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c_and_the_run_resumes(tmp_path):
    out = tmp_path / "prep"
    args = [
        sys.executable,
        "-m",
        "gcgan_cli",
        "segment",
        "synthetic",
        "--n",
        "2000",
        "--size",
        "32",
        "--outdir",
        str(out),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / "manifest.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (manifest.exists() and manifest.stat().st_size > 0):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    report = json.loads((out / "segment_report.json").read_text())
    assert report["interrupted"] is True and 0 < report["counts"]["written"] < 2000
    assert len(read_manifest(manifest)) == report["counts"]["written"]
    assert not list((out / "rgb").glob(".*")) and not list((out / "mask").glob(".*"))
    assert cli.run(["segment", "synthetic", "--n", "2000", "--size", "32", "--outdir", str(out), "-j", "1"]) == 0
    assert len(read_manifest(manifest)) == 2000


# --- `--detect track`: the landmark model follows the face through a (subject, camera) run ---

VIEW = face_strip.ETHX_VIEW


@pytest.fixture(scope="module")
def detector():
    with LandmarkDetector() as found:
        yield found


@pytest.fixture
def calls(monkeypatch):
    """How often this process ran the detector (`find`) and the landmark model alone (`follow`)."""
    counts = {"find": 0, "follow": 0}
    for name in counts:
        real = getattr(LandmarkDetector, name)

        def counted(self, *args, _real=real, _name=name):
            counts[_name] += 1
            return _real(self, *args)

        monkeypatch.setattr(LandmarkDetector, name, counted)
    return counts


def jitter(frames: int, seed: int) -> list[tuple[int, int]]:
    """Shifts that jump anywhere within +-6 px every frame (benchmarks/segment.py's worst case)."""
    return [tuple(map(int, s)) for s in np.random.default_rng(seed).integers(-6, 7, (frames, 2))]


@pytest.mark.parametrize(
    ("shifts", "flip", "detections"),
    [
        (face_fixtures.drift(24, 1), False, 0),
        (face_fixtures.drift(24, 2), True, 0),
        (jitter(24, 3), False, None),
    ],
    ids=["drift", "drift-mirrored", "jitter"],
)
def test_tracked_landmarks_agree_with_the_detector_path(detector, calls, shifts, flip, detections):
    frames = [face_fixtures.face_rgb(shift=s, flip=flip) for s in shifts]
    anchor = face_strip.find_anchor(frames[0], detector, VIEW)
    calls["find"] = 0
    tracked = [face_strip.locate_near(rgb, detector, VIEW, anchor)[0] for rgb in frames]
    assert detections is None or calls["find"] == detections
    errors = [
        np.nanmean(np.linalg.norm(face_strip.locate(rgb, detector, VIEW)[0] - points, axis=1))
        for rgb, points in zip(frames, tracked)
    ]
    assert errors[0] == 0.0  # the anchor frame: the detector's region, so its very landmarks
    assert max(errors) <= 1.5, np.round(errors, 2)  # source pixels of the 224 patch, mean over the 478 landmarks


def source_centres(mask: np.ndarray, box) -> list[np.ndarray]:
    """The centre of each class in each half of a strip (subject's right and left), in source pixels."""
    size = mask.shape[0]
    centres = []
    for class_id in (masks.SKIN, masks.EYE, masks.EYEBROW, masks.NOSE, masks.IRIS):
        for half in (slice(0, size // 2), slice(size // 2, size)):
            rows, cols = np.nonzero(mask[:, half] == class_id)
            cols = cols + half.start
            centres.append(np.array([box.x0, box.y0]) + (np.array([cols.mean(), rows.mean()]) + 0.5) * box.side / size)
    return centres


@pytest.mark.slow
def test_tracked_masks_are_anatomically_the_same(detector):
    """Same classes, and every class's centre (per eye side) where the detector path puts it, within
    what separates the detector path from itself on the photo moved by one pixel."""
    moved, nudged = [], []
    step = 224 / (face_fixtures.FACE_BOX[3] - face_fixtures.FACE_BOX[2])  # patch pixels per photo pixel
    for seed, flip in ((4, False), (5, True)):
        shifts = face_fixtures.drift(16, seed)
        anchor = face_strip.find_anchor(face_fixtures.face_rgb(shift=shifts[0], flip=flip), detector, VIEW)
        for dy, dx in shifts:
            rgb = face_fixtures.face_rgb(shift=(dy, dx), flip=flip)
            points, box = face_strip.locate(rgb, detector, VIEW)
            mask = face_strip.strip_from_landmarks(rgb, points, box, 256)[1]
            near = face_strip.locate_near(rgb, detector, VIEW, anchor)
            tracked = face_strip.strip_from_landmarks(rgb, *near, 256)[1]
            assert set(np.unique(tracked)) == set(np.unique(mask))
            centres = source_centres(mask, box)
            moved += [np.linalg.norm(a - b) for a, b in zip(source_centres(tracked, near[1]), centres)]
            # The photo one pixel down and right: the face moves up and left (right when mirrored).
            other = face_fixtures.face_rgb(shift=(dy + 1, dx + 1), flip=flip)
            found = face_strip.locate(other, detector, VIEW)
            expected = np.array([step if flip else -step, -step])
            shifted = source_centres(face_strip.strip_from_landmarks(other, *found, 256)[1], found[1])
            nudged += [np.linalg.norm(a - b - expected) for a, b in zip(shifted, centres)]
    for distances in (nudged, moved):  # the bound holds for the detector path itself, then for tracking
        assert max(distances) <= 2.5 and np.mean(distances) <= 0.75, (max(distances), np.mean(distances))


def test_a_lost_or_moved_face_is_looked_at_again(detector, calls):
    anchor = face_strip.find_anchor(face_fixtures.face_rgb(), detector, VIEW)
    calls.update(find=0, follow=0)
    with pytest.raises(face_strip.NoFace):
        face_strip.locate_near(face_fixtures.no_face(), detector, VIEW, anchor)
    assert calls == {"find": 1, "follow": 1}  # the model saw no face there: the detector decided
    calls.update(find=0, follow=0)
    off = face_fixtures.face_rgb(shift=(10, 10))
    points = face_strip.locate_near(off, detector, VIEW, anchor)[0]
    assert calls == {"find": 0, "follow": 2}  # a second look, where the first one found the face
    assert np.nanmean(np.linalg.norm(points - face_strip.locate(off, detector, VIEW)[0], axis=1)) <= 1.5
    calls.update(find=0, follow=0)
    far = face_fixtures.face_rgb(shift=(20, 0))
    points = face_strip.locate_near(far, detector, VIEW, anchor)[0]
    assert calls == {"find": 1, "follow": 2}  # the second look moved again: the detector decided
    assert np.array_equal(points, face_strip.locate(far, detector, VIEW)[0], equal_nan=True)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """Two subjects whose cameras each see a slowly drifting face: 40 frames x cameras 1, 2 and
    6 frames x cameras 1, 8 (a span and a bit, then less than one)."""
    folder = tmp_path_factory.mktemp("runs")
    face_fixtures.write_ethx_subject(folder / "subject0000.h5", face_fixtures.camera_runs(40, (1, 2), seed=0))
    face_fixtures.write_ethx_subject(folder / "subject0001.h5", face_fixtures.camera_runs(6, (1, 8), seed=3))
    return folder


def test_each_subject_and_camera_starts_its_own_spans(runs_dir, calls):
    source = EthxSource(runs_dir, detect="track")
    tasks, _ = source.tasks()
    by_row = {task.item[:2]: task for task in tasks}
    seen: dict[tuple, int] = {}
    for task in tasks:
        path, row, first = task.item
        run = (path, task.row["camera"])
        seen[run] = seen.get(run, 0) + 1
        assert (first == row) == ((seen[run] - 1) % face_strip.TRACK_SPAN == 0)  # frames 1, 33, ... of a run
        assert by_row[path, first].row["camera"] == run[1]  # a span stays within its run
    assert sorted(seen.values()) == [6, 6, 40, 40]
    calls.update(find=0, follow=0)
    for task in tasks:
        source.make(task.item)
    anchors = {(t.item[0], t.item[2]) for t in tasks}
    assert len(anchors) == 6 and calls == {"find": 6, "follow": len(tasks)}  # one detection per span
    assert {t.item[2] for t in EthxSource(runs_dir).tasks()[0]} == {None}  # the default: the detector every frame


def pngs(prep) -> dict:
    return {p.relative_to(prep): p.read_bytes() for p in sorted(prep.glob("*/*.png"))}


@pytest.mark.slow
def test_tracking_gives_the_same_strips_with_any_workers_and_on_resume(runs_dir, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    track = ["segment", "ethx", "--data", str(runs_dir), "--detect", "track"]
    assert cli.run([*track, "--outdir", str(one), "-j", "1"]) == 0
    assert cli.run([*track, "--outdir", str(two), "-j", "2"]) == 0
    names = list(read_manifest(one / "manifest.jsonl"))
    assert len(names) == 92 and list(read_manifest(two / "manifest.jsonl")) == names
    assert pngs(two) == pngs(one)
    for name in names[5::3]:  # strips lost: redone alone, each from its own frame and its span's first
        (two / "rgb" / f"{name}.png").unlink()
    assert cli.run([*track, "--outdir", str(two), "-j", "2"]) == 0
    assert json.loads((two / "segment_report.json").read_text())["counts"]["written"] == len(names[5::3])
    assert pngs(two) == pngs(one)


def test_the_detect_mode_is_a_strip_option(runs_dir, tmp_path, run_cli):
    out = tmp_path / "prep"
    args = ("segment", "ethx", "--data", runs_dir, "--outdir", out, "--subjects", "0001", "-j", "1")
    code, _, _ = run_cli(*args, "--detect", "track")
    assert code == 0 and json.loads((out / "segment_report.json").read_text())["options"]["detect"] == "track"
    code, _, err = run_cli(*args)
    assert code == 2 and "detect every" in err and "detect track" in err and len(err.strip().splitlines()) == 1
    code, _, _ = run_cli(*args, "--overwrite")
    assert code == 0 and json.loads((out / "segment_report.json").read_text())["options"]["detect"] == "every"
    code, _, err = run_cli(*args, "--detect", "sometimes")
    assert code == 2 and "--detect" in err and len(err.strip().splitlines()) == 1
