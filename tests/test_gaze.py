"""`gcgan gaze`: angle conventions on hand-computed cases, every source kind on fixtures written
here in its format, a fit that beats the mean-gaze baseline, eval JSON, predict, consistency (its
statistics against numpy, the independence guard, the gaze grid and sweep sheets), and clear errors
for bad sources; the eval and grid plots with labelled axes, matplotlib's and the hand-drawn fallback."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch

from gcgan_cli import cli
from gcgan_cli.checkpoint import load_checkpoint, save_checkpoint
from gcgan_cli.core.gaze import report
from gcgan_cli.core.gaze.angles import angular_error, to_pitch_yaw, to_vector, unity_look_vec
from gcgan_cli.core.gaze.consistency import consistency_stats, generator_consistency
from gcgan_cli.core.gaze.estimator import load_estimator
from gcgan_cli.core.gaze.fit import evaluate, split
from gcgan_cli.core.gaze.sources import open_source
from gcgan_cli.core.synthesis import file_sha256, load_generator


@pytest.fixture(scope="module")
def dbs(tmp_path_factory):
    root = tmp_path_factory.mktemp("gaze")
    for name, n, seed in (("train", 600, 0), ("test", 120, 9)):
        assert (
            cli.run(
                [
                    "segment",
                    "synthetic",
                    "--n",
                    str(n),
                    "--size",
                    "64",
                    "--seed",
                    str(seed),
                    "--outdir",
                    str(root / f"{name}_prep"),
                    "-j",
                    "1",
                ]
            )
            == 0
        )
        assert (
            cli.run(
                ["pack", "--data", str(root / f"{name}_prep"), "--outdir", str(root / name), "--size", "64", "-j", "1"]
            )
            == 0
        )
    return root


@pytest.fixture(scope="module")
def generator(dbs):
    """A 2-step tiny training checkpoint: enough to render, not to be gaze-aware."""
    run = dbs / "run"
    assert (
        cli.run(
            [
                "train",
                "--data",
                str(dbs / "train"),
                "--outdir",
                str(run),
                "--preset",
                "tiny",
                "--size",
                "64",
                "--workers",
                "0",
                "--iters",
                "2",
                "--viz-every",
                "0",
            ]
        )
        == 0
    )
    return run / "checkpoints" / "0000002.pt"


@pytest.fixture(scope="module")
def estimator(dbs):
    out = dbs / "est.pt"
    assert (
        cli.run(["gaze", "fit", "--data", str(dbs / "train"), "--out", str(out), "--epochs", "10", "--device", "cpu"])
        == 0
    )
    return out


# --- angles ---


def test_angular_error_on_hand_computed_cases():
    assert angular_error([0.0, 0.0], [0.0, 0.0]) == pytest.approx(0.0, abs=1e-6)
    assert angular_error([0.0, 0.0], [0.0, math.pi / 2]) == pytest.approx(90.0)
    assert angular_error([0.0, 0.0], [0.0, math.pi]) == pytest.approx(180.0)
    assert angular_error([0.1, 0.0], [0.4, 0.0]) == pytest.approx(math.degrees(0.3))  # pitch only
    assert angular_error([0.0, -0.2], [0.0, 0.3]) == pytest.approx(math.degrees(0.5))  # yaw only at pitch 0
    assert angular_error([math.pi / 2, 0.0], [math.pi / 2, 1.0]) == pytest.approx(
        0.0, abs=1e-5
    )  # looking straight up: yaw is moot


def test_pitch_yaw_vector_round_trip_and_the_eth_convention():
    rng = np.random.default_rng(0)
    angles = np.stack([rng.uniform(-1.2, 1.2, 100), rng.uniform(-3.0, 3.0, 100)], axis=1)
    assert np.allclose(to_pitch_yaw(to_vector(angles)), angles)
    assert np.allclose(to_vector([0.0, 0.0]), [0, 0, 1]) and np.allclose(to_vector([0.0, math.pi / 2]), [1, 0, 0])
    assert np.allclose(to_pitch_yaw([0.0, 2.0, 0.0]), [math.pi / 2, 0.0])


def test_unity_look_vector_conversion():
    assert unity_look_vec(0.0, 0.0, -1.0) == pytest.approx((0.0, 0.0))  # looking into the camera
    pitch, yaw = unity_look_vec(-0.1, 0.2, -1.0)
    assert pitch == pytest.approx(math.asin(0.2 / math.sqrt(1.05))) and yaw == pytest.approx(math.atan2(0.1, 1.0))


# --- sources ---


def write_mpii(path, people=3, per=6):
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as handle:
        for p in range(people):
            group = handle.create_group(f"p{p:02d}")
            image = rng.integers(0, 255, (per, 36, 60, 3), dtype=np.uint8)
            image[..., 0] = 255  # blue in BGR
            group["image"] = image
            group["gaze"] = rng.uniform(-0.5, 0.5, (per, 2))
            group["head"] = rng.uniform(-0.5, 0.5, (per, 2))
    return path


def write_unityeyes(folder, n=3):
    folder.mkdir()
    for i in range(1, n + 1):
        image = np.zeros((240, 320, 3), np.uint8)
        cv2.circle(image, (160, 120), 30, (255, 255, 255), -1)  # the eye, in image coordinates
        cv2.imwrite(str(folder / f"{i}.jpg"), image)
        # the lid margin around it, in UnityEyes' bottom-left origin: y_unity = 240 - y_image
        margin = [
            f"({160 + 40 * math.cos(a):.2f}, {240 - (120 + 20 * math.sin(a)):.2f}, 0.0)"
            for a in np.linspace(0, 2 * math.pi, 16, endpoint=False)
        ]
        record = {
            "eye_details": {"look_vec": f"({-0.1 * i}, 0.1, -1.0, 0.0)"},
            "interior_margin_2d": margin,
            "caruncle_2d": ["(204.0, 120.0, 0.0)", "(206.0, 120.0, 0.0)"],
            "iris_2d": [],
            "head_pose": "(0, 180, 0)",
        }
        (folder / f"{i}.json").write_text(json.dumps(record))
    return folder


@pytest.mark.slow
def test_every_source_kind_reads_its_format(dbs, tmp_path):
    db = open_source(dbs / "train", 32)
    assert db.kind == "db" and len(db) == 600 and db.subjects[0] == "0000" and len(set(db.subjects)) == 30
    item = db[3]
    assert item["image"].shape == (3, 32, 32) and -1 <= item["image"].min() and item["image"].max() <= 1
    assert torch.allclose(item["gaze"], torch.from_numpy(db.gazes[3]))

    mpii = open_source(write_mpii(tmp_path / "mpii.h5"), 32)
    assert mpii.kind == "mpii" and len(mpii) == 18 and mpii.subjects[:7] == ["p00"] * 6 + ["p01"]
    with h5py.File(tmp_path / "mpii.h5") as handle:
        assert np.allclose(mpii.gazes[6], handle["p01"]["gaze"][0])
        assert np.array_equal(mpii.rgb(6), handle["p01"]["image"][0][:, :, ::-1])  # BGR -> RGB
    assert mpii.rgb(0)[..., 2].min() == 255

    unity = open_source(write_unityeyes(tmp_path / "unity"), 32)
    assert unity.kind == "unityeyes" and len(unity) == 3
    assert np.allclose(unity.gazes[1], unity_look_vec(-0.2, 0.1, -1.0))
    crop = unity.rgb(0)
    assert crop.shape == (36, 60, 3) and crop[18, 30].min() > 200  # the eye lands in the middle of the crop
    assert crop[0, 0].max() < 50

    samples = tmp_path / "samples"
    samples.mkdir()
    cv2.imwrite(str(samples / "a.png"), np.zeros((40, 40, 3), np.uint8))
    (samples / "samples.jsonl").write_text(
        json.dumps({"image": "a.png", "mask": "a.png", "pitch": 0.1, "yaw": -0.2}) + "\n"
    )
    folder = open_source(samples, 32)
    assert (
        folder.kind == "samples"
        and np.allclose(folder.gazes, [[0.1, -0.2]])
        and folder[0]["image"].shape == (3, 32, 32)
    )


@pytest.mark.slow
def test_validation_splits_by_subject_when_known(dbs):
    source = open_source(dbs / "train", 32)
    train, val, how = split(source, 0.1, 0)
    held = {source.subjects[i] for i in val}
    assert len(held) == 3 and not held & {source.subjects[i] for i in train} and "subjects" in how
    assert len(train) + len(val) == len(source)


@pytest.mark.slow
def test_bad_sources_are_clear_errors(tmp_path, dbs, run_cli):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("gaze", "fit", "--data", tmp_path / "empty", "--out", tmp_path / "e.pt")
    assert code == 2 and "not a gaze source" in err
    code, _, err = run_cli("gaze", "fit", "--data", tmp_path / "nothing", "--out", tmp_path / "e.pt")
    assert code == 2 and "no such file" in err
    (tmp_path / "broken.h5").write_bytes(b"not hdf5")
    code, _, err = run_cli("gaze", "fit", "--data", tmp_path / "broken.h5", "--out", tmp_path / "e.pt")
    assert code == 2 and "broken.h5" in err
    code, _, err = run_cli("gaze", "fit", "--data", dbs / "train", "--mix", "1,2", "--out", tmp_path / "e.pt")
    assert code == 2 and "--mix" in err
    code, _, err = run_cli("gaze", "eval", "--model", dbs / "train" / "data.mdb", "--data", dbs / "test")
    assert code == 2 and "data.mdb" in err


# --- fit, eval, predict, consistency ---


@pytest.mark.slow
def test_a_fit_beats_the_mean_gaze_baseline_on_held_out_identities(estimator, dbs, run_cli):
    code, out, _ = run_cli("gaze", "eval", "--model", estimator, "--data", dbs / "test", "--json", "--device", "cpu")
    assert code == 0
    result = json.loads(out)
    assert set(result) >= {"model", "data", "error_deg", "mean_gaze_baseline_deg", "plot", "per_subject_mean_deg"}
    assert set(result["error_deg"]) == {"count", "mean", "median", "std", "p90"} and result["error_deg"]["count"] == 120
    error, baseline = result["error_deg"]["mean"], result["mean_gaze_baseline_deg"]["mean"]
    assert baseline > 20 and error < 0.75 * baseline, (error, baseline)
    network, config = load_estimator(estimator, torch.device("cpu"))
    predicted, true = evaluate(network, open_source(dbs / "test", config["size"]), torch.device("cpu"))
    for i, axis in enumerate(("pitch", "yaw")):
        oracle = np.degrees(np.abs(predicted[:, i].astype(np.float64) - true[:, i]))
        assert result[f"{axis}_error_deg"]["mean"] == pytest.approx(oracle.mean(), rel=1e-5)
        assert result[f"{axis}_error_deg"]["p90"] == pytest.approx(np.percentile(oracle, 90), rel=1e-5)
    assert cv2.imread(result["plot"]).shape[1] > 600


@pytest.mark.slow
def test_predict_writes_pitch_and_yaw_per_image(estimator, dbs, tmp_path, run_cli):
    images = sorted((dbs / "test_prep" / "rgb").glob("*.png"))[:3]
    code, out, _ = run_cli("gaze", "predict", "--model", estimator, *images, "--device", "cpu")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0] == "image,pitch,yaw" and len(lines) == 4
    assert (
        run_cli("gaze", "predict", "--model", estimator, *images, "--out", tmp_path / "p.jsonl", "--device", "cpu")[0]
        == 0
    )
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["image"] for r in rows] == [str(p) for p in images] and all(
        np.isfinite([r["pitch"], r["yaw"]]).all() for r in rows
    )


@pytest.mark.slow
def test_mixed_sources_and_consistency_of_a_generator(estimator, generator, dbs, tmp_path, run_cli):
    ckpt = generator
    assert (
        run_cli("sample", "--network", ckpt, "--outdir", tmp_path / "samples", "--n", "40", "--device", "cpu")[0] == 0
    )
    code, out, _ = run_cli(
        "gaze",
        "fit",
        "--data",
        dbs / "train",
        "--data",
        tmp_path / "samples",
        "--mix",
        "1,0.5",
        "--out",
        tmp_path / "mixed.pt",
        "--epochs",
        "1",
        "--device",
        "cpu",
    )
    assert code == 0 and "weight 0.5" in out
    code, out, _ = run_cli(
        "gaze", "consistency", "--network", ckpt, "--model", estimator, "--n", "24", "--json", "--device", "cpu"
    )
    assert code == 0
    result = json.loads(out)
    assert (
        result["n"] == 24 and 0 <= result["error_deg"]["mean"] <= 180 and result["estimator_validation_error_deg"] > 0
    )
    assert set(result) >= {
        "pitch_error_deg",
        "yaw_error_deg",
        "mean_gaze_baseline_deg",
        "correlation",
        "ratio_to_estimator_error",
        "ratio_to_baseline",
    } and set(result["correlation"]) == {"pitch", "yaw"}
    assert result["gaze_loss_model"] is None
    recorded = json.loads(Path(result["recorded"]).read_text().splitlines()[-1])  # the run's metrics.jsonl
    assert Path(result["recorded"]) == (ckpt.parent.parent / "metrics.jsonl").resolve()
    assert recorded == {
        "step": 2,
        "gaze_consistency_deg": result["error_deg"]["mean"],
        "gaze_consistency_model": str(estimator),
        "gaze_consistency_n": 24,
    }
    code, out, _ = run_cli("export", "--network", ckpt, "--outdir", tmp_path / "model")
    card = (tmp_path / "model" / "README.md").read_text()
    assert code == 0 and f"gaze_consistency_deg {result['error_deg']['mean']:.4g}" in card
    network, config = load_estimator(estimator, torch.device("cpu"))
    conditioning, estimated = generator_consistency(
        load_generator(ckpt, torch.device("cpu")), network, config["size"], 24, 64, 0
    )
    baseline = np.degrees(np.arccos(np.clip(to_vector(conditioning) @ to_vector(conditioning.mean(axis=0)), -1, 1)))
    assert result["mean_gaze_baseline_deg"]["mean"] == pytest.approx(baseline.mean(), rel=1e-6)
    assert result["error_deg"]["mean"] == pytest.approx(angular_error(estimated, conditioning).mean(), rel=1e-5)
    assert result["ratio_to_baseline"] == pytest.approx(result["error_deg"]["mean"] / baseline.mean(), rel=1e-5)
    assert result["ratio_to_estimator_error"] == pytest.approx(
        result["error_deg"]["mean"] / result["estimator_validation_error_deg"]
    )


def test_consistency_stats_against_numpy():
    conditioning = np.array([[0.1, -0.2], [0.3, 0.0], [-0.1, 0.4], [0.2, 0.2]])
    estimated = np.array([[0.0, -0.1], [0.35, 0.1], [-0.2, 0.3], [0.1, 0.25]])
    stats = consistency_stats(conditioning, estimated, 2.0)
    for i, axis in enumerate(("pitch", "yaw")):
        oracle = np.degrees(np.abs(estimated[:, i] - conditioning[:, i]))
        assert stats[f"{axis}_error_deg"]["mean"] == pytest.approx(oracle.mean())
        assert stats[f"{axis}_error_deg"]["median"] == pytest.approx(np.median(oracle))
        assert stats["correlation"][axis] == pytest.approx(np.corrcoef(conditioning[:, i], estimated[:, i])[0, 1])
    mean = conditioning.mean(axis=0)
    baseline = [math.degrees(math.acos(min(1.0, float(to_vector(c) @ to_vector(mean))))) for c in conditioning]
    assert stats["mean_gaze_baseline_deg"]["mean"] == pytest.approx(np.mean(baseline))
    assert stats["ratio_to_estimator_error"] == pytest.approx(stats["error_deg"]["mean"] / 2.0)
    assert stats["ratio_to_baseline"] == pytest.approx(stats["error_deg"]["mean"] / np.mean(baseline))
    flat = consistency_stats(np.array([[0.1, 0.0], [0.1, 0.3]]), np.array([[0.2, 0.1], [0.0, 0.2]]), None)
    assert flat["correlation"] == {"pitch": None, "yaw": pytest.approx(1.0)}  # pitch does not vary
    assert flat["ratio_to_estimator_error"] is None and json.dumps(flat)


@pytest.mark.slow
def test_consistency_refuses_the_estimator_of_the_gaze_loss(estimator, generator, tmp_path, run_cli):
    record = load_checkpoint(generator)
    for name, sha in (("own", file_sha256(estimator)), ("other", "0" * 64)):
        save_checkpoint(tmp_path / f"{name}.pt", {**record, "gaze_loss_model": {"path": str(estimator), "sha256": sha}})
    code, out, err = run_cli(
        "gaze", "consistency", "--network", tmp_path / "own.pt", "--model", estimator, "--n", "2", "--device", "cpu"
    )
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and err.startswith("error:")
    assert "was in this generator's training loss (gaze loss)" in err and "another seed or --arch" in err
    code, out, _ = run_cli(
        "gaze",
        "consistency",
        "--network",
        tmp_path / "other.pt",
        "--model",
        estimator,
        "--n",
        "2",
        "--json",
        "--device",
        "cpu",
    )
    assert code == 0 and json.loads(out)["gaze_loss_model"]["sha256"] == "0" * 64
    assert "recorded" not in json.loads(out)  # outside a run folder: printed only


@pytest.mark.slow
def test_consistency_grid_and_sweep_sheets(estimator, generator, tmp_path, run_cli):
    plot_path = tmp_path / "grid.png"
    code, out, _ = run_cli(
        "gaze",
        "consistency",
        "--network",
        generator,
        "--model",
        estimator,
        "--n",
        "2",
        "--grid",
        "2",
        "--grid-samples",
        "2",
        "--grid-plot",
        plot_path,
        "--sweep",
        tmp_path / "sweep",
        "--sweep-rows",
        "2",
        "--json",
        "--device",
        "cpu",
    )
    assert code == 0
    grid = json.loads(out)["grid"]
    assert (
        len(grid["pitch"]) == len(grid["yaw"]) == 2
        and grid["pitch"][0] < grid["pitch"][1]
        and grid["yaw"][0] < grid["yaw"][1]
    )
    assert np.array(grid["error_deg"]).shape == (2, 2) and all(0 <= e <= 180 for row in grid["error_deg"] for e in row)
    assert cv2.imread(str(plot_path)).shape[0] > 2 * 64
    yaw, pitch = (cv2.imread(str(tmp_path / f"sweep_{axis}.png")) for axis in ("yaw", "pitch"))
    assert yaw.shape[0] == pitch.shape[0] and (yaw.shape[1] - 4) % 9 == 0 and (pitch.shape[1] - 4) % 7 == 0
    assert (yaw.shape[1] - 4) // 9 == (pitch.shape[1] - 4) // 7 >= 2 * 128  # image | mask per cell, enlarged
    code, out, _ = run_cli(
        "gaze",
        "consistency",
        "--network",
        generator,
        "--model",
        estimator,
        "--n",
        "2",
        "--grid",
        "2",
        "--grid-samples",
        "2",
        "--device",
        "cpu",
    )
    table = out[out.index("pitch \\ yaw") :].splitlines()
    assert code == 0 and len([line for line in table if line.count(".") == 3]) == 2  # a pitch and two errors per row


@pytest.mark.slow
def test_consistency_option_errors(estimator, generator, tmp_path, run_cli):
    for args, message in (
        (("--grid", "1"), "--grid 1"),
        (("--grid-plot", tmp_path / "g.png"), "needs --grid"),
        (("--sweep", tmp_path / "no" / "s"), "does not exist"),
    ):
        code, _, err = run_cli(
            "gaze", "consistency", "--network", generator, "--model", estimator, *args, "--device", "cpu"
        )
        assert code == 2 and message in err, err


# --- plots ---


def eval_data(count=200, seed=0):
    rng = np.random.default_rng(seed)
    true = rng.uniform(-0.5, 0.5, (count, 2))
    predicted = true + rng.normal(0, 0.05, (count, 2))
    return predicted, true, angular_error(predicted, true)


def without_matplotlib(monkeypatch):
    """Imports of matplotlib fail from here on, as where it is not installed."""
    for name in ["matplotlib"] + [n for n in sys.modules if n.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)


def ink(image, rows, cols):
    """Whether a region holds dark pixels (text or lines) on the white background."""
    return bool((image[rows, cols].min(axis=-1) < 128).any())


def test_the_eval_figure_has_labelled_axes_and_the_data():
    pytest.importorskip("matplotlib")
    predicted, true, errors = eval_data()
    figure = report.eval_figure(predicted, true, errors)
    histogram, pitch, yaw = figure.axes
    assert [a.get_xlabel() for a in figure.axes] == [
        "angular error (deg, clipped at the 99th percentile)",
        "true pitch (deg)",
        "true yaw (deg)",
    ]
    assert [a.get_ylabel() for a in figure.axes] == ["samples", "predicted pitch (deg)", "predicted yaw (deg)"]
    assert histogram.get_title() == "angular error, 200 samples" and pitch.get_title().startswith("pitch: mean |error|")
    top = np.percentile(errors, 99)
    counts, _ = np.histogram(np.clip(errors, 0, top), bins=report.HIST_BINS, range=(0, top))
    assert [bar.get_height() for bar in histogram.patches] == counts.tolist()
    for axes, axis in ((pitch, 0), (yaw, 1)):
        points = np.degrees(np.stack([true[:, axis], predicted[:, axis]], axis=1))
        assert np.allclose(axes.collections[0].get_offsets(), points)
        line = axes.lines[0].get_xydata()  # y = x, across all the data
        assert np.array_equal(line[:, 0], line[:, 1]) and line[0, 0] < points.min() and line[-1, 0] > points.max()
    figure.canvas.draw()
    for axes in figure.axes:
        assert len([t for t in axes.get_xticklabels() if t.get_text()]) >= 3
        assert len([t for t in axes.get_yticklabels() if t.get_text()]) >= 3
    image = report.plot(predicted, true, errors)
    assert image.shape == (430, 1350, 3) and image.dtype == np.uint8  # 13.5 x 4.3 inches at 100 dpi


def test_the_grid_figure_has_degree_ticks_and_a_colour_bar():
    pytest.importorskip("matplotlib")
    pitch, yaw, errors = [-0.3, 0.0, 0.3], [-0.4, 0.4], [[1.0, 2.0], [4.0, 5.5], [7.0, 19.0]]
    figure = report.grid_figure(pitch, yaw, errors)
    heat, bar = figure.axes
    assert np.array_equal(heat.images[0].get_array(), errors) and heat.images[0].get_clim() == (0, 19.0)
    assert heat.get_xlabel() == "conditioning yaw (deg)" and heat.get_ylabel() == "conditioning pitch (deg)"
    assert [t.get_text() for t in heat.get_xticklabels()] == ["-22.9", "+22.9"]
    assert [t.get_text() for t in heat.get_yticklabels()] == ["-17.2", "+0.0", "+17.2"]
    assert sorted(t.get_text() for t in heat.texts) == sorted(f"{e:.1f}" for row in errors for e in row)
    assert bar.get_ylabel() == "mean angular error (deg)"
    assert report.grid_plot(pitch, yaw, errors).shape == (400, 550, 3)  # 5.5 x 4 inches at 100 dpi


def test_without_matplotlib_the_plots_are_drawn_by_hand_with_axes(monkeypatch):
    without_matplotlib(monkeypatch)
    predicted, true, errors = eval_data()
    assert report.eval_figure(predicted, true, errors) is None and report.grid_figure([0.0], [0.0], [[1.0]]) is None
    image = report.plot(predicted, true, errors)
    width = report.LEFT + report.PANEL + report.RIGHT
    assert image.shape == (report.TOP + report.PANEL + report.BOTTOM, 3 * width, 3)
    bottom, left = report.TOP + report.PANEL, report.LEFT
    for panel in range(3):
        x = panel * width
        x_labels, y_labels = slice(bottom + 6, bottom + 20), slice(x + 20, x + left - report.TICK)
        assert ink(image, x_labels, slice(x, x + left + 20))  # a tick label at the x axis' start
        assert ink(image, x_labels, slice(x + left + report.PANEL - 20, x + width))  # and at its end
        assert ink(image, slice(bottom - 6, bottom + 6), y_labels)  # the y axis': at the bottom
        assert ink(image, slice(report.TOP - 6, report.TOP + 6), y_labels)  # and at the top
        assert ink(image, slice(bottom + 24, bottom + 40), slice(x + left, x + left + report.PANEL))  # the x title
        assert ink(image, slice(report.TOP, bottom), slice(x, x + 18))  # the y title, up the left side
    grid = report.grid_plot([-0.3, 0.0, 0.3], [-0.4, 0.4], [[1.0, 2.0], [4.0, 5.5], [7.0, 19.0]])
    assert grid.shape[0] == report.HEAT_TOP + 3 * report.HEAT_CELL + 12 + report.SCALE_BAR + 24


@pytest.mark.slow
def test_eval_writes_its_plot_png_with_and_without_matplotlib(estimator, dbs, tmp_path, run_cli, monkeypatch):
    args = ("gaze", "eval", "--model", estimator, "--data", dbs / "test", "--json", "--device", "cpu", "--out")
    if importlib.util.find_spec("matplotlib") is not None:
        assert run_cli(*args, tmp_path / "figure.png")[0] == 0
        assert cv2.imread(str(tmp_path / "figure.png")).shape == (430, 1350, 3)
    without_matplotlib(monkeypatch)
    assert run_cli(*args, tmp_path / "plain.png")[0] == 0
    assert cv2.imread(str(tmp_path / "plain.png")).shape == (354, 1068, 3)
