"""FID and KID: feature statistics against numpy, the Fréchet distance against its closed form, an
SVD oracle and scipy's sqrtm, KID against a numpy estimator, the FID Inception network (random
weights: the real ones cannot be downloaded here) and its parity with pytorch-fid's, weight
resolution, and `gcgan inception` end to end on a packed synthetic set."""

import urllib.error

import numpy as np
import pytest
import torch
from torch import nn

from gcgan_cli import cli
from gcgan_cli.core.dataset import GazeMaskDataset
from gcgan_cli.core.metrics import inception_weights
from gcgan_cli.core.metrics.fid import (
    FeatureStats,
    Stats,
    dataset_stats,
    feature_stats,
    frechet_distance,
    kernel_distance,
    metric_name,
    trace_sqrt_product,
)
from gcgan_cli.core.metrics.inception import FidInception, load_fid_inception
from gcgan_cli.errors import CheckpointError, DatasetError, UsageError


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("fid")
    assert (
        cli.run(["segment", "synthetic", "--n", "12", "--size", "64", "--outdir", str(root / "prep"), "-j", "1"]) == 0
    )
    assert cli.run(["pack", "--data", str(root / "prep"), "--outdir", str(root / "db"), "--size", "64", "-j", "1"]) == 0
    return root / "db"


def test_feature_stats_match_numpy():
    features = np.random.default_rng(0).normal(size=(103, 16)) * np.linspace(0.5, 3, 16) + 2.0
    stats, kept = FeatureStats(), FeatureStats(keep=True)
    for start in range(0, 103, 25):  # uneven last batch
        for target in (stats, kept):
            target.add(torch.from_numpy(features[start : start + 25]).float())
    mean, cov = stats.mean_cov()
    assert stats.count == 103 and stats.dims == 16 and mean.dtype == cov.dtype == np.float64
    np.testing.assert_allclose(mean, features.astype(np.float32).mean(0), rtol=1e-6)
    np.testing.assert_allclose(cov, np.cov(features.astype(np.float32), rowvar=False), rtol=1e-5, atol=1e-6)
    assert torch.equal(kept.features(), torch.from_numpy(features).float())
    with pytest.raises(ValueError, match="not kept"):
        stats.features()
    assert stats.gathered() is stats  # one process: nothing to pool


def test_metric_names_carry_the_image_count():
    assert [metric_name("fid", n) for n in (50_000, 10_000, 2_500, 1_000, 500, 3)] == [
        "fid50k",
        "fid10k",
        "fid2.5k",
        "fid1k",
        "fid500",
        "fid3",
    ]
    assert metric_name("kid", 10_000) == "kid10k" and metric_name("fid", 0) == "fid"


def test_frechet_distance_closed_form_self_and_symmetry():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    var1, var2 = rng.uniform(0.5, 2, 8), rng.uniform(0.5, 2, 8)
    # Diagonal covariances: FD = |mu1 - mu2|^2 + sum (sqrt(v1) - sqrt(v2))^2.
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-9)
    a, b = rng.normal(size=(200, 8)), rng.normal(size=(200, 8)) @ rng.normal(size=(8, 8))
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    d12 = frechet_distance(a.mean(0), s1, b.mean(0), s2)
    assert d12 > 1.0 and d12 == pytest.approx(frechet_distance(b.mean(0), s2, a.mean(0), s1), rel=1e-6)
    assert abs(frechet_distance(a.mean(0), s1, a.mean(0), s1)) < 1e-6


def test_frechet_distance_survives_singular_covariances():
    rng = np.random.default_rng(2)
    few = rng.normal(size=(4, 32))  # 4 samples in 32 dims: rank 3
    sigma = np.cov(few, rowvar=False)
    value = frechet_distance(few.mean(0), sigma, few.mean(0) + 1.0, sigma)
    assert value == pytest.approx(32.0, abs=1e-9)  # no eps on the diagonals: exactly |mu1 - mu2|^2
    with_eps = frechet_distance(few.mean(0), sigma, few.mean(0) + 1.0, sigma, method="sqrtm")
    assert with_eps == pytest.approx(32.0, abs=1e-3)


def covariances(rng, n: int, d: int):
    """Two sample sets [n, d] (skewed, correlated) and their covariances."""
    a = np.abs(rng.normal(size=(n, d))) ** 2 * rng.uniform(0.2, 2, d)
    b = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) / np.sqrt(d) + 0.5
    return a, b, np.cov(a, rowvar=False), np.cov(b, rowvar=False)


