"""FID: Inception feature statistics of a dataset or a generator, and the Fréchet distance.

Statistics are accumulated on the device in float64 (count, sum, sum of outer products), so
memory does not grow with the number of images; mean and covariance (np.cov's unbiased
estimate) come out in float64. They are stored as NPZ (`mu`, `sigma`, `count`, `config`),
loadable with allow_pickle=False; `mu` and `sigma` are the names pytorch-fid uses.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
from torch.utils.data import DataLoader, Subset

import gcgan_cli
from gcgan_cli.core.dataset import GazeMaskDataset
from gcgan_cli.core.metrics.inception import FEATURE_DIM, INPUT_SIZE
from gcgan_cli.data.prep_dir import write_atomic
from gcgan_cli.errors import DatasetError

STATS_FORMAT = "gcgan-fid-stats"


class FeatureStats:
    """Running count, sum and sum of outer products of feature vectors, in float64."""

    def __init__(self, dims: int, device: torch.device | str = "cpu"):
        self.count = 0
        self.total = torch.zeros(dims, dtype=torch.float64, device=device)
        self.outer = torch.zeros(dims, dims, dtype=torch.float64, device=device)

    def add(self, features: torch.Tensor) -> None:
        features = features.detach().to(self.total.device, torch.float64)
        self.count += features.shape[0]
        self.total += features.sum(0)
        self.outer += features.T @ features

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 feature vectors, got {self.count}")
        mean = self.total / self.count
        cov = (self.outer - self.count * torch.outer(mean, mean)) / (self.count - 1)
        return mean.cpu().numpy(), cov.cpu().numpy()


@dataclass
class Stats:
    mu: np.ndarray
    sigma: np.ndarray
    count: int
    config: dict

    def save(self, path: Path) -> None:
        """NPZ under a temp name, then renamed: never half a file under `path`."""
        data = io.BytesIO()
        np.savez(data, mu=self.mu, sigma=self.sigma, count=np.int64(self.count),
                 config=np.array(json.dumps(self.config, sort_keys=True)), format=np.array(STATS_FORMAT))
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data.getvalue())

    @classmethod
    def load(cls, path: Path) -> Stats:
        """Ours, or any NPZ with pytorch-fid's `mu` and `sigma`."""
        try:
            with np.load(path, allow_pickle=False) as data:
                mu, sigma = np.asarray(data["mu"], np.float64), np.asarray(data["sigma"], np.float64)
                count = int(data["count"]) if "count" in data else 0
                config = json.loads(str(data["config"])) if "config" in data else {}
        except FileNotFoundError:
            raise DatasetError(f"{path}: no such statistics file; make one with `gcgan inception DB --output {path}`") from None
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise DatasetError(f"{path}: not FID statistics ({exc}); expected an NPZ with mu and sigma from `gcgan inception`") from None
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise DatasetError(f"{path}: mu {mu.shape} and sigma {sigma.shape} do not match; expected (D,) and (D, D)")
        return cls(mu, sigma, count, config)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)).

    The usual guards: when S1 S2 is singular (fewer samples than dimensions) and its square
    root inaccurate or not finite, eps is added to both diagonals; a complex result from
    round-off is reduced to its real part, unless an imaginary part on the diagonal exceeds
    1e-3, which means the covariances are not valid.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics of different dimensions: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("error", scipy.linalg.LinAlgWarning)
        try:
            covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
        except scipy.linalg.LinAlgWarning:  # singular: handled below
            covmean = np.full_like(sigma1, np.nan)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrtm gave an imaginary component of {np.max(np.abs(covmean.imag)):.3g}: invalid covariances")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


@torch.no_grad()
def feature_stats(
    network: torch.nn.Module,
    batches: Iterable[torch.Tensor],
    device: torch.device,
    limit: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> FeatureStats:
    """Statistics of the network's features over image batches in [-1, 1], up to `limit` images."""
    stats = None
    for images in batches:
        if limit is not None:
            images = images[: limit - (stats.count if stats else 0)]
        features = network(images.to(device, torch.float32, non_blocking=True))
        stats = stats or FeatureStats(features.shape[1], device)
        stats.add(features)
        if on_batch:
            on_batch(images.shape[0])
        if limit is not None and stats.count >= limit:
            break
    if stats is None:
        raise ValueError("no images to compute statistics of")
    return stats


def fid(
    generator: Callable[[int], torch.Tensor],
    stats: Stats,
    network: torch.nn.Module,
    n: int,
    batch: int,
    device: torch.device,
    on_batch: Callable[[int], None] | None = None,
) -> float:
    """FID of `n` images from `generator(batch_size) -> [B, 3, H, W] in [-1, 1]` against `stats`."""
    sizes = [min(batch, n - start) for start in range(0, n, batch)]
    fake = feature_stats(network, (generator(size) for size in sizes), device, n, on_batch)
    mu, sigma = fake.mean_cov()
    return frechet_distance(mu, sigma, stats.mu, stats.sigma)


def dataset_stats(
    db: Path,
    network: torch.nn.Module,
    device: torch.device,
    n: int | None = None,
    batch: int = 50,
    workers: int = 0,
    on_start: Callable[[int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Stats:
    """Statistics of the DB's images, all of them or `n` spread evenly over the records."""
    dataset = GazeMaskDataset(db, with_mask=False)
    total = len(dataset) if n is None else min(n, len(dataset))
    indices = np.unique(np.linspace(0, len(dataset) - 1, total).round().astype(int)).tolist()
    if on_start:
        on_start(len(indices))
    loader = DataLoader(Subset(dataset, indices), batch_size=batch, num_workers=workers,
                        pin_memory=device.type == "cuda", persistent_workers=False)
    features = feature_stats(network, (item["image"] for item in loader), device, on_batch=on_batch)
    mu, sigma = features.mean_cov()
    config = {"network": "FID Inception-v3 (TF 2015-12-05, pytorch-fid weights)", "dims": FEATURE_DIM,
              "input": f"[-1, 1], bilinear to {INPUT_SIZE}", "db": str(db), "db_count": len(dataset),
              "db_size": dataset.meta.size, "db_inputs_sha256": dataset.meta.source.get("inputs_sha256"),
              "selection": "all" if total == len(dataset) else f"{len(indices)} evenly spaced",
              "gcgan_version": gcgan_cli.__version__}
    return Stats(mu, sigma, features.count, config)
