"""FID and KID: Inception features of a generator, a DB or an image folder, their statistics, the
Fréchet distance and the kernel distance.

Statistics are accumulated on the device in float64 (count, sum, sum of outer products), so
memory does not grow with the number of images; mean and covariance (np.cov's unbiased
estimate) come out in float64. KID needs the features themselves, which are kept only when
asked for. Statistics are stored as NPZ (`mu`, `sigma`, `count`, `config`, optionally
`features` [N, D]), loadable with allow_pickle=False; `mu` and `sigma` are the names pytorch-fid
uses.

Generated images are scored as they would be saved: clamped and rounded to uint8 the way
`gcgan sample` writes its PNGs, then read back as a folder reader reads them, so the FID of a
network is the FID of its saved samples. Under torch.distributed each rank computes the features
of its share of the images (items rank, rank + size, ...) and the ranks pool their statistics.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import scipy.linalg
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Subset

import gcgan_cli
from gcgan_cli.core.dataset import GazeMaskDataset
from gcgan_cli.core.metrics.inception import FEATURE_DIM, INPUT_SIZE, to_input_size
from gcgan_cli.core.model import Generator
from gcgan_cli.core.visualize import to_uint8
from gcgan_cli.data.atomic import write_atomic
from gcgan_cli.data.image_files import cut_short
from gcgan_cli.data.pack_inputs import IMAGE_SUFFIXES, SAMPLES, find_inputs
from gcgan_cli.errors import DatasetError, GcganError, UsageError

STATS_FORMAT = "gcgan-fid-stats"
KID_SEED = 0  # the subsets KID draws: the same for every run


def world() -> tuple[int, int]:
    """(rank, size) under torch.distributed, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(items: Sequence) -> Sequence:
    """This rank's share of `items`: every size-th one from its rank on (all of them in one process)."""
    rank, size = world()
    return items[rank::size]


class FeatureStats:
    """Running count, sum and sum of outer products of feature vectors, in float64; with `keep`, the
    features themselves too (float32, as the network gives them). The size of the features is taken
    from the first batch."""

    def __init__(self, device: torch.device | str = "cpu", keep: bool = False):
        self.device = torch.device(device)
        self.count = 0
        self.total: torch.Tensor | None = None
        self.outer: torch.Tensor | None = None
        self.kept: list[torch.Tensor] | None = [] if keep else None

    @property
    def dims(self) -> int:
        return 0 if self.total is None else self.total.shape[0]

    def _allocate(self, dims: int) -> None:
        self.total = torch.zeros(dims, dtype=torch.float64, device=self.device)
        self.outer = torch.zeros(dims, dims, dtype=torch.float64, device=self.device)

    def add(self, features: torch.Tensor) -> None:
        if self.total is None:
            self._allocate(features.shape[1])
        if self.kept is not None:
            self.kept.append(features.detach().to(self.device, torch.float32))
        features = features.detach().to(self.device, torch.float64)
        self.count += features.shape[0]
        self.total += features.sum(0)
        self.outer += features.T @ features

    def features(self) -> torch.Tensor:
        """The kept features [count, dims], in the order they were added."""
        if self.kept is None:
            raise ValueError("the features were not kept (FeatureStats(keep=True))")
        return torch.cat(self.kept) if self.kept else torch.zeros(0, self.dims, device=self.device)

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 feature vectors, got {self.count}")
        mean = self.total / self.count
        cov = (self.outer - self.count * torch.outer(mean, mean)) / (self.count - 1)
        return mean.cpu().numpy(), cov.cpu().numpy()

    def gathered(self) -> FeatureStats:
        """Every rank's statistics pooled, on every rank (itself in one process). Kept features come
        back in the order of the list the ranks were given shares of (see `shard`): one
        all_reduce of the sums, one all_gather of the features when kept."""
        rank, size = world()
        if size == 1:
            return self
        shape = torch.tensor([self.count, self.dims], dtype=torch.int64, device=self.device)
        shapes = [torch.zeros_like(shape) for _ in range(size)]
        dist.all_gather(shapes, shape)
        counts = [int(s[0]) for s in shapes]
        if self.total is None:  # a rank whose share was empty
            self._allocate(max(int(s[1]) for s in shapes))
        pooled = FeatureStats(self.device, keep=self.kept is not None)
        pooled.count, pooled.total, pooled.outer = sum(counts), self.total.clone(), self.outer.clone()
        dist.all_reduce(pooled.total)
        dist.all_reduce(pooled.outer)
        if self.kept is not None:
            padded = torch.zeros(max(counts), self.dims, device=self.device)
            padded[: self.count] = self.features()
            parts = [torch.empty_like(padded) for _ in range(size)]
            dist.all_gather(parts, padded)
            # Item j of rank r is item j * size + r of the list: row-major over [j, r], the first `count`.
            pooled.kept = [torch.stack(parts, dim=1).reshape(-1, self.dims)[: pooled.count]]
        return pooled

    def to_stats(self, config: dict) -> Stats:
        mu, sigma = self.mean_cov()
        features = self.features().cpu().numpy() if self.kept is not None else None
        return Stats(mu, sigma, self.count, config, features)


