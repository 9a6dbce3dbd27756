"""`gcgan sample` and `gcgan interpolate` on a tiny checkpoint trained a few steps here: files and
manifest, determinism, gaze options, the latent round trip, part-wise and gaze animations,
errors, and packing the samples as a dataset."""

import json

import cv2
import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from gcgan_cli import cli
from gcgan_cli.core.metrics.fid import seeded_images
from gcgan_cli.core.synthesis import component_path, component_rows, file_sha256, gaze_sweep, load_generator, render
from gcgan_cli.core.visualize import to_uint8
from gcgan_cli.data import gaze_db

# Slow: every test reads `ckpt`, a tiny run trained here.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    assert (
        cli.run(["segment", "synthetic", "--n", "24", "--size", "64", "--outdir", str(root / "prep"), "-j", "1"]) == 0
    )
    assert cli.run(["pack", "--data", str(root / "prep"), "--outdir", str(root / "db"), "--size", "32", "-j", "1"]) == 0
    assert (
        cli.run(
            [
                "train",
                "--data",
                str(root / "db"),
                "--outdir",
                str(root / "run"),
                "--preset",
                "tiny",
                "--workers",
                "0",
                "--iters",
                "4",
                "--viz-every",
                "0",
            ]
        )
        == 0
    )
    return root / "run" / "checkpoints" / "0000004.pt"


