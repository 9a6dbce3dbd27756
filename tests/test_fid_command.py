"""`gcgan fid` on a tiny checkpoint trained a few steps here: a network scores exactly what its saved
samples score, training's FID is the command's, names carry the count, statistics files give FID
only, statistics of other features and inputs of no known kind are one-line errors, and under
torch.distributed (2 gloo processes) the sharded statistics and KID equal one process's.

Most tests use a cheap 2048-d stand-in for the Inception; the sample-folder equality runs the
real network with random weights."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from faults import one_error, packed, synthetic_prep
from torch import nn

from gcgan_cli import cli
from gcgan_cli.core.metrics import inception as inception_module
from gcgan_cli.core.metrics.fid import (
    ImageSet,
    Stats,
    frechet_distance,
    generator_features,
    image_features,
    kernel_distance,
)
from gcgan_cli.core.synthesis import load_generator, parse_seeds
from gcgan_cli.errors import UsageError

# Slow: every test but the seed parser's reads `world`, which trains a run that logs FID.
pytestmark = pytest.mark.slow

DIMS = 64  # the stand-in's features: a 2048-d distance would take seconds per test on 2 cores


class CheapFeatures(nn.Module):
    """A fast stand-in for the Inception: an 8x8 average pool, a fixed random projection to DIMS, ReLU."""

    def __init__(self):
        super().__init__()
        self.register_buffer("weight", torch.randn(192, DIMS, generator=torch.Generator().manual_seed(0)) / 14)

    def forward(self, images):
        return torch.relu(nn.functional.adaptive_avg_pool2d(images, 8).flatten(1) @ self.weight)


def cheap_network(path, device="cpu"):
    return CheapFeatures().to(device)


@pytest.fixture
def fid(run_cli):
    """fid(*args) -> (exit code, stdout, stderr) of `gcgan fid ARGS --device cpu`."""
    return lambda *args: run_cli("fid", *args, "--device", "cpu")


@pytest.fixture
def cheap(monkeypatch):
    """`gcgan fid` with the stand-in for its network."""
    monkeypatch.setattr(inception_module, "load_fid_inception", cheap_network)
    monkeypatch.setattr(inception_module, "FEATURE_DIM", DIMS)


@pytest.fixture(scope="module")
def world(tmp_path_factory, weights_file):
    """A DB, its reference statistics (with features) under the stand-in, and a tiny checkpoint trained
    2 steps whose run logged FID over 4 images against them."""
    root = tmp_path_factory.mktemp("fid_command")
    db = packed(synthetic_prep(root / "prep", n=12, size=32), root / "db", 32)
    network = CheapFeatures()
    features = image_features(ImageSet(db, "db"), network, torch.device("cpu"), batch=5, keep=True)
    ref = root / "ref.npz"
    features.to_stats({"db": str(db)}).save(ref)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("gcgan_cli.core.training.trainer.load_fid_inception", cheap_network)
        patch.setattr("gcgan_cli.core.training.trainer.FEATURE_DIM", DIMS)
        assert (
            cli.run(
                [
                    "train",
                    "--data",
                    str(db),
                    "--outdir",
                    str(root / "run"),
                    "--preset",
                    "tiny",
                    "--workers",
                    "0",
                    "--batch",
                    "4",
                    "--iters",
                    "2",
                    "--viz-every",
                    "0",
                    "--inception",
                    str(ref),
                    "--fid-every",
                    "2",
                    "--fid-n",
                    "4",
                    "--inception-weights",
                    str(weights_file),
                ]
            )
            == 0
        )
    return {
        "root": root,
        "db": db,
        "ref": ref,
        "ckpt": root / "run" / "checkpoints" / "0000002.pt",
        "metrics": root / "run" / "metrics.jsonl",
    }


def scores(fid, *args):
    code, out, err = fid(*args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_training_fid_is_the_commands_for_the_checkpoint(world, fid, cheap, weights_file):
    logged = [json.loads(line) for line in world["metrics"].read_text().splitlines()]
    fids = [row for row in logged if "fid4" in row]
    assert len(fids) == 1 and fids[0]["step"] == 2 and not any("fid" in row for row in logged)
    result = scores(
        fid,
        "--network",
        world["ckpt"],
        "-n",
        "4",
        "--batch",
        "16",
        "--ref",
        world["ref"],
        "--inception-weights",
        weights_file,
    )
    assert result["fid4"] == pytest.approx(fids[0]["fid4"], rel=1e-9)
    assert result["seeds"] == "0-3" and result["count"] == 4 and result["ref_count"] == 12 and result["step"] == 2
    assert result["kid_subset_size"] == 4 and result["kid_subsets"] == 100 and result["kid4_std"] >= 0
    assert np.isfinite(result["kid4"]) and "kid_skipped" not in result
    # The scores join the run's metrics.jsonl as a row of the checkpoint's step, where export's card finds them.
    assert result["recorded"] == str(world["metrics"].resolve())
    row = json.loads(world["metrics"].read_text().splitlines()[-1])
    assert row == {
        "step": 2,
        "fid4": result["fid4"],
        "kid4": result["kid4"],
        "kid4_std": result["kid4_std"],
        "ref": str(world["ref"]),
    }


def test_a_network_scores_exactly_what_its_saved_samples_score(world, fid, run_cli, weights_file, tmp_path):
    # The real FID network (random weights): image s is `gcgan sample --n 1 --seed s --truncation 1`.
    folder = tmp_path / "images"
    folder.mkdir()
    for seed in (0, 3, 7):
        out = tmp_path / f"sample{seed}"
        assert (
            run_cli(
                "sample",
                "--network",
                world["ckpt"],
                "--outdir",
                out,
                "--n",
                1,
                "--seed",
                seed,
                "--truncation",
                1,
                "--no-sheet",
                "--device",
                "cpu",
            )[0]
            == 0
        )
        shutil.copy(out / "000000.png", folder / f"seed{seed}.png")
    ref = tmp_path / "ref.npz"
    features = np.random.default_rng(0).gamma(1.0, size=(4, 2048)).astype(np.float32)  # any fixed reference
    Stats(features.mean(0), np.cov(features, rowvar=False), 4, {}, features).save(ref)
    common = ["--ref", ref, "--batch", "1", "--inception-weights", weights_file, "--kid-subsets", "5"]
    network = scores(fid, "--network", world["ckpt"], "--seeds", "0,3,7", *common)
    saved = scores(fid, "--data", folder, *common)
    assert network["fid3"] > 0 and network["fid3"] == pytest.approx(saved["fid3"], rel=1e-6)
    assert network["kid3"] == pytest.approx(saved["kid3"], rel=1e-6, abs=1e-9)


def test_a_sample_folder_is_scored_by_the_images_its_manifest_lists(world, fid, run_cli, cheap, weights_file, tmp_path):
    samples, plain = tmp_path / "samples", tmp_path / "plain"
    assert run_cli("sample", "--network", world["ckpt"], "--outdir", samples, "--n", 3, "--device", "cpu")[0] == 0
    plain.mkdir()
    for name in ("000000.png", "000001.png", "000002.png"):  # not the masks beside them
        shutil.copy(samples / name, plain / name)
    common = ["--ref", world["ref"], "--inception-weights", weights_file]
    listed, copied = scores(fid, "--data", samples, *common), scores(fid, "--data", plain, *common)
    assert listed["data_kind"] == "samples" and copied["data_kind"] == "folder" and listed["count"] == 3
    assert listed["fid3"] == pytest.approx(copied["fid3"], rel=1e-9) and listed["kid3"] == pytest.approx(copied["kid3"])


def test_a_set_against_itself_scores_zero(world, fid, cheap, weights_file):
    result = scores(fid, "--data", world["db"], "--ref", world["ref"], "--inception-weights", weights_file)
    stats = Stats.load(world["ref"])
    assert result["count"] == 12 and abs(result["fid12"]) < 1e-9 * np.trace(stats.sigma)
    # Every KID subset is the whole set: the estimator's bias against itself, (2/m)(mean k(x, y) - mean k(x, x)).
    x = stats.features.astype(np.float64)
    kernel = (x @ x.T / DIMS + 1) ** 3
    bias = 2 / 12 * ((kernel.sum() - np.trace(kernel)) / (12 * 11) - np.trace(kernel) / 12)
    assert result["kid12"] == pytest.approx(bias, rel=1e-4) and result["kid12_std"] < 1e-6 * abs(bias)


def test_two_statistics_files_give_fid_only_and_say_so(world, fid, cheap, tmp_path):
    stats = Stats.load(world["ref"])
    moved = tmp_path / "moved.npz"
    Stats(stats.mu + 0.5, stats.sigma * 1.5, 10_000, {}).save(moved)
    result = scores(fid, "--data", moved, "--ref", world["ref"])
    assert result["fid10k"] == pytest.approx(frechet_distance(stats.mu + 0.5, stats.sigma * 1.5, stats.mu, stats.sigma))
    assert "kid10k" not in result and f"--data {moved} holds mu and sigma only" in result["kid_skipped"]
    code, out, err = fid("--data", moved, "--ref", world["ref"])
    assert code == 0 and "fid10k" in out and "kid10k" in out and "not computed" in out, err


def test_user_mistakes_are_one_line_errors(world, fid, tmp_path):
    stats = Stats.load(world["ref"])
    small = tmp_path / "small.npz"
    Stats(stats.mu[:16], stats.sigma[:16, :16], 12, {}).save(small)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "one").mkdir()
    shutil.copy(next((world["root"] / "prep" / "rgb").glob("*.png")), tmp_path / "one" / "a.png")
    cases = [
        (("--data", world["ref"]), ["--ref is missing"]),
        (("--ref", world["ref"]), ["--network", "--data"]),
        (("--network", world["ckpt"], "--data", world["db"], "--ref", world["ref"]), ["not both"]),
        (("--data", small, "--ref", world["ref"]), ["--data", "16-d", f"{DIMS}-d"]),
        (("--data", world["db"], "--ref", small), ["--ref", str(small), "16-d", "2048-d", "gcgan inception"]),
        (("--data", tmp_path / "notes.txt", "--ref", world["ref"]), ["--data", "neither"]),
        (("--data", tmp_path / "empty", "--ref", world["ref"]), ["--data", "neither"]),
        (("--data", world["db"], "--ref", tmp_path / "absent.npz"), ["--ref", "no such file"]),
        (("--data", tmp_path / "one", "--ref", world["ref"]), ["--data", "1 image(s)", "at least 2"]),
        (("--data", world["db"], "--seeds", "0-3", "--ref", world["ref"]), ["--seeds", "--network"]),
        (("--network", world["ckpt"], "--seeds", "0-3", "-n", "5", "--ref", world["ref"]), ["-n 5", "4 seeds"]),
        (("--network", world["ckpt"], "--seeds", "4-1", "--ref", world["ref"]), ["--seeds", "4-1"]),
        (("--data", small, "-n", "4", "--ref", small), ["-n", "statistics"]),
    ]
    for args, words in cases:
        code, _, err = fid(*args)
        assert code == 2, (args, err)
        one_error(err, *words)


def test_unreadable_images_are_named(world, fid, cheap, weights_file, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, png in enumerate(sorted((world["root"] / "prep" / "rgb").glob("*.png"))[:3]):
        shutil.copy(png, folder / f"{i}.png")
    (folder / "1.png").write_bytes((folder / "1.png").read_bytes()[:100])
    code, _, err = fid("--data", folder, "--ref", world["ref"], "--inception-weights", weights_file, "-j", "1")
    assert code == 2
    one_error(err, str(folder / "1.png"), "not a readable image")


def test_seeds_parse_like_gen_images():
    assert parse_seeds("0-3") == [0, 1, 2, 3] and parse_seeds("1,5,9") == [1, 5, 9]
    assert parse_seeds("7, 0-2") == [7, 0, 1, 2]
    for bad in ("", "a-b", "3-1", "-2", "1,,2"):
        with pytest.raises(UsageError, match="--seeds"):
            parse_seeds(bad)


def features_of(ckpt: Path, db: Path) -> dict:
    """Pooled features of a generator (7 seeds: shares of 4 and 3 on two ranks; 1 seed: one share empty)
    and of 9 of a DB's images, one image per batch (so that no image depends on its batch's size)."""
    loaded, network = load_generator(ckpt, torch.device("cpu")), CheapFeatures()
    return {
        "seven": generator_features(loaded.generator, loaded.gaze_labels, range(7), network, batch=1, keep=True),
        "one": generator_features(loaded.generator, loaded.gaze_labels, [5], network, batch=1, keep=True),
        "real": image_features(ImageSet(db, "db"), network, torch.device("cpu"), n=9, batch=1, keep=True),
    }


def _sharded(rank: int, size: int, init: str, ckpt: str, db: str, out: str) -> None:
    """One of `size` gloo ranks: rank 0 saves the pooled features it got."""
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    try:
        torch.set_num_threads(1)
        single = features_of(Path(ckpt), Path(db))
        if rank == 0:
            np.savez(
                out,
                **{
                    f"{name}_{part}": value
                    for name, stats in single.items()
                    for part, value in (
                        ("count", stats.count),
                        ("total", stats.total.numpy()),
                        ("outer", stats.outer.numpy()),
                        ("features", stats.features().numpy()),
                    )
                },
            )
    finally:
        dist.destroy_process_group()


def test_sharded_statistics_and_kid_equal_one_process(world, tmp_path):
    out = tmp_path / "sharded.npz"
    mp.spawn(
        _sharded,
        args=(2, f"file://{tmp_path / 'store'}", str(world["ckpt"]), str(world["db"]), str(out)),
        nprocs=2,
        join=True,
    )
    single = features_of(world["ckpt"], world["db"])
    with np.load(out) as sharded:
        for name, stats in single.items():
            assert int(sharded[f"{name}_count"]) == stats.count == len(sharded[f"{name}_features"])
            for part, value in (("total", stats.total), ("outer", stats.outer), ("features", stats.features())):
                np.testing.assert_allclose(sharded[f"{name}_{part}"], value.numpy(), rtol=1e-5, atol=1e-6)
        kid_sharded = kernel_distance(sharded["seven_features"], sharded["real_features"], 10, 5)
        kid_single = kernel_distance(single["seven"].features(), single["real"].features(), 10, 5)
    assert kid_sharded == pytest.approx(kid_single, rel=1e-5)
