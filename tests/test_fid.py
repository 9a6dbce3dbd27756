"""FID: feature statistics against numpy, the Fréchet distance against its closed form, the
FID Inception network (random weights: the real ones cannot be downloaded here), weight
resolution, and `gcgan inception` end to end on a packed synthetic set."""

import urllib.error

import numpy as np
import pytest
import torch
from torch import nn

from gcgan_cli import cli
from gcgan_cli.core.dataset import GazeMaskDataset
from gcgan_cli.core.metrics import inception_weights
from gcgan_cli.core.metrics.fid import FeatureStats, Stats, dataset_stats, fid, frechet_distance
from gcgan_cli.core.metrics.inception import FidInception, load_fid_inception
from gcgan_cli.errors import CheckpointError, DatasetError, UsageError


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("fid")
    assert cli.run(["segment", "synthetic", "--n", "12", "--size", "64", "--out", str(root / "prep"), "-j", "1"]) == 0
    assert cli.run(["pack", str(root / "prep"), "--out", str(root / "db"), "--size", "64", "-j", "1"]) == 0
    return root / "db"


def test_feature_stats_match_numpy():
    features = np.random.default_rng(0).normal(size=(103, 16)) * np.linspace(0.5, 3, 16) + 2.0
    stats = FeatureStats(16)
    for start in range(0, 103, 25):  # uneven last batch
        stats.add(torch.from_numpy(features[start : start + 25]).float())
    mean, cov = stats.mean_cov()
    assert stats.count == 103 and mean.dtype == cov.dtype == np.float64
    np.testing.assert_allclose(mean, features.astype(np.float32).mean(0), rtol=1e-6)
    np.testing.assert_allclose(cov, np.cov(features.astype(np.float32), rowvar=False), rtol=1e-5, atol=1e-6)


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
    assert np.isfinite(value) and value == pytest.approx(32.0, abs=1e-3)


def test_stats_file_round_trip_without_pickle(tmp_path):
    stats = Stats(np.arange(4.0), np.eye(4) * 2, 10, {"db": "x"})
    stats.save(tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz", allow_pickle=False) as data:
        assert data["mu"].dtype == np.float64 and data["sigma"].shape == (4, 4) and int(data["count"]) == 10
    loaded = Stats.load(tmp_path / "s.npz")
    assert loaded.config == {"db": "x"} and np.array_equal(loaded.sigma, stats.sigma)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not FID statistics"):
        Stats.load(tmp_path / "bad.npz")
    with pytest.raises(DatasetError, match="gcgan inception"):
        Stats.load(tmp_path / "missing.npz")


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
    with pytest.raises(CheckpointError, match=r"1 missing keys \(e\.g\. Mixed_7c.branch_pool.conv.weight\), 1 shape mismatches"):
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
    assert "--weights PATH" in message and inception_weights.WEIGHTS_ENV in message and str(hub / "checkpoints") in message
    (hub / "checkpoints").mkdir(parents=True, exist_ok=True)
    (hub / "checkpoints" / inception_weights.WEIGHTS_FILE).write_bytes(b"w")
    env_file.write_bytes(b"w")
    explicit.write_bytes(b"w")
    assert inception_weights.resolve_inception_weights() == hub / "checkpoints" / inception_weights.WEIGHTS_FILE
    monkeypatch.setenv(inception_weights.WEIGHTS_ENV, str(env_file))
    assert inception_weights.resolve_inception_weights() == env_file
    assert inception_weights.resolve_inception_weights(explicit) == explicit
    with pytest.raises(UsageError, match="--weights"):
        inception_weights.resolve_inception_weights(tmp_path / "absent.pth")
    assert len(downloads) == 1


def test_downloaded_weights_land_in_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(inception_weights.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda url, dst, hash_prefix=None, progress=True: open(dst, "wb").close())
    assert inception_weights.resolve_inception_weights() == tmp_path / "hub" / "checkpoints" / inception_weights.WEIGHTS_FILE


class PooledPixels(nn.Module):
    """A cheap stand-in feature network (8x8 average pool, 192-d) for the statistics plumbing."""

    def forward(self, images):
        return nn.functional.adaptive_avg_pool2d(images, 8).flatten(1)


def test_fid_of_a_set_against_its_own_stats_is_zero_and_a_shifted_set_is_not(db):
    network = PooledPixels()
    stats = dataset_stats(db, network, torch.device("cpu"), batch=5)
    assert stats.count == 12 and stats.mu.shape == (192,) and stats.config["selection"] == "all"
    images = torch.stack([GazeMaskDataset(db, with_mask=False)[i]["image"] for i in range(12)])
    served = iter(images.split(5))
    same = fid(lambda size: next(served), stats, network, n=12, batch=5, device=torch.device("cpu"))
    assert abs(same) < 1e-3  # 12 images in 192 dims: singular, so the eps guard adds ~2 eps d
    shifted = fid(lambda size: torch.rand(size, 3, 64, 64), stats, network, n=12, batch=5, device=torch.device("cpu"))
    assert shifted > 1.0
    subset = dataset_stats(db, network, torch.device("cpu"), n=4)
    assert subset.count == 4 and subset.config["selection"] == "4 evenly spaced"


def test_inception_command_writes_stats(db, weights_file, tmp_path, capsys):
    out = tmp_path / "stats.npz"
    code = cli.run(["inception", str(db), "--output", str(out), "--weights", str(weights_file), "--n", "6",
                    "--batch", "4", "--device", "cpu", "-j", "0"])
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
    code = cli.run(["inception", str(db), "--output", str(tmp_path / "s.npz"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "could not be downloaded (offline)" in err and len(err.strip().splitlines()) == 1
    code = cli.run(["inception", str(tmp_path / "nothing"), "--output", str(tmp_path / "s.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err
    assert not (tmp_path / "s.npz").exists()