@dataclass
class Stats:
    mu: np.ndarray
    sigma: np.ndarray
    count: int
    config: dict
    features: np.ndarray | None = None  # [count, D] float32, for KID; None when only mu and sigma are known

    def save(self, path: Path) -> None:
        """NPZ under a temp name, then renamed: never half a file under `path`."""
        data = io.BytesIO()
        extra = {} if self.features is None else {"features": self.features}
        np.savez(
            data,
            mu=self.mu,
            sigma=self.sigma,
            count=np.int64(self.count),
            config=np.array(json.dumps(self.config, sort_keys=True)),
            format=np.array(STATS_FORMAT),
            **extra,
        )
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
                features = np.asarray(data["features"], np.float32) if "features" in data else None
        except FileNotFoundError:
            raise DatasetError(f"{path}: no such statistics file; make one with `gcgan inception`") from None
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise DatasetError(
                f"{path}: not FID statistics ({exc}); expected an NPZ with mu and sigma from `gcgan inception`"
            ) from None
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise DatasetError(f"{path}: mu {mu.shape} and sigma {sigma.shape} do not match; expected (D,) and (D, D)")
        if not (np.isfinite(mu).all() and np.isfinite(sigma).all()) or not np.allclose(sigma, sigma.T):
            raise DatasetError(
                f"{path}: sigma is not a covariance (not finite or not symmetric); "
                "make the statistics again with `gcgan inception`"
            )
        if features is not None and (features.ndim != 2 or features.shape[1] != mu.shape[0]):
            raise DatasetError(f"{path}: features {features.shape} do not match mu {mu.shape}; expected (N, D)")
        return cls(mu, sigma, count or (len(features) if features is not None else 0), config, features)


def metric_name(metric: str, count: int) -> str:
    """`fid10k`, `kid2.5k`, `fid500`: the metric with the number of images it saw, as stylegan3
    names them; the bare name when that number is unknown (0)."""
    if count <= 0:
        return metric
    return f"{metric}{count / 1000:g}k" if count >= 1000 else f"{metric}{count}"


# --- the distances ---


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr(sqrt(S1 S2)) of two covariances by symmetric eigendecompositions.

    With S1 = V diag(w) V', S1 S2 is similar to diag(sqrt w) V' S2 V diag(sqrt w), which is
    symmetric positive semi-definite, so the trace is the sum of the square roots of that matrix's
    eigenvalues. Two `eigh` calls and two products replace sqrtm's Schur form of a general matrix
    (several times faster at 2048-d). Eigenvalues below numpy's matrix_rank tolerance (largest x
    dims x machine eps) are round-off and count as zero, and S1's null space is dropped before the
    second decomposition: singular covariances (fewer images than dimensions) need no eps on their
    diagonals, give the exact trace where sqrtm's is off by ~1e-6, and cost less.
    """
    values, vectors = np.linalg.eigh(sigma1)
    kept = _above_round_off(values) > 0
    root, basis = np.sqrt(values[kept]), vectors[:, kept]
    inner = (basis.T @ sigma2 @ basis) * root[:, None] * root[None, :]
    return float(np.sqrt(_above_round_off(np.linalg.eigvalsh((inner + inner.T) / 2))).sum())


def _above_round_off(values: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with those within round-off of zero (or below it) set to zero."""
    tolerance = max(values.max(), 0.0) * len(values) * np.finfo(values.dtype).eps
    return np.where(values > tolerance, values, 0.0)


