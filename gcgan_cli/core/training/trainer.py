"""The GC-GAN training loops: stage 1 on a labelled DB (spec §5), stage 2 on an unlabelled DB
from a stage-1 checkpoint (spec §6). One process per device; under torchrun, DDP.

Each iteration i (0-based): D step (stage 1 adds the matching-aware term and D's gaze-head
regression on real images); R1 when i % d_reg_every == 0; G step (stage 1 adds the gaze-head and
frozen-estimator pulls toward the conditioning gaze); path-length regularisation when
i % g_reg_every == 0; EMA. Losses stay on the device and are averaged over
the ranks only every `log_every` steps, where finiteness is also checked, so the inner loop has
no host synchronisation. The UI reaches in only through `Hooks` (rank 0).
"""

from __future__ import annotations

import copy
import gc
import inspect
import os
import random
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

import gcgan_cli
from cuda_ops import compiler
from gcgan_cli.checkpoint import capture_rng_state, contents_of, load_checkpoint, restore_rng_state, save_checkpoint
from gcgan_cli.core.dataset import GazeMaskDataset
from gcgan_cli.core.frozen import set_requires_grad
from gcgan_cli.core.metrics.fid import Stats, fid, metric_name
from gcgan_cli.core.metrics.inception import FEATURE_DIM, load_fid_inception
from gcgan_cli.core.metrics.inception_weights import locate_inception_weights
from gcgan_cli.core.model import Discriminator, Generator, ModelConfig, preset
from gcgan_cli.core.training import conditioning, losses
from gcgan_cli.core.training import distributed as dist_utils
from gcgan_cli.core.training.config import TrainConfig
from gcgan_cli.core.training.run_dir import CHECKPOINT_KEYS, RunDir
from gcgan_cli.core.training.window import LossWindow, nonfinite
from gcgan_cli.core.visualize import sample_grid
from gcgan_cli.data import gaze_db
from gcgan_cli.data.atomic import write_atomic
from gcgan_cli.data.png import encode_png
from gcgan_cli.device import place, resolve_device
from gcgan_cli.errors import CheckpointError, DatasetError, TrainingDiverged, UsageError
from gcgan_cli.outputs import reporting_disk_full

# DDP warns when a [1, N] weight's gradient arrives with strides other than its bucket's: for a
# size-1 dimension the layouts are the same memory, nothing is lost.
warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")


@dataclass
class Hooks:
    """Callbacks for the UI; only rank 0 calls them (except should_stop, read on every rank).
    on_step comes after that step's on_log, so what it shows is that step's row."""

    on_start: Callable[[dict], None] = lambda info: None
    on_step: Callable[[int], None] = lambda step: None
    on_log: Callable[[dict], None] = lambda row: None
    on_event: Callable[[str], None] = lambda message: None
    should_stop: Callable[[], bool] = lambda: False


@dataclass
class MainPasses:
    """The modules the D and G steps call: compiled with --compile, else the eager ones. R1 and the
    path-length penalty take a double backward, which torch.compile does not support, so they call
    the eager modules, which hold the same parameters. Under DDP the DDP modules themselves are
    compiled: torch.compile then splits the graphs at DDP's gradient buckets (its DDPOptimizer), so
    the all-reduces still overlap the backward."""

    g: torch.nn.Module  # D step, no grad
    d: torch.nn.Module  # G step, D frozen
    g_train: torch.nn.Module  # G step
    d_train: torch.nn.Module  # D step


@dataclass
class TrainResult:
    step: int
    interrupted: bool
    checkpoint: Path | None
    last_row: dict = field(default_factory=dict)
    fid: float | None = None
    images: int = 0
    seconds: float = 0.0


def stage2_frozen(name: str, config: ModelConfig) -> bool:
    """Spec §6.1: the local generators and the render convs up to the fusion resolution (32 and 64
    px at ref256: convs 0-3) stay as stage 1 left them."""
    frozen_levels = sum(1 for res in config.resolution_levels() if 2 * res <= config.coarse_size)
    prefixes = ["local_nets."] + [f"render_net.convs.{i}." for i in range(2 * frozen_levels)]
    return any(name.startswith(p) for p in prefixes)