@pytest.fixture(scope="module")
def samples(ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("samples") / "out"
    assert (
        cli.run(
            [
                "sample",
                "--network",
                str(ckpt),
                "--outdir",
                str(out),
                "--n",
                "5",
                "--batch",
                "2",
                "--save-latent",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    return out


def rows_of(folder):
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]


def test_sample_writes_every_file_and_a_manifest(ckpt, samples):
    rows = rows_of(samples)
    assert [r["name"] for r in rows] == [f"{i:06d}" for i in range(5)]  # 5 with batch 2: the reference crashed
    labels = load_generator(ckpt, torch.device("cpu")).gaze_labels.numpy()
    for row in rows:
        image = cv2.imread(str(samples / row["image"]))
        mask = cv2.imread(str(samples / row["mask"]), cv2.IMREAD_UNCHANGED)
        assert image.shape == (32, 32, 3) and mask.shape == (32, 32) and mask.max() < 6
        assert cv2.imread(str(samples / row["mask_color"])).shape == (32, 32, 3)
        assert np.load(samples / row["latent"], allow_pickle=False).shape == (13, 32)  # tiny: 1 + 2 x 6 rows of 32
        assert np.isclose(labels, [row["pitch"], row["yaw"]], atol=1e-6).all(axis=1).any()  # drawn from the label set
        assert row["checkpoint_sha256"] == file_sha256(ckpt) and row["truncation"] == 0.7 and row["seed"] == 0
    assert (samples / "contact_sheet.png").is_file()


def test_the_same_seed_gives_the_same_images_and_an_existing_folder_needs_overwrite(ckpt, samples, tmp_path, run_cli):
    again = tmp_path / "again"
    assert (
        run_cli("sample", "--network", ckpt, "--outdir", again, "--n", "5", "--batch", "4", "--device", "cpu")[0] == 0
    )
    for row in rows_of(samples):
        assert (
            np.abs(
                cv2.imread(str(again / row["image"])).astype(int) - cv2.imread(str(samples / row["image"])).astype(int)
            ).max()
            <= 1
        )
    code, _, err = run_cli("sample", "--network", ckpt, "--outdir", again, "--n", "2")
    assert code == 2 and "--overwrite" in err
    assert run_cli("sample", "--network", ckpt, "--outdir", again, "--n", "2", "--overwrite", "--device", "cpu")[0] == 0
    assert len(rows_of(again)) == 2


def test_gaze_options(ckpt, tmp_path, run_cli):
    assert (
        run_cli(
            "sample",
            "--network",
            ckpt,
            "--outdir",
            tmp_path / "fixed",
            "--n",
            "3",
            "--gaze",
            "-0.1,0.25",
            "--device",
            "cpu",
        )[0]
        == 0
    )
    assert all(
        r["pitch"] == pytest.approx(-0.1) and r["yaw"] == pytest.approx(0.25) for r in rows_of(tmp_path / "fixed")
    )
    assert (
        run_cli(
            "sample",
            "--network",
            ckpt,
            "--outdir",
            tmp_path / "grid",
            "--n",
            "6",
            "--gaze-grid",
            "2",
            "--device",
            "cpu",
        )[0]
        == 0
    )
    gazes = [(r["pitch"], r["yaw"]) for r in rows_of(tmp_path / "grid")]
    assert len(set(gazes[:4])) == 4 and gazes[4:] == gazes[:2]  # a 2 x 2 grid, cycled
    code, _, err = run_cli(
        "sample", "--network", ckpt, "--outdir", tmp_path / "both", "--gaze", "0,0", "--gaze-grid", "2"
    )
    assert code == 2 and "choose one way" in err
    code, _, err = run_cli("sample", "--network", ckpt, "--outdir", tmp_path / "bad", "--gaze", "up")
    assert code == 2 and "PITCH,YAW" in err


def test_interpolating_from_a_saved_latent_starts_at_the_sampled_image(ckpt, samples):
    loaded = load_generator(ckpt, torch.device("cpu"))
    row = rows_of(samples)[3]
    base = torch.from_numpy(np.load(samples / row["latent"]))
    others = torch.randn(3, *base.shape)
    path = component_path(base, component_rows(loaded.config, "nose"), others, 12)
    assert torch.equal(path[0], base)
    out = next(render(loaded.generator, path[:1], torch.tensor([[row["pitch"], row["yaw"]]]), 1))
    image = (out.image[0].clamp(-1, 1) * 127.5 + 127.5).round().permute(1, 2, 0).numpy()
    sampled = cv2.imread(str(samples / row["image"]))[:, :, ::-1]
    assert np.abs(image - sampled).max() <= 1


def test_a_nose_animation_moves_only_the_nose_codes_and_changes_the_nose_area(ckpt, samples):
    loaded = load_generator(ckpt, torch.device("cpu"))
    config = loaded.config
    base = torch.from_numpy(np.load(samples / rows_of(samples)[0]["latent"]))
    rows = component_rows(config, "nose")
    path = component_path(base, rows, torch.randn(7, *base.shape), 24)
    fixed = [r for r in range(config.n_latent) if r not in rows]
    assert torch.equal(path[:, fixed], base[None, fixed].expand(24, -1, -1))
    assert (path[:, rows] - base[rows]).abs().amax(dim=(1, 2))[1:].min() > 0
    gaze = torch.zeros(24, 2)
    nose = config.class_names.index("nose")
    areas = torch.cat(
        [(out.seg_coarse[:, nose] + 1).div(2).sum(dim=(1, 2)) for out in render(loaded.generator, path, gaze, 8)]
    )
    assert areas.std() > 1e-3 * areas.mean()


def test_the_gaze_animation_changes_only_the_gaze_input(ckpt):
    loaded = load_generator(ckpt, torch.device("cpu"))
    g, config = loaded.generator, loaded.config
    gazes = gaze_sweep(loaded.gaze_labels, 16)
    assert torch.unique(gazes, dim=0).shape[0] == 16
    low, high = torch.quantile(loaded.gaze_labels, 0.05, dim=0), torch.quantile(loaded.gaze_labels, 0.95, dim=0)
    assert (gazes >= low - 1e-6).all() and (gazes <= high + 1e-6).all()
    latent = g.compact(g.mapping(torch.randn(1, config.style_dim))).repeat(16, 1, 1)
    with torch.no_grad():
        outputs = g.local_outputs(latent, gazes)
    for c, (_depth, features) in enumerate(outputs):
        moves = (features - features[:1]).abs().max() > 0
        assert moves == (c in config.gaze_ids), config.class_names[c]  # only eye and iris see the gaze


def test_interpolate_writes_gifs_and_rejects_wrong_names(ckpt, samples, tmp_path, run_cli):
    out = tmp_path / "interp"
    code, stdout, _ = run_cli(
        "interpolate",
        "--network",
        ckpt,
        "--latent",
        samples / "000001_latent.npy",
        "--outdir",
        out,
        "--component",
        "nose",
        "--frames",
        "6",
        "--keyframes",
        "3",
        "--with-mask",
        "--device",
        "cpu",
    )
    assert code == 0
    frames = imageio.mimread(out / "00_nose.gif")
    assert len(frames) == 6 and frames[0].shape[:2] == (32, 64)  # image | mask
    assert (
        run_cli(
            "interpolate",
            "--network",
            ckpt,
            "--latent",
            samples / "000001_latent.npy",
            "--outdir",
            out,
            "--component",
            "gaze",
            "--frames",
            "4",
            "--device",
            "cpu",
        )[0]
        == 0
    )
    assert len(imageio.mimread(out / "00_gaze.gif")) == 4
    code, _, err = run_cli(
        "interpolate", "--network", ckpt, "--latent", samples / "000001_latent.npy", "--component", "mouth"
    )
    assert code == 2 and "choose one of background, skin, eye, eyebrow, nose, iris, gaze or all" in err
    code, _, err = run_cli(
        "interpolate", "--network", tmp_path / "missing.pt", "--latent", samples / "000001_latent.npy"
    )
    assert code == 2 and "missing.pt does not exist" in err
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 3), np.float32))
    code, _, err = run_cli("interpolate", "--network", ckpt, "--latent", bad)
    assert code == 2 and "(13, 32)" in err


