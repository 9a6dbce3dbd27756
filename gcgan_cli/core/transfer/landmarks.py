"""The ELG eye-landmark network (GazeML's stacked hourglass), its training, and its checkpoints.

The frozen network is FP-GAN's landmark-consistency loss: landmarks found on an image and on its
translation should agree. It maps a gray patch [B, 1, H, W] in [-1, 1] to one stack of heatmaps
per hourglass module and to (x, y) landmarks in input pixels, read off the last module's maps by
a soft-argmax, which keeps the landmarks differentiable w.r.t. the image.

Coordinates: heatmap pixel j covers input pixels [s j, s (j + 1)) at first-layer stride s and
stands for their centre s (j + 0.5); `heatmap_targets` and `soft_argmax` use that one mapping, so
a target's peak reads back as its landmark. The soft-argmax's sharpness (100) makes it close to a
hard argmax on unit-height peaks: it is exact at pixel centres and interpolates between them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from gcgan_cli.checkpoint import load_checkpoint, save_checkpoint
from gcgan_cli.core.augment import photometric, shift
from gcgan_cli.core.training.config import checked_options
from gcgan_cli.core.transfer.networks import SameConv2d
from gcgan_cli.data.eye_patch import IRIS_CENTRE
from gcgan_cli.errors import CheckpointError, UsageError

KIND = "gcgan-landmark-model"
BETA = 100.0  # soft-argmax sharpness
BN_EPS = 1e-3
# GazeML's BN decay of 0.999 suits its long runs; short fits need statistics that keep up.
BN_MOMENTUM = 0.1
INIT_STD = 0.01  # truncated at two std, zero bias
EVAL_BATCH = 256


@dataclass(frozen=True)
class ElgConfig:
    """Network sizes. The defaults are GazeML's own 36x60 recipe; FP-GAN's reference network is
    `ELG_PRESETS["reference"]` (stride 2, 64 maps, 3 modules), trained by GazeML at 72x120."""

    stride: int = 1  # of the first 7x7 conv; heatmaps are ceil(input / stride)
    maps: int = 32
    modules: int = 2
    landmarks: int = 18
    depth: int = 4  # hourglass levels below the full heatmap resolution

    def validate(self) -> ElgConfig:
        for f in fields(self):
            if getattr(self, f.name) < 1:
                raise UsageError(f"landmark network {f.name} must be at least 1, got {getattr(self, f.name)}")
        if self.maps % 2:
            raise UsageError(f"landmark network maps must be even (bottleneck blocks halve it), got {self.maps}")
        return self

    @classmethod
    def from_dict(cls, values: dict) -> ElgConfig:
        """Rebuild a stored config; unknown keys and wrong types are refused, missing ones take the defaults."""
        return cls(**checked_options(cls, values, "landmark network settings")).validate()


ELG_PRESETS = {"gazeml": ElgConfig(), "reference": ElgConfig(stride=2, maps=64, modules=3)}


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class Residual(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-conv1 (half), BN-ReLU-conv3 (half), BN-ReLU-conv1, plus
    the input (through a 1x1 conv when the widths differ)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        half = cout // 2
        self.body = nn.Sequential(
            _bn(cin),
            nn.ReLU(),
            nn.Conv2d(cin, half, 1),
            _bn(half),
            nn.ReLU(),
            nn.Conv2d(half, half, 3, padding=1),
            _bn(half),
            nn.ReLU(),
            nn.Conv2d(half, cout, 1),
        )
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class Hourglass(nn.Module):
    """Recursive: a residual block at this size plus (max-pool 2, block, inner hourglass or block,
    block) upsampled bilinearly back to exactly this size, so odd sizes (9 -> 4 -> 9) work."""

    def __init__(self, channels: int, depth: int):
        super().__init__()
        self.upper = Residual(channels, channels)
        self.down = Residual(channels, channels)
        self.inner = Hourglass(channels, depth - 1) if depth > 1 else Residual(channels, channels)
        self.up = Residual(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        upper = self.upper(x)
        lower = self.up(self.inner(self.down(F.max_pool2d(x, 2, 2))))
        return upper + F.interpolate(lower, size=upper.shape[-2:], mode="bilinear", align_corners=True)


class ElgNet(nn.Module):
    """Stem (7x7 conv at `stride`, two residual blocks), then hourglass modules; each module's
    features give heatmaps, and all but the last feed features + input + a 1x1 conv of the
    heatmaps to the next module. forward -> (heatmaps per module [B, L, h, w], landmarks [B, L, 2])."""

    def __init__(self, config: ElgConfig):
        super().__init__()
        self.config = config.validate()
        m = config.maps
        self.stem = nn.Sequential(
            SameConv2d(1, m, 7, stride=config.stride), _bn(m), nn.ReLU(), Residual(m, 2 * m), Residual(2 * m, m)
        )
        self.hourglasses = nn.ModuleList(Hourglass(m, config.depth) for _ in range(config.modules))
        self.features = nn.ModuleList(
            nn.Sequential(Residual(m, m), nn.Conv2d(m, m, 1), _bn(m), nn.ReLU()) for _ in range(config.modules)
        )
        self.heads = nn.ModuleList(nn.Conv2d(m, config.landmarks, 1) for _ in range(config.modules))
        self.merges = nn.ModuleList(nn.Conv2d(config.landmarks, m, 1) for _ in range(config.modules - 1))
        self._frozen = False
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.trunc_normal_(module.weight, std=INIT_STD, a=-2 * INIT_STD, b=2 * INIT_STD)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        x = self.stem(x)
        heatmaps = []
        for i in range(self.config.modules):
            features = self.features[i](self.hourglasses[i](x))
            heatmaps.append(self.heads[i](features))
            if i < len(self.merges):
                x = x + features + self.merges[i](heatmaps[-1])
        return heatmaps, soft_argmax(heatmaps[-1], self.config.stride)

    def freeze(self) -> ElgNet:
        """Fix the weights and BN statistics for use as a loss network: no parameter takes a
        gradient and `train()` leaves it in eval mode; gradients still reach the input."""
        self._frozen = True
        self.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> ElgNet:
        return super().train(mode and not self._frozen)


def soft_argmax(heatmaps: torch.Tensor, stride: int, beta: float = BETA) -> torch.Tensor:
    """(x, y) [B, L, 2] in input pixels: the softmax(beta h)-weighted mean heatmap position."""
    height, width = heatmaps.shape[-2:]
    weights = torch.softmax(beta * heatmaps.float().flatten(2), dim=-1).unflatten(-1, (height, width))
    cols = torch.arange(width, device=heatmaps.device, dtype=weights.dtype)
    rows = torch.arange(height, device=heatmaps.device, dtype=weights.dtype)
    x = (weights.sum(-2) * cols).sum(-1) + 0.5
    y = (weights.sum(-1) * rows).sum(-1) + 0.5
    return stride * torch.stack([x, y], dim=-1)


def heatmap_targets(landmarks: torch.Tensor, size: tuple[int, int], stride: int, sigma: float) -> torch.Tensor:
    """Unit-height Gaussians [B, L, h, w] of std `sigma` heatmap pixels at landmarks [B, L, 2] (x, y)."""
    height, width = size
    centre = landmarks / stride - 0.5  # in heatmap pixels, pixel j's centre at j
    cols = torch.arange(width, device=landmarks.device, dtype=landmarks.dtype)
    rows = torch.arange(height, device=landmarks.device, dtype=landmarks.dtype)
    gx = torch.exp(-((cols - centre[..., 0:1]) ** 2) / (2 * sigma**2))  # [B, L, w]
    gy = torch.exp(-((rows - centre[..., 1:2]) ** 2) / (2 * sigma**2))  # [B, L, h]
    return gy[..., :, None] * gx[..., None, :]


def build_elg(config: ElgConfig) -> ElgNet:
    return ElgNet(config)


@dataclass(frozen=True)
class LandmarkFitConfig:
    """GazeML's recipe (Adam 1e-3, batch 32, heatmap MSE, sigma 7.5 -> 2.5) with light,
    label-preserving augmentation: whole-pixel shifts that move the landmarks along, and
    brightness, contrast and noise. No flip: it would swap the eye corners' meaning."""

    model: ElgConfig = field(default_factory=ElgConfig)
    epochs: int = 100
    batch: int = 32
    lr: float = 1e-3
    sigma_start: float = 7.5  # heatmap pixels, annealed linearly over all steps
    sigma_end: float = 2.5
    seed: int = 0
    shift: int = 3  # largest shift per axis, input pixels
    brightness: float = 0.1  # added offset, up to this, on the [-1, 1] scale
    contrast: float = 0.2  # gain about the image mean, 1 +- this
    noise: float = 0.03  # Gaussian noise std, up to this, on the [-1, 1] scale
    workers: int = 0

    def validate(self) -> LandmarkFitConfig:
        self.model.validate()
        if self.epochs < 1 or self.batch < 1:
            raise UsageError(
                f"landmark fit needs at least 1 epoch and a batch of 1 or more, got {self.epochs} and {self.batch}"
            )
        if not (self.lr > 0 and self.sigma_start > 0 and self.sigma_end > 0):
            raise UsageError("landmark fit lr and heatmap sigmas must be positive")
        if self.shift < 0 or min(self.brightness, self.contrast, self.noise) < 0:
            raise UsageError("landmark fit augmentation ranges must be 0 or more")
        return self