def trace_sqrt_product_sqrtm(sigma1: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """Tr(sqrt(S1 S2)) as pytorch-fid computes it: scipy's sqrtm of S1 S2; when that is singular and
    its root inaccurate or not finite, eps is added to both diagonals; a complex result from
    round-off is reduced to its real part, unless an imaginary part on the diagonal exceeds 1e-3,
    which means the covariances are not valid."""
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
            raise ValueError(
                f"sqrtm gave an imaginary component of {np.max(np.abs(covmean.imag)):.3g}: invalid covariances"
            )
        covmean = covmean.real
    return float(np.trace(covmean))


TRACE_SQRT = {"eigh": trace_sqrt_product, "sqrtm": trace_sqrt_product_sqrtm}


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, method: str = "eigh"
) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)); `method` "sqrtm" is pytorch-fid's way of
    taking the root, kept as the reference the eigendecomposition is measured against."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics of different dimensions: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * TRACE_SQRT[method](sigma1, sigma2))


def kernel_distance(
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    device: torch.device | str = "cpu",
    seed: int = KID_SEED,
) -> tuple[float, float, int]:
    """KID: the unbiased estimate of MMD^2 between two feature sets [N, d] under the cubic polynomial
    kernel k(a, b) = (a.b / d + 1)^3 (Binkowski et al.), over `subsets` pairs of random subsets of
    m = min(len(x), len(y), subset_size) features each, drawn without replacement. Per subset:
    (sum_{i!=j} k(x_i, x_j) + sum_{i!=j} k(y_i, y_j)) / (m (m - 1)) - 2 sum_{i,j} k(x_i, y_j) / m^2.
    Returns (mean, std (ddof 0, as torchmetrics reports it), m); float64 on `device`."""
    x = torch.as_tensor(x).to(device, torch.float64)
    y = torch.as_tensor(y).to(device, torch.float64)
    m, dims = min(len(x), len(y), subset_size), x.shape[1]
    if m < 2 or y.shape[1] != dims:
        raise ValueError(f"KID needs two sets of >= 2 features of one size, got {tuple(x.shape)} and {tuple(y.shape)}")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        a = x[torch.from_numpy(rng.choice(len(x), m, replace=False)).to(x.device)]
        b = y[torch.from_numpy(rng.choice(len(y), m, replace=False)).to(y.device)]
        k_aa, k_bb, k_ab = ((p @ q.T / dims + 1) ** 3 for p, q in ((a, a), (b, b), (a, b)))
        within = k_aa.sum() - k_aa.diagonal().sum() + k_bb.sum() - k_bb.diagonal().sum()
        values.append(within / (m * (m - 1)) - 2 * k_ab.sum() / m**2)
    scores = torch.stack(values).cpu().numpy()
    return float(scores.mean()), float(scores.std()), m


# --- features of images ---