def test_samples_pack_as_a_labelled_dataset(samples, tmp_path, run_cli):
    db = tmp_path / "db"
    assert run_cli("pack", "--data", samples, "--outdir", db, "--size", "32", "-j", "1")[0] == 0
    meta = gaze_db.read_meta(db)
    assert meta.count == 5 and meta.labelled and meta.source["kind"] == "samples"
    labels = gaze_db.read_labels(db / gaze_db.LABELS_FILE)
    assert np.allclose(labels, [[r["pitch"], r["yaw"]] for r in rows_of(samples)], atol=1e-6)


def test_samples_carry_imagefolder_metadata(samples):
    """metadata.jsonl: one row per image with its gaze, seed and mask, paths relative to the folder
    (what Hugging Face `datasets` imagefolder reads); samples.jsonl names the same image file."""
    rows = rows_of(samples)
    metadata = [json.loads(line) for line in (samples / "metadata.jsonl").read_text().splitlines()]
    assert [r["file_name"] for r in rows] == [r["image"] for r in rows] == [f"{i:06d}.png" for i in range(5)]
    assert metadata == [
        {"file_name": r["image"], "pitch": r["pitch"], "yaw": r["yaw"], "mask_file_name": r["mask"], "seed": r["seed"]}
        for r in rows
    ]
    for row in metadata:
        image, mask = samples / row["file_name"], samples / row["mask_file_name"]
        assert image.parent == mask.parent == samples
        assert cv2.imread(str(image)).shape == (32, 32, 3) and cv2.imread(str(mask), cv2.IMREAD_UNCHANGED).ndim == 2


def test_hugging_face_datasets_loads_the_samples_with_gaze_and_masks(samples):
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset("imagefolder", data_dir=str(samples), split="train")
    rows = rows_of(samples)
    assert len(loaded) == len(rows)
    assert sorted(zip(loaded["pitch"], loaded["yaw"])) == sorted((r["pitch"], r["yaw"]) for r in rows)
    assert loaded[0]["image"].size == (32, 32) and set(loaded["seed"]) == {0}
    if "mask" in loaded.column_names:  # newer datasets load every *_file_name column as an image too
        assert loaded[0]["mask"].size == (32, 32)
    else:
        assert sorted(loaded["mask_file_name"]) == sorted(r["mask"] for r in rows)


def test_seeds_give_each_image_its_own_seed_whatever_the_batch_and_the_other_seeds(ckpt, tmp_path, run_cli):
    """--seeds: image for seed S is the same alone, among others, at any batch, and it is the image
    `gcgan fid --seeds S` scores; every row records its own seed."""

    def run(name, *args):
        out = tmp_path / name
        code, _, err = run_cli(
            "sample", "--network", ckpt, "--outdir", out, "--truncation", "1", "--device", "cpu", *args
        )
        assert code == 0, err
        return out, rows_of(out)

    alone, (row,) = run("alone", "--seeds", "5")
    many, rows = run("many", "--seeds", "3-7", "--batch", "3")
    single, _ = run("single", "--seeds", "3-7", "--batch", "1")
    assert [r["seed"] for r in rows] == [3, 4, 5, 6, 7] and row["seed"] == 5
    assert [json.loads(line)["seed"] for line in (many / "metadata.jsonl").read_text().splitlines()] == [3, 4, 5, 6, 7]
    assert (row["pitch"], row["yaw"]) == (rows[2]["pitch"], rows[2]["yaw"])
    image = cv2.imread(str(alone / row["image"]))
    for folder in (many, single):
        assert np.abs(cv2.imread(str(folder / rows[2]["image"])).astype(int) - image.astype(int)).max() <= 1
    assert np.array_equal(cv2.imread(str(single / rows[2]["image"])), image)  # both batch 1: exact
    loaded = load_generator(ckpt, torch.device("cpu"))
    scored = next(seeded_images(loaded.generator, loaded.gaze_labels, [5], 1))
    assert np.array_equal(to_uint8(scored)[0], cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


def test_seeds_refuse_a_disagreeing_n_and_a_base_seed(ckpt, tmp_path, run_cli):
    for args, words in (
        (("--seeds", "0-3", "--n", "3"), "--n 3 and --seeds 0-3 (4 seeds) disagree"),
        (("--seeds", "1,5", "--seed", "2"), "--seed 2 and --seeds 1,5"),
        (("--seeds", "5-1"), "not a range"),
    ):
        code, _, err = run_cli("sample", "--network", ckpt, "--outdir", tmp_path / "x", "--device", "cpu", *args)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x").exists()