@pytest.mark.parametrize("n, d", [(400, 64), (30, 64), (20, 256), (12, 512)])
def test_eigen_trace_is_exact_against_an_svd_oracle(n, d):
    # S1 S2 = A'A B'B / (n-1)^2 for centred data A, B: its nonzero eigenvalues are the squared singular
    # values of A B' / (n-1), so Tr sqrt(S1 S2) is their sum, from an n x n matrix (exact for any rank).
    a, b, s1, s2 = covariances(np.random.default_rng(n + d), n, d)
    centred_a, centred_b = a - a.mean(0), b - b.mean(0)
    oracle = np.linalg.svd(centred_a @ centred_b.T / (n - 1), compute_uv=False).sum()
    assert trace_sqrt_product(s1, s2) == pytest.approx(oracle, rel=1e-10)
    assert frechet_distance(a.mean(0), s1, a.mean(0), s1) == pytest.approx(0.0, abs=1e-9 * np.trace(s1))


@pytest.mark.parametrize("n, d", [(400, 64), (800, 128), (30, 64), (20, 256)])
def test_eigen_path_agrees_with_scipys_sqrtm(n, d):
    a, b, s1, s2 = covariances(np.random.default_rng(n * d), n, d)  # full rank, then rank n - 1 < d
    eigen = frechet_distance(a.mean(0), s1, b.mean(0), s2)
    assert eigen == pytest.approx(frechet_distance(a.mean(0), s1, b.mean(0), s2, method="sqrtm"), rel=1e-6)
    assert eigen == pytest.approx(frechet_distance(b.mean(0), s2, a.mean(0), s1), rel=1e-9)