@torch.no_grad()
def augment(
    images: torch.Tensor, landmarks: torch.Tensor, config: LandmarkFitConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A changed copy of images [B, 1, H, W] and landmarks [B, L, 2] that still agree (a shift
    moves both); draws come from `generator` alone."""
    reach = config.shift
    if reach > 0:
        offset = torch.randint(
            -reach, reach + 1, (images.shape[0], 2), generator=generator, device=images.device
        )  # (dx, dy)
        images = shift(images, offset, reach)
        landmarks = landmarks + offset.to(landmarks.dtype)[:, None, :]
    return photometric(images, config.contrast, 0.0, config.brightness, config.noise, generator), landmarks


@torch.no_grad()
def evaluate_landmarks(model: ElgNet, dataset: Dataset, device: torch.device, workers: int = 0) -> dict:
    """Mean landmark distance in px over every sample and landmark, and the iris centre's alone."""
    model.eval()
    distances = []
    for item in DataLoader(dataset, batch_size=EVAL_BATCH, num_workers=workers):
        _, predicted = model(item["image"].to(device))
        distances.append((predicted.cpu() - item["landmarks"].float()).norm(dim=-1))
    distance = torch.cat(distances)
    iris = float(distance[:, IRIS_CENTRE].mean()) if distance.shape[1] > IRIS_CENTRE else None
    return {"error": float(distance.mean()), "iris_error": iris}


def _check_labels(dataset: Dataset, name: str, landmarks: int, workers: int) -> list[int]:
    """The input shape [1, H, W]; refuses missing (NaN) or wrongly shaped landmarks."""
    if len(dataset) == 0:
        raise UsageError(f"the {name} set is empty")
    shape = None
    seen = 0
    for item in DataLoader(dataset, batch_size=EVAL_BATCH, num_workers=workers):
        labels, images = item["landmarks"], item["image"]
        if images.ndim != 4 or images.shape[1] != 1:
            raise UsageError(f"{name} images must be gray [1, H, W], got {list(images.shape[1:])}")
        if labels.shape[1:] != (landmarks, 2):
            raise UsageError(f"{name} landmarks must be [{landmarks}, 2] (x, y), got {list(labels.shape[1:])}")
        missing = torch.isnan(labels).any(dim=-1).any(dim=-1).nonzero().flatten()
        if len(missing):
            raise UsageError(
                f"{name} sample {seen + int(missing[0])} has missing (NaN) landmarks; drop such samples before fitting"
            )
        shape = list(images.shape[1:])
        seen += len(labels)
    return shape


def fit_landmarks(
    train: Dataset,
    val: Dataset | None,
    config: LandmarkFitConfig,
    out: Path,
    device: torch.device,
    on_epoch: Callable[[dict], None] = lambda row: None,
) -> dict:
    """Fit the ELG on items {"image": [1, H, W] in [-1, 1], "landmarks": [L, 2] (x, y) px}; the
    epoch with the lowest mean landmark error (on `val`, else on the unaugmented training set)
    is written to `out`. Returns the report, with one history row per epoch."""
    config.validate()
    started = time.perf_counter()
    shape = _check_labels(train, "training", config.model.landmarks, config.workers)
    if val is not None:
        _check_labels(val, "validation", config.model.landmarks, config.workers)
    torch.manual_seed(config.seed)
    model = build_elg(config.model).to(device)
    loader = DataLoader(
        train,
        batch_size=config.batch,
        shuffle=True,
        drop_last=len(train) > config.batch,
        generator=torch.Generator().manual_seed(config.seed),
        num_workers=config.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=config.workers > 0,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator(device).manual_seed(config.seed)
    measured, measured_on = (val, "validation") if val is not None else (train, "training")
    start = evaluate_landmarks(model, measured, device, config.workers)
    report = {
        "best_epoch": 0,
        "error": math.inf,
        "iris_error": None,
        "start_error": start["error"],
        "start_iris_error": start["iris_error"],
        "measured_on": measured_on,
        "train_count": len(train),
        "val_count": 0 if val is None else len(val),
        "fit": asdict(config),
        "history": [],
    }
    saved_config = {**asdict(config.model), "input": shape}
    total = config.epochs * len(loader)
    step = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        losses = []
        for item in loader:
            sigma = config.sigma_start + (config.sigma_end - config.sigma_start) * step / max(total - 1, 1)
            images, landmarks = augment(
                item["image"].to(device, non_blocking=True), item["landmarks"].to(device).float(), config, generator
            )
            heatmaps, _ = model(images)
            target = heatmap_targets(landmarks, heatmaps[0].shape[-2:], config.model.stride, sigma)
            loss = sum(F.mse_loss(h, target) for h in heatmaps)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
            step += 1
        errors = evaluate_landmarks(model, measured, device, config.workers)
        row = {"epoch": epoch, "loss": float(torch.stack(losses).mean()), "sigma": sigma, **errors}
        report["history"].append(row)
        if errors["error"] < report["error"]:  # the file always holds the best epoch so far
            report.update(best_epoch=epoch, **errors)
            saved_report = {k: v for k, v in report.items() if k != "history"}
            save_checkpoint(
                out, {"kind": KIND, "config": saved_config, "model": model.state_dict(), "report": saved_report}
            )
        on_epoch(row)
    report["seconds"] = time.perf_counter() - started
    return report


def load_landmarks(path: str | Path, device: torch.device | str = "cpu") -> tuple[ElgNet, dict]:
    """(frozen model on `device`, its stored config with "input") from a `fit_landmarks` file."""
    record = load_checkpoint(path, map_location=device)
    if record.get("kind") != KIND:
        raise CheckpointError(
            f"{path} is not a landmark model ({KIND}); it holds {record.get('kind') or 'another kind of checkpoint'}"
        )
    config = dict(record["config"])
    config.pop("input", None)
    try:
        model = build_elg(ElgConfig.from_dict(config))
    except UsageError as exc:
        raise CheckpointError(f"landmark model {path} has an unusable config: {exc}") from exc
    try:
        model.load_state_dict(record["model"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"landmark model {path}: its weights do not fit its config ({str(exc).splitlines()[0]})"
        ) from None
    return model.to(device).freeze(), dict(record["config"])
