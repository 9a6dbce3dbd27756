"""Bad input and faults in `gcgan sample`, `interpolate`, `gaze` and `inception`: each ends with one
`error:` line naming the option or file (exit 2) before anything is written, and what is on disk
is whole or absent: impossible, degree-valued and extrapolated gazes, an oversized gaze grid, NaN
latents, a killed sample run, a second writer, outputs in the way, read-only or full places,
existing outputs without --overwrite, bad gaze arrays in every reader, unsafe or cut weights."""

import json
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch
from faults import edited, files_of, one_error, packed, synthetic_prep
from test_gaze import write_mpii, write_unityeyes

from gcgan_cli import cli
from gcgan_cli.core.gaze.estimator import load_estimator
from gcgan_cli.data import gaze_db

# Slow: every test but the gaze readers' reads `world`, a trained checkpoint and a fitted estimator.
pytestmark = [pytest.mark.faults, pytest.mark.slow]

CPU = ("--device", "cpu")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny DB, a 2-step checkpoint, two samples with latents and a 1-epoch face estimator."""
    root = tmp_path_factory.mktemp("faults_sample_gaze")
    packed(synthetic_prep(root / "prep"), root / "db")
    steps = (
        [
            "train",
            "--data",
            root / "db",
            "--outdir",
            root / "run",
            "--preset",
            "tiny",
            "--workers",
            "0",
            "--iters",
            "2",
            "--viz-every",
            "0",
            *CPU,
        ],
        [
            "sample",
            "--network",
            root / "run" / "checkpoints" / "0000002.pt",
            "--outdir",
            root / "samples",
            "--n",
            "2",
            "--save-latent",
            *CPU,
        ],
        ["gaze", "fit", "--data", root / "db", "--out", root / "est.pt", "--epochs", "1", "--size", "16", *CPU],
    )
    for args in steps:
        assert cli.run([str(a) for a in args]) == 0, args
    return {
        "root": root,
        "db": root / "db",
        "ckpt": root / "run" / "checkpoints" / "0000002.pt",
        "latent": root / "samples" / "000000_latent.npy",
        "est": root / "est.pt",
        "images": sorted((root / "prep" / "rgb").glob("*.png"))[:2],
    }


# --- sample ---


@pytest.mark.parametrize(
    "args, words",
    [
        (("--gaze", "nan,inf"), ("--gaze nan,inf", "not finite")),
        (("--gaze", "10,10"), ("--gaze 10,10", "degrees", "radians")),
        (("--gaze", "1.2,0"), ("--gaze 1.2,0", "pitch 1.200", "training gazes", "--allow-extrapolation")),
        (("--gaze-grid", "100000"), ("--gaze-grid", "64")),
    ],
)
def test_sample_refuses_a_bad_gaze_before_creating_anything(world, tmp_path, run_cli, args, words):
    code, _, err = run_cli(
        "sample", "--network", world["ckpt"], "--outdir", tmp_path / "new" / "out", "--n", "2", *args, *CPU
    )
    assert code == 2
    one_error(err, *words)
    assert not (tmp_path / "new").exists()


def test_sample_refuses_a_label_file_in_degrees_or_beyond_the_training_gazes(world, tmp_path, run_cli):
    labels = gaze_db.read_labels(world["db"] / gaze_db.LABELS_FILE)
    for name, values, words in (
        ("degrees.npy", np.degrees(labels), ("degrees",)),
        ("far.npy", labels + np.float32([0.0, 0.8]), ("yaw", "--allow-extrapolation")),
    ):
        np.save(tmp_path / name, values.astype(np.float32))
        code, _, err = run_cli(
            "sample",
            "--network",
            world["ckpt"],
            "--outdir",
            tmp_path / "new" / "out",
            "--gaze-labels",
            tmp_path / name,
            "--n",
            "4",
            *CPU,
        )
        assert code == 2
        one_error(err, name, *words)
        assert not (tmp_path / "new").exists()
    out = tmp_path / "allowed"
    code, _, _ = run_cli(
        "sample",
        "--network",
        world["ckpt"],
        "--outdir",
        out,
        "--gaze",
        "1.2,0",
        "--allow-extrapolation",
        "--n",
        "1",
        *CPU,
    )
    assert code == 0
    assert json.loads((out / "samples.jsonl").read_text())["pitch"] == pytest.approx(1.2)


def test_a_killed_sample_run_leaves_no_folder_and_a_rerun_matches_a_clean_run(world, tmp_path, run_cli):
    args = ["sample", "--network", str(world["ckpt"]), "--n", "50", "--batch", "1", "--no-sheet", *CPU]
    out = tmp_path / "out"
    run = subprocess.Popen(
        [sys.executable, "-m", "gcgan_cli", *args, "--outdir", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    building = tmp_path / f".out.tmp-{run.pid}"
    deadline = time.monotonic() + 60
    while run.poll() is None and time.monotonic() < deadline:
        if building.is_dir() and len(list(building.iterdir())) >= 9:  # three samples written
            break
        time.sleep(0.01)
    run.kill()
    run.wait()
    assert building.is_dir() and not out.exists()  # killed mid-way: the half set only under its hidden name
    assert run_cli(*args, "--outdir", out)[0] == 0
    assert run_cli(*args, "--outdir", tmp_path / "clean")[0] == 0
    rerun, clean = files_of(out), files_of(tmp_path / "clean")
    assert len(rerun) == 3 * 50 + 2 and rerun == clean  # 3 files per sample, metadata.jsonl, samples.jsonl
    assert not building.exists()  # the killed run's leftovers are gone


@pytest.mark.parametrize("command", ["sample", "interpolate"])
def test_a_second_writer_stops_at_once(world, tmp_path, run_cli, lock_holder, command):
    out = tmp_path / "out"
    holder = lock_holder(out, command)
    extra = (
        ("--n", "1") if command == "sample" else ("--latent", world["latent"], "--component", "nose", "--frames", "2")
    )
    code, _, err = run_cli(command, "--network", world["ckpt"], "--outdir", out, *extra, *CPU)
    assert code == 2
    one_error(err, "another gcgan is writing", out, f"pid {holder.pid}")
    assert not out.exists()


def test_sample_outdir_in_the_way_or_holding_other_files(world, tmp_path, run_cli):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"mine")
    code, _, err = run_cli("sample", "--network", world["ckpt"], "--outdir", blocker, "--n", "1", *CPU)
    assert code == 2
    one_error(err, "--outdir", "file is in the way")
    assert blocker.read_bytes() == b"mine" and [p.name for p in tmp_path.iterdir()] == ["file"]
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_bytes(b"mine")
    code, _, err = run_cli("sample", "--network", world["ckpt"], "--outdir", full, "--n", "1", *CPU)
    assert code == 2
    one_error(err, "--outdir", "not empty", "--overwrite")
    assert files_of(full) == {"notes.txt": b"mine"}
    assert run_cli("sample", "--network", world["ckpt"], "--outdir", full, "--n", "1", "--overwrite", *CPU)[0] == 0
    assert sorted(files_of(full)) == [
        "000000.png",
        "000000_mask.png",
        "000000_mask_color.png",
        "contact_sheet.png",
        "metadata.jsonl",
        "samples.jsonl",
    ]


def test_sample_on_a_full_disk_names_it_and_leaves_nothing(world, tmpfs, run_cli):
    disk = tmpfs("size=64k")
    code, _, err = run_cli("sample", "--network", world["ckpt"], "--outdir", disk / "out", "--n", "40", *CPU)
    assert code == 2
    one_error(err, "disk full", disk / "out")
    assert list(disk.iterdir()) == []  # no samples, no half folder, no lock file


@pytest.mark.parametrize(
    "args, option",
    [
        (("sample", "--network", "{ckpt}", "--n", "1", "--outdir", "{ro}/out"), "--outdir"),
        (
            (
                "interpolate",
                "--network",
                "{ckpt}",
                "--latent",
                "{latent}",
                "--component",
                "nose",
                "--frames",
                "2",
                "--outdir",
                "{ro}/out",
            ),
            "--outdir",
        ),
        (("gaze", "fit", "--data", "{db}", "--size", "16", "--epochs", "1", "--out", "{ro}/e.pt"), "--out"),
        (("gaze", "predict", "--model", "{est}", "{image}", "--out", "{ro}/p.csv"), "--out"),
        (("inception", "--data", "{db}", "--out", "{ro}/s.npz"), "--out"),
    ],
)
def test_outputs_in_a_read_only_place_are_refused_before_any_work(world, tmpfs, run_cli, args, option):
    ro = tmpfs("ro,size=1m")
    values = {
        "ckpt": world["ckpt"],
        "latent": world["latent"],
        "db": world["db"],
        "est": world["est"],
        "image": world["images"][0],
        "ro": ro,
    }
    code, _, err = run_cli(*(a.format(**values) for a in args), *CPU)
    assert code == 2
    one_error(err, option, ro, "Read-only file system")


# --- interpolate ---


def test_interpolate_refuses_a_nan_latent_or_a_bad_gaze_before_creating_anything(world, tmp_path, run_cli):
    latent = np.load(world["latent"])
    latent[3, 5] = np.nan
    np.save(tmp_path / "nan.npy", latent)
    out = tmp_path / "new" / "out"
    base = ("interpolate", "--network", world["ckpt"], "--outdir", out, "--component", "nose", "--frames", "2", *CPU)
    code, _, err = run_cli(*base, "--latent", tmp_path / "nan.npy")
    assert code == 2
    one_error(err, "--latent", "nan.npy", "NaN")
    for gaze, word in (("10,10", "degrees"), ("0,1.4", "--allow-extrapolation")):
        code, _, err = run_cli(*base, "--latent", world["latent"], "--gaze", gaze)
        assert code == 2
        one_error(err, f"--gaze {gaze}", word)
    beside = tmp_path / "beside"
    beside.mkdir()
    shutil.copy(world["latent"], beside)
    (beside / "samples.jsonl").write_text("{not json\n")
    code, _, err = run_cli(*base, "--latent", beside / world["latent"].name)
    assert code == 2
    one_error(err, "samples.jsonl:1", "--gaze")
    assert not (tmp_path / "new").exists()


def test_interpolate_keeps_existing_animations_without_overwrite(world, tmp_path, run_cli):
    def interpolate(outdir, *more):
        return run_cli(
            "interpolate",
            "--network",
            world["ckpt"],
            "--latent",
            world["latent"],
            "--outdir",
            outdir,
            "--component",
            "nose",
            "--frames",
            "2",
            "--keyframes",
            "2",
            *more,
            *CPU,
        )

    out = tmp_path / "out"
    assert interpolate(out)[0] == 0
    gif = out / "00_nose.gif"
    gif.write_bytes(b"mine")
    code, _, err = interpolate(out)
    assert code == 2
    one_error(err, "--outdir", "00_nose.gif", "--overwrite")
    assert gif.read_bytes() == b"mine"
    assert interpolate(out, "--overwrite")[0] == 0
    assert gif.read_bytes().startswith(b"GIF")
    code, _, err = interpolate(gif)
    assert code == 2
    one_error(err, "--outdir", "00_nose.gif", "file is in the way")
    assert gif.read_bytes().startswith(b"GIF") and sorted(p.name for p in out.iterdir()) == ["00_nose.gif"]


# --- gaze fit, predict, eval ---


def test_gaze_fit_and_predict_keep_an_existing_out_without_overwrite(world, tmp_path, run_cli):
    fit = ("gaze", "fit", "--data", world["db"], "--size", "16", "--epochs", "1", *CPU)
    predict = ("gaze", "predict", "--model", world["est"], *world["images"], *CPU)
    for command, out in ((fit, tmp_path / "e.pt"), (predict, tmp_path / "p.csv")):
        out.write_bytes(b"mine")
        code, _, err = run_cli(*command, "--out", out)
        assert code == 2
        one_error(err, f"--out {out} exists", "--overwrite")
        assert out.read_bytes() == b"mine"
        assert run_cli(*command, "--out", out, "--overwrite")[0] == 0
    assert load_estimator(tmp_path / "e.pt", torch.device("cpu"))[1]["size"] == 16
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == "image,pitch,yaw"
    code, _, err = run_cli(*fit, "--out", tmp_path)
    assert code == 2
    one_error(err, "--out", "is a folder")
    (tmp_path / "f").write_bytes(b"mine")
    code, _, err = run_cli(*predict, "--out", tmp_path / "f" / "p.csv")
    assert code == 2
    one_error(err, "--out", "is a file, not a folder")


def test_gaze_fit_names_a_bad_val_source(world, tmp_path, run_cli):
    (tmp_path / "broken.h5").write_bytes(b"not hdf5")
    (tmp_path / "folder.h5").mkdir()
    for val, words in (
        (tmp_path / "nope", ("--val", "nope", "no such file")),
        (tmp_path / "broken.h5", ("--val", "broken.h5", "not a readable HDF5 file")),
        (tmp_path / "folder.h5", ("--val", "folder.h5", "not a gaze source")),
    ):
        code, _, err = run_cli("gaze", "fit", "--data", world["db"], "--val", val, "--out", tmp_path / "e.pt", *CPU)
        assert code == 2
        one_error(err, *words)
        assert "--data" not in err
    assert not (tmp_path / "e.pt").exists()


def bad_mpii(path, gaze):
    write_mpii(path)
    with h5py.File(path, "a") as handle:
        del handle["p01/gaze"]
        handle["p01/gaze"] = gaze
    return path


def bad_unityeyes(folder):
    write_unityeyes(folder)
    record = json.loads((folder / "2.json").read_text())
    record["eye_details"]["look_vec"] = "(0, 0, 0, 0)"
    (folder / "2.json").write_text(json.dumps(record))
    return folder


def bad_translated(folder):
    folder.mkdir()
    (folder / "transfer.json").write_text("{}")
    rows = [
        {"file": f"{i}.png", "id": str(i), "gaze": gaze, "head": None, "landmarks": None}
        for i, gaze in enumerate(([0.1, 0.2], [20.0, 35.0]))
    ]
    (folder / "manifest.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


@pytest.mark.parametrize(
    "make, words",
    [
        (
            lambda p: bad_mpii(p / "vec.h5", np.tile([0.0, 0.0, -1.0], (6, 1))),
            ("vec.h5:/p01/gaze", "[N, 3]", "pitch, yaw"),
        ),
        (lambda p: bad_mpii(p / "nan.h5", np.full((6, 2), np.nan)), ("nan.h5:/p01/gaze", "not finite")),
        (lambda p: bad_mpii(p / "deg.h5", np.full((6, 2), 30.0)), ("deg.h5:/p01/gaze", "degrees")),
        (lambda p: bad_unityeyes(p / "unity"), ("2.json", "look_vec", "no direction")),
        (lambda p: bad_translated(p / "translated"), ("manifest.jsonl", "degrees")),
    ],
)
def test_every_gaze_reader_refuses_bad_gaze_arrays(tmp_path, run_cli, make, words):
    data = make(tmp_path)
    code, _, err = run_cli(
        "gaze", "fit", "--data", data, "--input", "eye", "--epochs", "1", "--out", tmp_path / "e.pt", *CPU
    )
    assert code == 2
    one_error(err, "--data", *words)
    assert not (tmp_path / "e.pt").exists()


def test_gaze_eval_on_a_db_with_a_cut_gaze_record(world, tmp_path, run_cli):
    db = edited(world["db"], tmp_path / "db", lambda txn: txn.put(gaze_db.key("gaze", 3), b"cut"))
    code, out, err = run_cli(
        "gaze", "eval", "--model", world["est"], "--data", db, "--out", tmp_path / "plot.png", *CPU
    )
    assert code == 2 and out == ""
    one_error(err, db)
    assert not (tmp_path / "plot.png").exists()


# --- inception ---


class Payload:
    """An object a weights_only load must refuse: unpickling it would run code."""


def test_unsafe_empty_or_cut_inception_weights_are_one_line(world, tmp_path, run_cli):
    torch.save({"Conv2d_1a_3x3.conv.weight": Payload()}, tmp_path / "unsafe.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3)}, tmp_path / "whole.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "whole.pth").read_bytes()[:300])
    for name, words in (
        ("unsafe.pth", ("never unpickles code",)),
        ("empty.pth", ("not a readable torch weights file",)),
        ("cut.pth", ("not a readable torch weights file",)),
    ):
        code, _, err = run_cli(
            "inception",
            "--data",
            world["db"],
            "--out",
            tmp_path / "s.npz",
            "--inception-weights",
            tmp_path / name,
            *CPU,
        )
        assert code == 2
        one_error(err, name, "pt_inception-2015-12-05-6726825d.pth", "https://", *words)
        assert "weights_only" not in err
    assert not (tmp_path / "s.npz").exists()


def test_inception_keeps_an_existing_output_and_refuses_a_folder(world, tmp_path, run_cli):
    out = tmp_path / "s.npz"
    out.write_bytes(b"mine")
    code, _, err = run_cli("inception", "--data", world["db"], "--out", out, *CPU)
    assert code == 2
    one_error(err, f"--out {out} exists", "--overwrite")
    assert out.read_bytes() == b"mine"
    (tmp_path / "d.npz").mkdir()
    code, _, err = run_cli("inception", "--data", world["db"], "--out", tmp_path / "d.npz", *CPU)
    assert code == 2
    one_error(err, "--out", "is a folder")