def kid_oracle(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 of two whole sets under k(a, b) = (a.b / d + 1)^3, pair by pair."""
    d, m = x.shape[1], len(x)
    k = lambda p, q: (p @ q / d + 1) ** 3  # noqa: E731
    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    across = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return within / (m * (m - 1)) - 2 * across / m**2


def test_kid_is_the_unbiased_mmd_of_a_cubic_kernel():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(9, 6)), rng.normal(size=(9, 6)) + 0.4
    # Subsets as large as the sets are the sets themselves (permuted): every subset gives the oracle.
    mean, std, size = kernel_distance(x, y, subsets=3, subset_size=50)
    assert size == 9 and mean == pytest.approx(kid_oracle(x, y), rel=1e-12) and std < 1e-12
    # Real subsets: the mean and (ddof 0) std of the oracle over the same draws, x's subset drawn first.
    big_x, big_y = rng.normal(size=(40, 6)), rng.normal(size=(30, 6)) * 1.3
    draws = np.random.default_rng(0)
    expected = []
    for _ in range(7):
        pick_x, pick_y = draws.choice(40, 8, replace=False), draws.choice(30, 8, replace=False)
        expected.append(kid_oracle(big_x[pick_x], big_y[pick_y]))
    mean, std, size = kernel_distance(big_x, big_y, subsets=7, subset_size=8)
    assert size == 8 and mean == pytest.approx(np.mean(expected), rel=1e-10)
    assert std == pytest.approx(np.std(expected), rel=1e-8)


def test_kid_of_a_set_against_itself_is_its_bias_and_near_zero():
    x = np.random.default_rng(6).normal(size=(200, 16)) + 1.0
    # Against itself, every subset is the whole set: (2/m)(mean off-diagonal k - mean k(x, x)) exactly.
    k = (x @ x.T / 16 + 1) ** 3
    bias = 2 / 200 * ((k.sum() - np.trace(k)) / (200 * 199) - np.trace(k) / 200)
    assert kernel_distance(x, x, subsets=2, subset_size=200)[0] == pytest.approx(bias, rel=1e-10)
    same, _, _ = kernel_distance(x[:100], x[100:], subsets=20, subset_size=50)
    shifted, _, _ = kernel_distance(x[:100], x[100:] + 0.5, subsets=20, subset_size=50)
    assert abs(same) < 0.05 * shifted


def test_stats_file_round_trip_without_pickle(tmp_path):
    stats = Stats(np.arange(4.0), np.eye(4) * 2, 10, {"db": "x"})
    stats.save(tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz", allow_pickle=False) as data:
        assert data["mu"].dtype == np.float64 and data["sigma"].shape == (4, 4) and int(data["count"]) == 10
        assert "features" not in data
    loaded = Stats.load(tmp_path / "s.npz")
    assert loaded.config == {"db": "x"} and np.array_equal(loaded.sigma, stats.sigma) and loaded.features is None
    features = np.arange(12, dtype=np.float32).reshape(3, 4)
    Stats(np.arange(4.0), np.eye(4), 3, {}, features).save(tmp_path / "f.npz")
    assert np.array_equal(Stats.load(tmp_path / "f.npz").features, features)
    np.savez(tmp_path / "pytorch_fid.npz", mu=np.zeros(4), sigma=np.eye(4), features=np.zeros((5, 3)))
    with pytest.raises(DatasetError, match=r"features \(5, 3\) do not match mu \(4,\)"):
        Stats.load(tmp_path / "pytorch_fid.npz")
    np.savez(tmp_path / "pytorch_fid.npz", mu=np.zeros(4), sigma=np.triu(np.ones((4, 4))))
    with pytest.raises(DatasetError, match="not symmetric"):
        Stats.load(tmp_path / "pytorch_fid.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not FID statistics"):
        Stats.load(tmp_path / "bad.npz")
    with pytest.raises(DatasetError, match="gcgan inception"):
        Stats.load(tmp_path / "missing.npz")


@pytest.mark.slow
def test_network_gives_2048_features_for_any_input_size(weights_file):
    network = load_fid_inception(weights_file)
    with torch.no_grad():
        colour = network(torch.rand(2, 3, 64, 64) * 2 - 1)
        grey = network(torch.rand(1, 1, 80, 80) * 2 - 1)
    assert colour.shape == (2, 2048) and grey.shape == (1, 2048)
    assert torch.isfinite(colour).all() and colour.std() > 0 and not torch.allclose(colour[0], colour[1])
    assert not any(p.requires_grad for p in network.parameters()) and not network.training


def test_network_has_torchvision_inception_v3s_feature_parameters():
    # torchvision's inception_v3 has 27,161,264 parameters; without its AuxLogits (3,326,696) and its
    # 1000-way fc (2,049,000) that leaves the feature network's 21,785,568.
    assert sum(p.numel() for p in FidInception().parameters()) == 27_161_264 - 3_326_696 - 2_049_000


def test_a_wrong_state_dict_is_a_clear_error(tmp_path, weights_file):
    state = torch.load(weights_file, weights_only=True)
    del state["Mixed_7c.branch_pool.conv.weight"]
    state["Mixed_6b.branch1x1.conv.weight"] = torch.zeros(3, 3, 1, 1)
    torch.save(state, tmp_path / "cut.pth")
    with pytest.raises(
        CheckpointError, match=r"1 missing keys \(e\.g\. Mixed_7c.branch_pool.conv.weight\), 1 shape mismatches"
    ):
        load_fid_inception(tmp_path / "cut.pth")
    torch.save(nn.Linear(2, 2).state_dict(), tmp_path / "linear.pth")
    with pytest.raises(CheckpointError, match="not the FID Inception weights"):
        load_fid_inception(tmp_path / "linear.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a readable torch weights file"):
        load_fid_inception(tmp_path / "junk.pth")


def test_weights_resolution_order(tmp_path, monkeypatch):
    hub, env_file, explicit = tmp_path / "hub", tmp_path / "env.pth", tmp_path / "explicit.pth"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.delenv(inception_weights.WEIGHTS_ENV, raising=False)
    downloads = []

    def offline(url, dst, hash_prefix=None, progress=True):
        downloads.append(url)
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(CheckpointError) as error:
        inception_weights.resolve_inception_weights()
    message = str(error.value)
    assert downloads == [inception_weights.WEIGHTS_URL]
    assert (
        "--inception-weights PATH" in message
        and inception_weights.WEIGHTS_ENV in message
        and str(hub / "checkpoints") in message
    )
    (hub / "checkpoints").mkdir(parents=True, exist_ok=True)
    (hub / "checkpoints" / inception_weights.WEIGHTS_FILE).write_bytes(b"w")
    env_file.write_bytes(b"w")
    explicit.write_bytes(b"w")
    assert inception_weights.resolve_inception_weights() == hub / "checkpoints" / inception_weights.WEIGHTS_FILE
    monkeypatch.setenv(inception_weights.WEIGHTS_ENV, str(env_file))
    assert inception_weights.resolve_inception_weights() == env_file
    assert inception_weights.resolve_inception_weights(explicit) == explicit
    with pytest.raises(UsageError, match="--inception-weights"):
        inception_weights.resolve_inception_weights(tmp_path / "absent.pth")
    assert len(downloads) == 1


def test_downloaded_weights_land_in_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(inception_weights.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(
        torch.hub, "download_url_to_file", lambda url, dst, hash_prefix=None, progress=True: open(dst, "wb").close()
    )
    assert (
        inception_weights.resolve_inception_weights()
        == tmp_path / "hub" / "checkpoints" / inception_weights.WEIGHTS_FILE
    )


class PooledPixels(nn.Module):
    """A cheap stand-in feature network (8x8 average pool, 192-d) for the statistics plumbing."""

    def forward(self, images):
        return nn.functional.adaptive_avg_pool2d(images, 8).flatten(1)


def test_fid_of_a_set_against_its_own_stats_is_zero_and_a_shifted_set_is_not(db):
    network = PooledPixels()
    stats = dataset_stats(db, network, torch.device("cpu"), batch=5, keep_features=True)
    assert stats.count == 12 and stats.mu.shape == (192,) and stats.config["selection"] == "all"
    images = torch.stack([GazeMaskDataset(db, with_mask=False)[i]["image"] for i in range(12)])
    assert torch.equal(torch.from_numpy(stats.features), network(images))
    same = feature_stats(network, images.split(5), torch.device("cpu")).mean_cov()
    assert abs(frechet_distance(*same, stats.mu, stats.sigma)) < 1e-9  # 12 images in 192 dims: singular, still 0
    shifted = feature_stats(network, [torch.rand(12, 3, 64, 64)], torch.device("cpu")).mean_cov()
    assert frechet_distance(*shifted, stats.mu, stats.sigma) > 1.0
    subset = dataset_stats(db, network, torch.device("cpu"), n=4)
    assert subset.count == 4 and subset.config["selection"] == "4 evenly spaced" and subset.features is None


def test_features_match_pytorch_fids_network(weights_file, monkeypatch):
    try:
        from pytorch_fid import inception as pytorch_fid_inception
    except Exception as exc:  # not installed, or its torchvision is missing or built for another torch
        pytest.skip(f"pytorch-fid is not usable here ({type(exc).__name__}: {str(exc).splitlines()[0]})")
    state = torch.load(weights_file, weights_only=True)
    # Its own fid_inception_v3 builds the network and loads this state (the release's names, which ours
    # share) where it would download the release.
    monkeypatch.setattr(pytorch_fid_inception, "load_state_dict_from_url", lambda url, progress=True: state)
    theirs = pytorch_fid_inception.InceptionV3([3]).eval()  # pool3, inputs in [0, 1] resized to 299
    ours = load_fid_inception(weights_file)
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = theirs(images)[0].flatten(1), ours(images * 2 - 1)
    assert got.std() > 0
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_inception_command_writes_stats(db, weights_file, tmp_path, capsys):
    out = tmp_path / "stats.npz"
    code = cli.run(
        [
            "inception",
            "--data",
            str(db),
            "--out",
            str(out),
            "--inception-weights",
            str(weights_file),
            "--n",
            "6",
            "--batch",
            "4",
            "--device",
            "cpu",
            "-j",
            "0",
        ]
    )
    assert code == 0, capsys.readouterr().err
    stats = Stats.load(out)
    assert stats.count == 6 and stats.mu.shape == (2048,) and stats.sigma.shape == (2048, 2048)
    assert np.allclose(stats.sigma, stats.sigma.T) and np.trace(stats.sigma) > 0
    assert stats.config["db"] == str(db) and stats.config["weights"] == str(weights_file)
    assert "gcgan inception" in capsys.readouterr().out


def test_inception_command_errors_are_one_line(db, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(inception_weights.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    code = cli.run(["inception", "--data", str(db), "--out", str(tmp_path / "s.npz"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "could not be downloaded (offline)" in err and len(err.strip().splitlines()) == 1
    code = cli.run(["inception", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "s.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err
    assert not (tmp_path / "s.npz").exists()