@torch.no_grad()
def feature_stats(
    network: torch.nn.Module,
    batches: Iterable[torch.Tensor],
    device: torch.device,
    keep: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> FeatureStats:
    """Statistics of the network's features over image batches in [-1, 1] (empty without batches)."""
    stats = FeatureStats(device, keep)
    for images in batches:
        stats.add(network(images.to(device, torch.float32, non_blocking=True)))
        if on_batch:
            on_batch(images.shape[0])
    return stats


def quantized(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as `gcgan sample` saves them and `ImageSet` reads them back: clamped and
    rounded to uint8 by visualize.to_uint8, then x / 127.5 - 1 on the CPU, as a PNG is decoded."""
    pixels = torch.from_numpy(to_uint8(images)).permute(0, 3, 1, 2)
    return pixels.float().div_(127.5).sub_(1.0).to(images.device)


def seeded_inputs(style_dim: int, labels: torch.Tensor, seeds: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(z [B, style_dim], gaze [B, 2]) on the CPU for per-image seeds: z from seed s and the gaze
    drawn from the label set with seed s + 1, which is what `gcgan sample --n 1 --seed s` draws."""
    z = torch.cat([torch.randn(1, style_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])
    picks = torch.cat([torch.randint(len(labels), (1,), generator=torch.Generator().manual_seed(s + 1)) for s in seeds])
    return z, labels.cpu()[picks]


@torch.no_grad()
def seeded_images(
    generator: Generator, labels: torch.Tensor, seeds: Sequence[int], batch: int
) -> Iterator[torch.Tensor]:
    """The generator's images [B, 3, H, W] for `seeds`, `batch` at a time: no truncation, the fixed
    noise buffers (as `gcgan sample --truncation 1` renders them)."""
    device = generator.grid.device
    for start in range(0, len(seeds), batch):
        z, gaze = seeded_inputs(generator.config.style_dim, labels, seeds[start : start + batch])
        latent = generator.compact(generator.mapping(z.to(device)))
        yield generator.synthesize(latent, gaze.to(device), randomize_noise=False).image


def generator_features(
    generator: Generator,
    labels: torch.Tensor,
    seeds: Sequence[int],
    network: torch.nn.Module,
    batch: int,
    keep: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> FeatureStats:
    """Features of the generator's quantized images for `seeds`, each rank rendering its share;
    the pooled statistics on every rank."""
    device = generator.grid.device
    images = (quantized(image) for image in seeded_images(generator, labels, shard(list(seeds)), batch))
    return feature_stats(network, images, device, keep, on_batch).gathered()


def fid(
    generator: Generator, labels: torch.Tensor, n: int, stats: Stats, network: torch.nn.Module, batch: int
) -> float | None:
    """FID of the generator's images for seeds 0..n-1 against `stats`: the value `gcgan fid
    --network` gives. Every rank renders its share; rank 0 gets the value, the others None."""
    fake = generator_features(generator, labels, range(n), network, batch)
    if world()[0] != 0:
        return None
    mu, sigma = fake.mean_cov()
    return frechet_distance(mu, sigma, stats.mu, stats.sigma)


class ImageSet(Dataset):
    """The images of a DB from `gcgan pack` or of a list of files, each [3, H, W] float in [-1, 1]
    (RGB, x / 127.5 - 1). An image that cannot be read is returned as the one-line reason, which
    the loader raises in the main process (a DataLoader worker's exception would come back wrapped
    in its traceback)."""

    def __init__(self, path: Path, kind: str, files: list[Path] | None = None):
        self.path, self.kind, self.files = path, kind, files
        self.db = GazeMaskDataset(path, with_mask=False) if kind == "db" else None

    def __len__(self) -> int:
        return len(self.db) if self.db is not None else len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor | str:
        try:
            return self.db[index]["image"] if self.db is not None else read_image(self.files[index])
        except GcganError as exc:
            return str(exc)


def read_image(path: Path) -> torch.Tensor:
    """An image file as [3, H, W] float in [-1, 1] (grey and 16-bit files become 8-bit RGB, alpha is dropped)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read it ({exc.strerror})") from None
    image = None
    if data and not cut_short(data):
        previous = cv2.getLogLevel()
        cv2.setLogLevel(0)  # silent: libpng and OpenCV print warnings on stderr for a damaged file
        try:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        except cv2.error:
            pass
        finally:
            cv2.setLogLevel(previous)
    if image is None:
        raise DatasetError(f"{path}: not a readable image (empty or cut short?); replace or remove it")
    return torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1))).float().div_(127.5).sub_(1.0)


def open_images(path: Path, option: str) -> ImageSet | Stats:
    """What `option` names: a statistics .npz, a DB from `gcgan pack`, a `gcgan sample` folder (the
    images its samples.jsonl lists), or a folder of images (every image file under it, sorted,
    hidden ones skipped). Refused in one line when it is none of these or holds under 2 images."""
    if not path.exists():
        raise DatasetError(f"{option} {path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise UsageError(
                f"{option} {path}: neither a statistics .npz, a DB from `gcgan pack`, nor a folder of "
                "images; give one of these (a generator checkpoint goes to --network)"
            )
        try:
            return Stats.load(path)
        except DatasetError as exc:
            raise DatasetError(f"{option} {exc}") from None
    if (path / "data.mdb").is_file():
        images = ImageSet(path, "db")
    elif (path / SAMPLES).is_file():
        images = ImageSet(path, "samples", [pair.image for pair in find_inputs(path, unlabelled=True).pairs])
    else:
        files = [
            p
            for p in sorted(path.rglob("*"))
            if p.suffix.lower() in IMAGE_SUFFIXES
            and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        ]
        if not files:
            raise DatasetError(
                f"{option} {path}: neither a DB from `gcgan pack` nor a folder of images "
                f"({', '.join(sorted(IMAGE_SUFFIXES))}); give one of these or a statistics .npz"
            )
        images = ImageSet(path, "folder", files)
    if len(images) < 2:
        raise DatasetError(f"{option} {path}: {len(images)} image(s); FID needs at least 2")
    return images


def spread(total: int, n: int | None) -> list[int]:
    """All of 0..total-1, or `n` of them spread evenly."""
    if n is None or n >= total:
        return list(range(total))
    return np.unique(np.linspace(0, total - 1, n).round().astype(int)).tolist()


def _batch(items: list[torch.Tensor | str]) -> torch.Tensor | str:
    """Images stacked, or the first reason one could not be read. Images of different sizes are
    each resized to the network's input first, as FidInception would resize them."""
    for item in items:
        if isinstance(item, str):
            return item
    if len({item.shape for item in items}) > 1:
        items = [to_input_size(item[None])[0] for item in items]
    return torch.stack(items)


def _raised(batches: Iterable[torch.Tensor | str]) -> Iterator[torch.Tensor]:
    for images in batches:
        if isinstance(images, str):
            raise DatasetError(images)
        yield images


def image_features(
    images: ImageSet,
    network: torch.nn.Module,
    device: torch.device,
    n: int | None = None,
    batch: int = 50,
    workers: int = 0,
    keep: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> FeatureStats:
    """Features of all the images, or of `n` spread evenly; each rank reads its share, and every
    rank gets the pooled statistics. on_start gets the number of images this rank reads."""
    mine = shard(spread(len(images), n))
    if on_start:
        on_start(len(mine))
    loader = DataLoader(
        Subset(images, mine),
        batch_size=batch,
        num_workers=workers,
        collate_fn=_batch,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    return feature_stats(network, _raised(loader), device, keep, on_batch).gathered()


def dataset_stats(
    db: Path,
    network: torch.nn.Module,
    device: torch.device,
    n: int | None = None,
    batch: int = 50,
    workers: int = 0,
    on_start: Callable[[int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    keep_features: bool = False,
) -> Stats:
    """Statistics of the DB's images, all of them or `n` spread evenly over the records."""
    images = ImageSet(db, "db")
    features = image_features(images, network, device, n, batch, workers, keep_features, on_start, on_batch)
    config = {
        "network": "FID Inception-v3 (TF 2015-12-05, pytorch-fid weights)",
        "dims": FEATURE_DIM,
        "input": f"[-1, 1], bilinear to {INPUT_SIZE}",
        "db": str(db),
        "db_count": len(images),
        "db_size": images.db.meta.size,
        "db_inputs_sha256": images.db.meta.source.get("inputs_sha256"),
        "selection": "all" if features.count == len(images) else f"{features.count} evenly spaced",
        "gcgan_version": gcgan_cli.__version__,
    }
    return features.to_stats(config)