def _update(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


class RunPlan:
    """What a run starts from (a checkpoint), reads (the DB, the gaze label set) and builds (the model
    config), decided before anything is written: Trainer builds from it, `gcgan train --dry-run` shows it."""

    def __init__(self, config: TrainConfig, run: RunDir, resume: bool, device: torch.device = torch.device("cpu")):
        self.config = config
        self.resumed = run.latest() if resume else None
        if not resume:
            run.refuse_overwrite()
        self.stage1 = self._stage1_checkpoint() if config.stage == 2 and self.resumed is None else None
        # the file the model comes from, named when its contents do not fit
        self.source = run.checkpoint_files()[-1] if self.resumed else Path(config.ckpt) if self.stage1 else None

        stored = self._stored_model_config(self.resumed or self.stage1)
        self.dataset = self._dataset(stored)
        self.gaze_labels = self._gaze_labels(self.resumed or self.stage1).to(device)
        self.model_config = stored or self._model_config()
        if self.dataset.class_names != self.model_config.class_names:
            raise DatasetError(
                f"--data {config.dataset} has classes {list(self.dataset.class_names)}; the model needs {list(self.model_config.class_names)}"
            )
        if config.stage == 2 and config.unbroken_class not in self.model_config.class_names:
            raise UsageError(
                f"--unbroken-class {config.unbroken_class}: not among the classes trained on "
                f"--data {config.dataset}; choose one of {', '.join(self.model_config.class_names[1:])}"
            )

    def _stage1_checkpoint(self) -> dict:
        record = load_checkpoint(self.config.ckpt, map_location="cpu", required=CHECKPOINT_KEYS)
        if record.get("kind") != "gcgan-train" or record["stage"] != 1:
            raise CheckpointError(f"--network {self.config.ckpt} is not a stage-1 training checkpoint")
        return record

    def _dataset(self, model: ModelConfig | None) -> GazeMaskDataset:
        """The DB as training reads it: at the model's size and classes (a checkpoint's, else
        --size / --seg-dim, else the preset's)."""
        try:
            meta = gaze_db.read_meta(Path(self.config.dataset))
        except DatasetError as exc:
            raise DatasetError(f"--data {exc}") from None
        if self.config.stage == 1 and not meta.labelled:
            raise DatasetError(
                f"--data {self.config.dataset} has no gaze labels; stage 1 trains on a labelled DB (stage 2 takes unlabelled ones)"
            )
        if model:
            seg_dim, size = model.seg_dim, model.size
        else:
            base = preset(self.config.preset)
            seg_dim = min(meta.num_classes, base.seg_dim) if self.config.seg_dim is None else self.config.seg_dim
            size = base.size if self.config.size is None else self.config.size
        if seg_dim > meta.num_classes:
            raise UsageError(f"--seg-dim {seg_dim}: the DB {self.config.dataset} has only {meta.num_classes} classes")
        return GazeMaskDataset(
            self.config.dataset, seg_dim=seg_dim, resolution=size, flip=0.5 if self.config.mirror else 0.0
        )

    def _stored_model_config(self, source: dict | None) -> ModelConfig | None:
        """The model of a checkpoint being resumed or (stage 2) started from; flags may not contradict it."""
        if source is None:
            return None
        stored = ModelConfig.from_checkpoint(source, self.source)
        given = {
            "size": self.config.size,
            "seg_dim": self.config.seg_dim,
            "residual_refine": self.config.residual_refine,
            "d_conditioning": self.config.d_conditioning,
            "d_gaze_head": self.config.d_gaze_head,
        }
        clash = [
            f"--{k.replace('_', '-')} {v}"
            for k, v in given.items()
            if v is not None and v != (stored.seg_dim if k == "seg_dim" else getattr(stored, k))
        ]
        if clash:
            raise UsageError(
                f"{', '.join(clash)} differs from the checkpoint's model ({stored.size} px, {stored.seg_dim} classes, "
                f"residual_refine {stored.residual_refine}, d_conditioning {stored.d_conditioning}, d_gaze_head {stored.d_gaze_head})"
            )
        return stored

    def _model_config(self) -> ModelConfig:
        config = self.config
        overrides = {"size": self.dataset.resolution, "class_names": self.dataset.class_names}
        for name in ("residual_refine", "d_conditioning", "d_gaze_head"):
            if getattr(config, name) is not None:
                overrides[name] = getattr(config, name)
        base = preset(config.preset, **overrides)
        if config.d_gaze_head is None and config.lambda_gaze_head > 0 and not base.d_gaze_head:
            overrides["d_gaze_head"] = base.channels(4)  # the head a weight asks for, as wide as D's last layer
        if config.gaze_norm:
            labels = self.gaze_labels.double()
            overrides["gaze_mean"] = tuple(labels.mean(0).tolist())
            overrides["gaze_std"] = tuple(labels.std(0).clamp_min(1e-3).tolist())
        return preset(config.preset, **overrides)

    def _gaze_labels(self, source: dict | None) -> torch.Tensor:
        """The (pitch, yaw) set fake gazes are drawn from, float32 [N, 2]."""
        if self.config.gaze_labels:
            labels = torch.from_numpy(gaze_db.read_labels(Path(self.config.gaze_labels)))
        elif source is not None:
            with contents_of(self.source):
                labels = source["gaze_labels"].float()
        else:
            # the DB folder, not its label file: read_labels then checks the labels against the records
            labels = torch.from_numpy(gaze_db.read_labels(Path(self.config.dataset)))
            if self.config.mirror:  # fakes are conditioned on the gazes real images now show
                labels = torch.cat([labels, labels * torch.tensor([1.0, -1.0])])
        if labels.ndim != 2 or labels.shape[1] != 2 or len(labels) == 0 or not torch.isfinite(labels).all():
            raise DatasetError(
                f"the gaze label set must be a finite float array [N, 2] (pitch, yaw), got shape {tuple(labels.shape)}"
            )
        return labels.float()


class Trainer:
    def __init__(self, config: TrainConfig, hooks: Hooks | None = None, resume: bool = False):
        self.hooks = hooks or Hooks()
        self.world = dist_utils.from_environment()
        self.device = self._device(config)
        dist_utils.initialise(self.world, self.device)
        self.run = RunDir(Path(config.checkpoint_dir))
        self.config = config
        self._set_precision()

        plan = RunPlan(config, self.run, resume, self.device)
        resumed, stage1, self.source = plan.resumed, plan.stage1, plan.source
        self.dataset, self.gaze_labels, self.model_config = plan.dataset, plan.gaze_labels, plan.model_config
        self.r1_img, self.r1_seg = config.r1(self.model_config.size)
        self.gaze_estimator = self._gaze_estimator(resumed)

        torch.manual_seed(config.seed)  # identical initial weights on every rank
        self.g = place(Generator(self.model_config), self.device)
        self.d = place(Discriminator(self.model_config, gaze=config.stage == 1), self.device)
        self.g_ema = copy.deepcopy(self.g).eval()
        set_requires_grad([self.g_ema], False)
        self.g_pre: Generator | None = None
        if config.stage == 2:
            self.g_pre = place(Generator(self.model_config), self.device).eval()
            with contents_of(self.source):
                self.g_pre.load_state_dict(resumed["g_pretrained"] if resumed else stage1["g"])
                if stage1 is not None:  # a new stage 2: G from stage-1 G, G_ema from stage-1 G_ema, a fresh plain D
                    self.g.load_state_dict(stage1["g"])
                    self.g_ema.load_state_dict(stage1["g_ema"])
            set_requires_grad([self.g_pre], False)
            for name, p in self.g.named_parameters():
                p.requires_grad_(not stage2_frozen(name, self.model_config))  # frozen: no grads at all (fixes bug 31)
        g_ratio = config.g_reg_every / (config.g_reg_every + 1)
        d_ratio = config.d_reg_every / (config.d_reg_every + 1)
        self.g_params = [p for p in self.g.parameters() if p.requires_grad]
        self.g_optim = torch.optim.Adam(self.g_params, lr=config.lr * g_ratio, betas=(0.0, 0.99**g_ratio))
        self.d_optim = torch.optim.Adam(self.d.parameters(), lr=config.lr * d_ratio, betas=(0.0, 0.99**d_ratio))
        self.mean_path_length = torch.zeros((), device=self.device)
        self.step = 0
        if resumed is not None:
            with contents_of(self.source):
                self._load_state(resumed)

        self.g_train, self.d_train = (
            (self._ddp(self.g), self._ddp(self.d)) if self.world.distributed else (self.g, self.d)
        )
        self.main = self._main_passes()

        self.fid_stats, self.fid_network = self._fid_setup()
        viz = torch.Generator().manual_seed(config.seed + 12_345)  # fixed z and gazes for every grid of the run
        self.viz_z = torch.randn(config.n_sample, self.model_config.style_dim, generator=viz).to(self.device)
        pick = torch.randint(len(self.gaze_labels), (config.n_sample,), generator=viz)
        self.viz_gaze = self.gaze_labels.cpu()[pick].to(self.device)

        if self.world.main:
            self.run.create()
            self.run.write_config(
                {
                    "train": config.to_dict(),
                    "model": self.model_config.to_dict(),
                    "world_size": self.world.size,
                    "total_batch": config.batch * self.world.size,
                    "gcgan_version": gcgan_cli.__version__,
                }
            )
            if resumed is not None:
                self.run.truncate_metrics(self.step)
        self.tensorboard = self._tensorboard()
        self.loader = self._loader()
        if (
            resumed is not None
            and self.world.rank < len(resumed["rng"])
            and resumed["data"]["world_size"] == self.world.size
        ):
            restore_rng_state(resumed["rng"][self.world.rank])  # last: nothing above may draw from it
        else:
            self._seed_streams(config.seed * 7919 + self.world.rank + self.step)
        self.window = LossWindow()  # this log window's losses, on the device

    # --- setup ---

    def _device(self, config: TrainConfig) -> torch.device:
        if self.world.distributed and config.device in ("auto", "cuda") and torch.cuda.is_available():
            torch.cuda.set_device(self.world.local_rank)
            return torch.device("cuda", self.world.local_rank)
        return resolve_device(config.device)

    def _set_precision(self) -> None:
        precision, cuda = self.config.precision, self.device.type == "cuda"
        if precision == "bf16" and not cuda:
            raise UsageError("--precision bf16 runs on a CUDA GPU; on the CPU use fp32")
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = precision != "fp32"
            torch.backends.cudnn.allow_tf32 = precision != "fp32"
            torch.backends.cudnn.benchmark = not self.config.deterministic
        self._was_deterministic = torch.are_deterministic_algorithms_enabled()
        if self.config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if precision == "bf16" else nullcontext

    def _ddp(self, module: torch.nn.Module) -> DistributedDataParallel:
        """DDP without per-forward buffer syncs (the noise buffers are equal on every rank)."""
        options = {"device_ids": [self.device.index] if self.device.type == "cuda" else None}
        if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
            options["forward_sync_buffers"] = False
        else:
            options["broadcast_buffers"] = False
        return DistributedDataParallel(module, **options)

    def _main_passes(self) -> MainPasses:
        modules = {"g": self.g, "d": self.d, "g_train": self.g_train, "d_train": self.d_train}
        if not self.config.compile:
            return MainPasses(**modules)
        compiler.backend(UsageError)  # a misspelt GCGAN_COMPILE_BACKEND fails here, not at the first step
        done: dict[int, torch.nn.Module] = {}  # one wrapper per module (without DDP, g_train is g)
        for name, module in modules.items():
            if id(module) not in done:
                done[id(module)] = compiler.compiled(module)
            modules[name] = done[id(module)]
        return MainPasses(**modules)

    def _gaze_estimator(self, resumed: dict | None) -> conditioning.FrozenEstimator | None:
        """The frozen estimator of --gaze-model; a resumed run must use the same file."""
        if not self.config.gaze_model:
            return None
        estimator = conditioning.FrozenEstimator(Path(self.config.gaze_model), self.device)
        stored = (resumed or {}).get("gaze_loss_model")
        if stored and stored["sha256"] != estimator.sha256:
            raise CheckpointError(
                f"--gaze-model {self.config.gaze_model} is not the estimator this run was trained with "
                f"({stored['path']}, sha256 {stored['sha256'][:12]}...)"
            )
        return estimator

    def _load_state(self, record: dict) -> None:
        if record["stage"] != self.config.stage:
            raise CheckpointError(
                f"the latest checkpoint in {self.run.checkpoints} is from stage {record['stage']}, not --stage {self.config.stage}"
            )
        self.g.load_state_dict(record["g"])
        self.d.load_state_dict(record["d"])
        self.g_ema.load_state_dict(record["g_ema"])
        self.g_optim.load_state_dict(record["g_optim"])
        self.d_optim.load_state_dict(record["d_optim"])
        self.mean_path_length = record["mean_path_length"].to(self.device)
        self.step = int(record["step"])

    def _fid_setup(self) -> tuple[Stats | None, torch.nn.Module | None]:
        if self.config.fid_every == 0:
            return None, None
        if not self.config.inception:
            self._event(
                "FID is off: no --inception statistics (make them with `gcgan inception --data DB --out STATS.npz`)"
            )
            return None, None
        stats = Stats.load(Path(self.config.inception))
        if stats.mu.shape[0] != FEATURE_DIM:
            raise DatasetError(
                f"--inception {self.config.inception}: {stats.mu.shape[0]}-d statistics; FID compares "
                f"the {FEATURE_DIM}-d Inception features `gcgan inception` writes"
            )
        weights, _ = locate_inception_weights(self.config.inception_weights)
        if weights is None:
            self._event(
                "FID is off: the FID Inception weights are not on this machine (see `gcgan inception --help`); training goes on"
            )
            return None, None
        return stats, load_fid_inception(weights, self.device)  # on every rank: each renders its share

    def _tensorboard(self):
        if not self.world.main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is an optional extra
            return None
        return SummaryWriter(str(self.run.tensorboard), purge_step=self.step or None)

    def _loader(self):
        config = self.config
        sampler = dist_utils.StreamSampler(
            len(self.dataset), config.batch, self.world, config.seed, start=self.step * config.batch * self.world.size
        )
        workers = config.workers
        if workers is None:  # on the CPU a worker process would take cores from the training math itself
            workers = max(0, min(4, (os.cpu_count() or 1) // self.world.size - 1)) if self.device.type == "cuda" else 0
        loader = DataLoader(
            self.dataset,
            batch_size=config.batch,
            sampler=sampler,
            num_workers=workers,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
            persistent_workers=workers > 0,
            generator=torch.Generator().manual_seed(config.seed),
        )  # leaves the global RNG alone
        return iter(loader)

    def _seed_streams(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _event(self, message: str) -> None:
        if self.world.main:
            self.hooks.on_event(message)

    # --- one iteration ---

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        item = next(self.loader)
        image = item["image"].to(self.device, non_blocking=True)
        mask = (
            item["mask"].to(self.device, non_blocking=True).mul_(2).sub_(1)
        )  # one-hot {0,1} -> the reference's {-1,+1}
        gaze = item["gaze"].to(self.device, non_blocking=True) if self.config.stage == 1 else None
        return image, mask, gaze

    def _z(self, batch: int) -> torch.Tensor | list[torch.Tensor]:
        dim = self.model_config.style_dim
        if self.config.mixing > 0 and random.random() < self.config.mixing:
            return [torch.randn(batch, dim, device=self.device), torch.randn(batch, dim, device=self.device)]
        return torch.randn(batch, dim, device=self.device)

    def _fake_gaze(self, batch: int) -> torch.Tensor:
        return self.gaze_labels[torch.randint(len(self.gaze_labels), (batch,), device=self.device)]

    def _augment(self, image: torch.Tensor, seg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return conditioning.augment(image, seg) if self.config.augment else (image, seg)

    def _head_weight(self) -> float:
        return self.config.lambda_gaze_head if self.d.gaze_head is not None else 0.0

    def _estimator_weight(self) -> float:
        """--lambda-gaze after the warm-up, ramped in linearly."""
        config = self.config
        if self.gaze_estimator is None or self.step < config.gaze_warmup:
            return 0.0
        return config.lambda_gaze * min(1.0, (self.step - config.gaze_warmup + 1) / max(config.gaze_ramp, 1))

    def _record(self, **values: torch.Tensor) -> None:
        self.window.add(values)

    def _paired_masks(self, seg: torch.Tensor, seg_pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 2: the mask a fake image is judged with, and which samples were swapped.

        The pretrained mask, except where the checked mask's unbroken class (iris) covers more
        than `unbroken_fraction`: there the current G's own mask. `swap_check=pretrained` checks
        the pretrained mask (our default: never pair with a broken target); `current` is the
        reference, which checks the current mask and so drops the pull exactly when G breaks."""
        class_id = self.model_config.class_names.index(self.config.unbroken_class)
        checked = seg_pre if self.config.swap_check == "pretrained" else seg
        broken = losses.broken_masks(checked.detach(), class_id, self.config.unbroken_fraction)
        return torch.where(broken[:, None, None, None], seg, seg_pre), broken

    def _d_step(self, real: torch.Tensor, mask: torch.Tensor, gaze: torch.Tensor | None) -> None:
        config, batch = self.config, real.shape[0]
        set_requires_grad([self.d], True)
        with torch.no_grad(), self.autocast():
            z, fake_gaze = self._z(batch), self._fake_gaze(batch)
            fake = self.main.g(z, fake_gaze)
            fake_seg = fake.seg
            if self.g_pre is not None:
                fake_seg, broken = self._paired_masks(fake.seg, self.g_pre(z, fake_gaze).seg)
                self._record(swapped=broken.float().mean())
        with self.autocast():
            cond = fake_gaze if config.stage == 1 else None
            fake_pred = self.main.d_train(*self._augment(fake.image, fake_seg), cond)
            real, mask = self._augment(real, mask)
            if self._head_weight() > 0:
                real_pred, estimate = self.main.d_train(real, mask, gaze, estimate_gaze=True)
                head = torch.nn.functional.mse_loss(estimate, self.d.normalise(gaze))
                loss = losses.d_logistic(real_pred, fake_pred) + self._head_weight() * head
                self._record(d_gaze_head=head)
            else:
                real_pred = self.main.d_train(real, mask, gaze)
                loss = losses.d_logistic(real_pred, fake_pred)
            if config.stage == 1 and config.d_gaze_mismatch > 0:
                wrong = conditioning.wrong_gazes(self.gaze_labels, gaze, config.mismatch_min_deg)
                mismatch = torch.nn.functional.softplus(self.main.d_train(real, mask, wrong)).mean()
                loss = loss + config.d_gaze_mismatch * mismatch
                self._record(d_mismatch=mismatch)
        _update(self.d_optim, loss)
        self._record(d=loss, real_score=real_pred.mean(), fake_score=fake_pred.mean())

    def _r1_step(self, real: torch.Tensor, mask: torch.Tensor, gaze: torch.Tensor | None) -> None:
        config = self.config
        real, mask = real.detach().requires_grad_(True), mask.detach().requires_grad_(True)
        unused = 0.0
        if self._head_weight() > 0:  # the head is outside R1; a zero term keeps it in the graph for DDP
            pred, estimate = self.d_train(*self._augment(real, mask), gaze, estimate_gaze=True)
            unused = 0 * estimate.sum()
        else:
            pred = self.d_train(*self._augment(real, mask), gaze)
        p_img, p_seg = losses.r1_penalties(pred, real, mask)
        loss = (self.r1_img / 2 * p_img + self.r1_seg / 2 * p_seg) * config.d_reg_every + 0 * pred[0, 0] + unused
        _update(self.d_optim, loss)
        self._record(r1_img=p_img, r1_seg=p_seg)

    def _g_step(self, batch: int) -> None:
        config = self.config
        set_requires_grad([self.d], False)
        with self.autocast():
            z, fake_gaze = self._z(batch), self._fake_gaze(batch)
            fake = self.main.g_train(z, fake_gaze)
            mask_loss = losses.mask_consistency(fake.seg_coarse, fake.seg)
            gaze_terms = 0.0
            if self.g_pre is None:
                seen = self._augment(fake.image, fake.seg)
                if self._head_weight() > 0:  # G is pulled to make D's head read the conditioning gaze
                    pred, estimate = self.main.d(*seen, fake_gaze, estimate_gaze=True)
                    head = torch.nn.functional.mse_loss(estimate, self.d.normalise(fake_gaze))
                    gaze_terms = self._head_weight() * head
                    self._record(g_gaze_head=head)
                else:
                    pred = self.main.d(*seen, fake_gaze)
                weight = self._estimator_weight()
                if weight > 0:
                    est = self.gaze_estimator.loss(fake.image, fake_gaze, self.d.gaze_std)
                    gaze_terms = gaze_terms + weight * est
                    self._record(g_gaze_est=est)
            else:  # stage 2: G_pre renders the current W+ (gradients reach the mapping through it, spec §6.2)
                paired, _ = self._paired_masks(fake.seg, self.g_pre.synthesize(fake.latent, fake_gaze).seg)
                pred = self.main.d(fake.image, paired)
                pmask = torch.nn.functional.mse_loss(fake.seg, paired)
                mask_loss = mask_loss + pmask
                self._record(pmask=pmask)
            adv = losses.g_nonsaturating(pred)
            loss = adv + config.lambda_mask * mask_loss + gaze_terms
        _update(self.g_optim, loss)
        self._record(g=adv, mask=mask_loss)

    def _path_step(self, batch: int) -> None:
        config = self.config
        size = max(1, batch // config.path_batch_shrink)
        with torch.no_grad():
            latent = self.g.latent_of(torch.randn(size, self.model_config.style_dim, device=self.device))
        latent.requires_grad_(True)
        out = self.g_train(latent, self._fake_gaze(size), input_is_latent=True)
        lengths = losses.path_lengths(out.image, latent)
        penalty, new_mean = losses.path_penalty(lengths, self.mean_path_length)
        # W+ is a leaf, so the mapping is outside this graph: a zero term keeps its parameters in
        # it (DDP then needs no find_unused_parameters traversal on every step).
        unused = sum(p.sum() for p in self.g.style.parameters() if p.requires_grad)
        loss = config.path_regularize * config.g_reg_every * penalty + 0 * (
            out.image[0, 0, 0, 0] + out.seg[0, 0, 0, 0] + unused
        )
        _update(self.g_optim, loss)
        self.mean_path_length = dist_utils.mean_over_ranks(self.world, new_mean.detach())
        self._record(path=penalty, path_length=self.mean_path_length)

    @torch.no_grad()
    def _ema(self) -> None:
        weight = 1 - self.config.ema_decay
        for p_ema, p in zip(self.g_ema.parameters(), self.g.parameters()):
            p_ema.lerp_(p, weight)

    def iteration(self) -> None:
        """One training iteration at self.step (0-based), then step += 1."""
        config, i = self.config, self.step
        real, mask, gaze = self._batch()
        self._d_step(real, mask, gaze)
        if i % config.d_reg_every == 0:
            self._r1_step(real, mask, gaze)
        self._g_step(real.shape[0])
        if config.path_regularize > 0 and i % config.g_reg_every == 0:
            self._path_step(real.shape[0])
        self._ema()
        self.step += 1

    # --- observation ---

    def _window_means(self) -> dict[str, float]:
        """Means over the steps since the last log, averaged over ranks (one sync)."""
        return self.window.means(lambda means: dist_utils.mean_over_ranks(self.world, means))

    def _check_finite(self, values: dict[str, float]) -> None:
        bad = nonfinite(values)
        if bad:
            if self.world.main:
                self.run.append_metrics({"step": self.step, "event": "diverged", "nonfinite": bad})
            files = self.run.checkpoint_files()
            last = f"the last good checkpoint is {files[-1]}" if files else "no checkpoint was written before it"
            raise TrainingDiverged(
                f"training diverged: {', '.join(bad)} became non-finite by step {self.step}; "
                f"stopped without saving; {last} (resume with --resume, perhaps with a lower --lr)"
            )

    def _log(self, final: bool = False) -> dict:
        """A metrics row: the means since the last one. `final` marks the row that ends a run between
        two --log-every steps (a short run, Ctrl-C, SIGTERM), whose window is shorter."""
        values = self._window_means()
        self._check_finite(values)
        self.window.clear()
        now = time.perf_counter()
        elapsed, steps = now - self._clock[0], self.step - self._clock[1]
        self._clock = (now, self.step)
        images = steps * self.config.batch * self.world.size
        row = {
            "step": self.step,
            "kimg": round(self.step * self.config.batch * self.world.size / 1000, 4),
            **values,
            "sec_per_step": round(elapsed / max(steps, 1), 5),
            "img_per_s": round(images / max(elapsed, 1e-9), 3),
            **({"final": True} if final else {}),
        }
        if self.world.main:
            self.run.append_metrics(row)
            if self.tensorboard is not None:
                for key, value in values.items():
                    self.tensorboard.add_scalar(f"train/{key}", value, self.step)
            self.hooks.on_log(row)
        return row

    @torch.no_grad()
    def sample_grid(self) -> np.ndarray:
        """G_ema at the run's fixed z and gazes, fixed noise: image (gaze arrow) | mask pairs."""
        out = self.g_ema(self.viz_z, self.viz_gaze, randomize_noise=False)
        return sample_grid(out.image, out.seg, self.viz_gaze)

    def _visualise(self) -> None:
        if not self.world.main:
            return
        grid = self.sample_grid()
        png = encode_png(grid)
        with reporting_disk_full(self.run.samples, needed=len(png)):
            write_atomic(self.run.sample_path(self.step), png)
        if self.tensorboard is not None:
            self.tensorboard.add_image("samples", grid, self.step, dataformats="HWC")

    def _fid(self) -> float | None:
        """G_ema's FID over seeds 0..fid_n-1, quantized as saved samples are, every rank rendering its
        share: what `gcgan fid --network` gives for this step's checkpoint (at the same --batch)."""
        value = fid(
            self.g_ema,
            self.gaze_labels,
            self.config.fid_n,
            self.fid_stats,
            self.fid_network,
            max(self.config.batch, 16),
        )
        if self.world.main:
            name = metric_name("fid", self.config.fid_n)
            self.run.append_metrics({"step": self.step, name: value})
            if self.tensorboard is not None:
                self.tensorboard.add_scalar(f"metrics/{name}", value, self.step)
            self._event(f"step {self.step}: {name} {value:.2f}")
        dist_utils.barrier(self.world)  # while rank 0 takes the distance: no rank runs ahead of the others
        return value

    def save(self) -> Path:
        """Write the training state at self.step (rank 0 writes; every rank gives its RNG state)."""
        rng = dist_utils.gather_objects(self.world, capture_rng_state())
        path = self.run.checkpoint_path(self.step)
        if self.world.main:
            payload = {
                "kind": "gcgan-train",
                "stage": self.config.stage,
                "step": self.step,
                "config": {"train": self.config.to_dict(), "model": self.model_config.to_dict()},
                "g": self.g.state_dict(),
                "d": self.d.state_dict(),
                "g_ema": self.g_ema.state_dict(),
                "g_optim": self.g_optim.state_dict(),
                "d_optim": self.d_optim.state_dict(),
                "mean_path_length": self.mean_path_length.detach().cpu(),
                "rng": rng,
                "gaze_labels": self.gaze_labels.cpu(),
                "gaze_loss_model": self.gaze_estimator.record() if self.gaze_estimator else None,
                "data": {
                    "position": self.step * self.config.batch * self.world.size,
                    "seed": self.config.seed,
                    "world_size": self.world.size,
                    "batch": self.config.batch,
                },
                "gcgan_version": gcgan_cli.__version__,
            }
            if self.g_pre is not None:
                payload["g_pretrained"] = self.g_pre.state_dict()
            save_checkpoint(path, payload)
            self.run.prune(self.config.keep)
            self._event(f"step {self.step}: checkpoint {path}")
        dist_utils.barrier(self.world)
        return path

    # --- the loop ---

    def train(self) -> TrainResult:
        config, start_step = self.config, self.step
        self._event_start()
        started = time.perf_counter()
        self._clock = (started, self.step)
        interrupted, checkpoint, row, fid_value, saved_at = False, None, {}, None, None
        try:
            while self.step < config.iters:
                if dist_utils.any_rank(self.world, self.hooks.should_stop()):
                    interrupted = True
                    break
                self.iteration()
                if self.step % config.log_every == 0 or self.step == config.iters:
                    row = self._log(final=self.step % config.log_every != 0)
                if self.world.main:
                    self.hooks.on_step(self.step)
                if config.viz_every and self.step % config.viz_every == 0:
                    self._visualise()
                if self.fid_stats is not None and self.step % config.fid_every == 0:
                    fid_value = self._fid()
                if config.save_every and self.step % config.save_every == 0 and self.step < config.iters:
                    self._check_finite(self._window_means())
                    checkpoint, saved_at = self.save(), self.step
            if interrupted and self.step > start_step and self.step % config.log_every:  # the steps since the last row
                row = self._log(final=True)
            if self.step > start_step and saved_at != self.step:
                self._check_finite(self._window_means())
                checkpoint = self.save()
                if not interrupted and config.viz_every and self.step % config.viz_every:
                    self._visualise()
        finally:
            if self.tensorboard is not None:
                self.tensorboard.close()
        seconds = time.perf_counter() - started
        return TrainResult(
            self.step,
            interrupted,
            checkpoint,
            row,
            fid_value,
            (self.step - start_step) * config.batch * self.world.size,
            seconds,
        )

    def _event_start(self) -> None:
        if self.world.main:
            self.hooks.on_start(
                {
                    "step": self.step,
                    "iters": self.config.iters,
                    "stage": self.config.stage,
                    "device": str(self.device),
                    "world_size": self.world.size,
                    "total_batch": self.config.batch * self.world.size,
                    "records": len(self.dataset),
                    "labels": len(self.gaze_labels),
                    "model": self.model_config,
                    "g_params": sum(p.numel() for p in self.g.parameters()),
                    "g_trainable": sum(p.numel() for p in self.g_params),
                    "d_params": sum(p.numel() for p in self.d.parameters()),
                    "fid": self.fid_stats is not None,
                }
            )

    def close(self) -> None:
        """Leave the process as it was: the process group, the deterministic-algorithms switch.

        The DDP wrappers go first: their reducers hold the process group, and when the last of them
        is freed at interpreter exit, after the peers have left, gloo's destructor can wait forever
        for its threads (seen once in a 2-process test run)."""
        if self.world.distributed:
            self.g_train = self.d_train = self.main = None
            gc.collect()
        dist_utils.shutdown(self.world)
        torch.use_deterministic_algorithms(self._was_deterministic)
