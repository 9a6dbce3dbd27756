"""The GC-GAN training run: stage 1 on a labelled DB, stage 2 on an unlabelled DB from a stage-1
checkpoint. One process per device; under torchrun, DDP.

Each iteration runs its stage's phases (`phases.py`: D, R1 every `d_reg_every` steps, G, path length
every `g_reg_every` steps), then the EMA of G. Losses stay on the device and are averaged over the ranks
only every `log_every` steps, where finiteness is also checked, so the inner loop has no host
synchronisation. The UI reaches in only through `Hooks` (rank 0).
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
from gcgan_cli.core.model.summary import parameter_summary
from gcgan_cli.core.training import conditioning, losses
from gcgan_cli.core.training import distributed as dist_utils
from gcgan_cli.core.training.config import TrainConfig
from gcgan_cli.core.training.phases import PHASES, Batch, Phase, phase_loss
from gcgan_cli.core.training.run_dir import CHECKPOINT_KEYS, RunDir
from gcgan_cli.core.training.window import LossWindow, nonfinite
from gcgan_cli.core.visualize import sample_grid
from gcgan_cli.data import gaze_db
from gcgan_cli.data.atomic import write_atomic
from gcgan_cli.data.png import encode_png
from gcgan_cli.device import place, place_images, resolve_device
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
    """The reference's stage-2 frozen set: the local generators and the render convs up to the fusion resolution
    (32 and 64 px at ref256: convs 0-3) stay as stage 1 left them. They get no gradients at all (the reference
    left them requiring grad, computing their gradients every step and never applying them)."""
    frozen_levels = sum(1 for res in config.resolution_levels() if 2 * res <= config.coarse_size)
    prefixes = ["local_nets."] + [f"render_net.convs.{i}." for i in range(2 * frozen_levels)]
    return any(name.startswith(p) for p in prefixes)


class RunPlan:
    """What a run starts from (a checkpoint), reads (the DB, the gaze label set) and builds (the model
    config), decided before anything is written: Trainer builds from it, `gcgan train --dry-run` shows it."""

    def __init__(self, config: TrainConfig, run: RunDir, resume: bool, device: torch.device | None = None):
        self.config = config
        self.resumed = run.latest() if resume else None
        if not resume:
            run.refuse_overwrite()
        self.stage1 = self._stage1_checkpoint() if config.stage == 2 and self.resumed is None else None
        # the file the model comes from, named when its contents do not fit
        self.source = run.checkpoint_files()[-1] if self.resumed else Path(config.ckpt) if self.stage1 else None

        stored = self._stored_model_config(self.resumed or self.stage1)
        self.dataset = self._dataset(stored)
        self.gaze_labels = self._gaze_labels(self.resumed or self.stage1).to(device or "cpu")
        self.model_config = stored or self._model_config()
        if self.dataset.class_names != self.model_config.class_names:
            raise DatasetError(
                f"--data {config.dataset} has classes {list(self.dataset.class_names)}; the model needs "
                f"{list(self.model_config.class_names)}"
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
                f"--data {self.config.dataset} has no gaze labels; stage 1 trains on a labelled DB (stage 2 takes "
                "unlabelled ones)"
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
                f"residual_refine {stored.residual_refine}, d_conditioning {stored.d_conditioning}, d_gaze_head "
                f"{stored.d_gaze_head})"
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


@dataclass
class Networks:
    """The four networks of a run: G, D, G_ema and (stage 2) the frozen pretrained G."""

    g: Generator
    d: Discriminator
    g_ema: Generator
    g_pre: Generator | None


def run_device(world: dist_utils.World, config: TrainConfig) -> torch.device:
    """Under torchrun with CUDA: cuda:LOCAL_RANK; else --device."""
    if world.distributed and config.device in ("auto", "cuda") and torch.cuda.is_available():
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    return resolve_device(config.device)


def set_precision(config: TrainConfig, device: torch.device) -> Callable[[], object]:
    """Set the process-wide precision and determinism switches; returns the autocast of the main passes."""
    precision, cuda = config.precision, device.type == "cuda"
    if precision == "bf16" and not cuda:
        raise UsageError("--precision bf16 runs on a CUDA GPU; on the CPU use fp32")
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = precision != "fp32"
        torch.backends.cudnn.allow_tf32 = precision != "fp32"
        torch.backends.cudnn.benchmark = not config.deterministic
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    return (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if precision == "bf16" else nullcontext


def build_networks(plan: RunPlan, device: torch.device) -> Networks:
    """Fresh networks from the config seed (identical on every rank), then the weights a run starts from: a
    resumed run's G, D and G_ema; a new stage 2's G and G_ema from stage 1 with a fresh plain D. Stage 2
    freezes the layers `stage2_frozen` names: they get no gradients at all, so Adam never moves them."""
    config, model = plan.config, plan.model_config
    torch.manual_seed(config.seed)
    g = place(Generator(model), device)
    d = place(Discriminator(model, gaze=config.stage == 1), device)
    g_ema = copy.deepcopy(g).eval()
    set_requires_grad([g_ema], False)
    g_pre = None
    with contents_of(plan.source):
        if plan.resumed is not None:
            if plan.resumed["stage"] != config.stage:
                raise CheckpointError(
                    f"the latest checkpoint in {plan.source.parent} is from stage {plan.resumed['stage']}, "
                    f"not --stage {config.stage}"
                )
            g.load_state_dict(plan.resumed["g"])
            d.load_state_dict(plan.resumed["d"])
            g_ema.load_state_dict(plan.resumed["g_ema"])
        if config.stage == 2:
            g_pre = place(Generator(model), device).eval()
            g_pre.load_state_dict(plan.resumed["g_pretrained"] if plan.resumed else plan.stage1["g"])
            set_requires_grad([g_pre], False)
            if plan.stage1 is not None:
                g.load_state_dict(plan.stage1["g"])
                g_ema.load_state_dict(plan.stage1["g_ema"])
            for name, p in g.named_parameters():
                p.requires_grad_(not stage2_frozen(name, model))
    return Networks(g, d, g_ema, g_pre)


def build_optimisers(config: TrainConfig, nets: Networks) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for G's trainable parameters and for D, with the learning rate and betas scaled for the lazy
    regularisation interval (c = N / (N + 1)). The fused update (one kernel over all parameters) is the same
    math as the per-parameter loop; with these networks' hundreds of small tensors it is 3-5x faster on the CPU."""
    g_ratio = config.g_reg_every / (config.g_reg_every + 1)
    d_ratio = config.d_reg_every / (config.d_reg_every + 1)
    g_params = [p for p in nets.g.parameters() if p.requires_grad]
    fused = all(p.device.type in ("cpu", "cuda") for p in nets.d.parameters())
    g_optim = torch.optim.Adam(g_params, lr=config.lr * g_ratio, betas=(0.0, 0.99**g_ratio), fused=fused)
    d_optim = torch.optim.Adam(nets.d.parameters(), lr=config.lr * d_ratio, betas=(0.0, 0.99**d_ratio), fused=fused)
    return g_optim, d_optim


def gaze_estimator(config: TrainConfig, resumed: dict | None, device: torch.device):
    """The frozen estimator of --gaze-model, or None; a resumed run must use the same file."""
    if not config.gaze_model:
        return None
    estimator = conditioning.FrozenEstimator(Path(config.gaze_model), device)
    stored = (resumed or {}).get("gaze_loss_model")
    if stored and stored["sha256"] != estimator.sha256:
        raise CheckpointError(
            f"--gaze-model {config.gaze_model} is not the estimator this run was trained with "
            f"({stored['path']}, sha256 {stored['sha256'][:12]}...)"
        )
    return estimator


def ddp(module: torch.nn.Module, device: torch.device) -> DistributedDataParallel:
    """DDP without per-forward buffer syncs (the noise buffers are equal on every rank)."""
    options = {"device_ids": [device.index] if device.type == "cuda" else None}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        options["forward_sync_buffers"] = False
    else:
        options["broadcast_buffers"] = False
    return DistributedDataParallel(module, **options)


def main_passes(modules: dict[str, torch.nn.Module], compile: bool) -> MainPasses:
    """The modules of the main passes, each compiled once with --compile (without DDP, g_train is g)."""
    if not compile:
        return MainPasses(**modules)
    compiler.backend(UsageError)  # a misspelt GCGAN_COMPILE_BACKEND fails here, not at the first step
    done: dict[int, torch.nn.Module] = {}
    for name, module in modules.items():
        if id(module) not in done:
            done[id(module)] = compiler.compiled(module)
        modules[name] = done[id(module)]
    return MainPasses(**modules)


def visualisation_inputs(config: TrainConfig, plan: RunPlan, device: torch.device):
    """The fixed z and gazes of every sample grid of the run."""
    viz = torch.Generator().manual_seed(config.seed + 12_345)
    z = torch.randn(config.n_sample, plan.model_config.style_dim, generator=viz).to(device)
    pick = torch.randint(len(plan.gaze_labels), (config.n_sample,), generator=viz)
    return z, plan.gaze_labels.cpu()[pick].to(device)


def seed_streams(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """One process's training run. Setup runs in four named steps, each reading what the one before made:
    resolve (processes, device, precision, what the run starts from), build (networks, estimator,
    optimisers), restore (the resumed counters), wire (DDP, compile, FID, the run folder, the loader and,
    last, the RNG streams)."""

    def __init__(self, config: TrainConfig, hooks: Hooks | None = None, resume: bool = False):
        self.hooks, self.config = hooks or Hooks(), config
        plan = self._resolve(resume)
        self._build(plan)
        self._restore(plan.resumed)
        self._wire(plan)

    # --- setup ---

    def _resolve(self, resume: bool) -> RunPlan:
        config = self.config
        self.world = dist_utils.from_environment()
        self.device = run_device(self.world, config)
        dist_utils.initialise(self.world, self.device)
        self.run = RunDir(Path(config.checkpoint_dir))
        self._was_deterministic = torch.are_deterministic_algorithms_enabled()
        self.autocast = set_precision(config, self.device)
        plan = RunPlan(config, self.run, resume, self.device)
        self.source, self.dataset = plan.source, plan.dataset
        self.gaze_labels, self.model_config = plan.gaze_labels, plan.model_config
        self.phases = PHASES[config.stage]
        self.r1_gammas = config.r1(self.model_config.size)
        return plan

    def _build(self, plan: RunPlan) -> None:
        self.gaze_estimator = gaze_estimator(self.config, plan.resumed, self.device)
        nets = build_networks(plan, self.device)
        self.g, self.d, self.g_ema, self.g_pre = nets.g, nets.d, nets.g_ema, nets.g_pre
        self.g_optim, self.d_optim = build_optimisers(self.config, nets)
        self.g_params = self.g_optim.param_groups[0]["params"]
        self._ema_pairs = (list(self.g_ema.parameters()), list(self.g.parameters()))

    def _restore(self, resumed: dict | None) -> None:
        """The optimiser states and counters of a resumed run (its weights came in with the networks)."""
        self.mean_path_length = torch.zeros((), device=self.device)
        self.step = 0
        if resumed is None:
            return
        with contents_of(self.source):
            self.g_optim.load_state_dict(resumed["g_optim"])
            self.d_optim.load_state_dict(resumed["d_optim"])
            self.mean_path_length = resumed["mean_path_length"].to(self.device)
            self.step = int(resumed["step"])

    def _wire(self, plan: RunPlan) -> None:
        config = self.config
        wrapped = self.world.distributed
        self.g_train = ddp(self.g, self.device) if wrapped else self.g
        self.d_train = ddp(self.d, self.device) if wrapped else self.d
        self.main = main_passes(
            {"g": self.g, "d": self.d, "g_train": self.g_train, "d_train": self.d_train}, config.compile
        )
        self.fid_stats, self.fid_network = self._fid_setup()
        self.viz_z, self.viz_gaze = visualisation_inputs(config, plan, self.device)
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
            if plan.resumed is not None:
                self.run.truncate_metrics(self.step)
        self.tensorboard = self._tensorboard()
        self.loader = self._loader()
        resumed = plan.resumed
        if (
            resumed is not None
            and self.world.rank < len(resumed["rng"])
            and resumed["data"]["world_size"] == self.world.size
        ):
            restore_rng_state(resumed["rng"][self.world.rank])  # last: nothing above may draw from it
        else:
            seed_streams(config.seed * 7919 + self.world.rank + self.step)
        self.window = LossWindow()  # this log window's losses, on the device
        self._d_requires_grad = None  # unknown until the first phase sets it

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
                "FID is off: the FID Inception weights are not on this machine (see `gcgan inception --help`); "
                "training goes on"
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

    def _event(self, message: str) -> None:
        if self.world.main:
            self.hooks.on_event(message)

    # --- what the phases call ---

    def draw_z(self, batch: int) -> torch.Tensor | list[torch.Tensor]:
        """z for G; with --mixing, two of them with that probability (style mixing)."""
        dim = self.model_config.style_dim
        if self.config.mixing > 0 and random.random() < self.config.mixing:
            return [torch.randn(batch, dim, device=self.device), torch.randn(batch, dim, device=self.device)]
        return torch.randn(batch, dim, device=self.device)

    def draw_gazes(self, batch: int) -> torch.Tensor:
        """Conditioning gazes drawn from the run's label set."""
        return self.gaze_labels[torch.randint(len(self.gaze_labels), (batch,), device=self.device)]

    def augment(self, image: torch.Tensor, seg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return conditioning.augment(image, seg) if self.config.augment else (image, seg)

    def paired_masks(self, seg: torch.Tensor, seg_pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        class_id = self.model_config.class_names.index(self.config.unbroken_class)
        return losses.paired_masks(seg, seg_pre, class_id, self.config.unbroken_fraction, self.config.swap_check)

    def ranks_mean(self, value: torch.Tensor) -> torch.Tensor:
        return dist_utils.mean_over_ranks(self.world, value)

    # --- one iteration ---

    def _batch(self) -> Batch:
        item = next(self.loader)
        image = place_images(item["image"], self.device)
        mask = place_images(item["mask"], self.device).mul_(2).sub_(1)  # one-hot {0,1} -> {-1,+1}
        gaze = (
            item["gaze"].to(self.device, non_blocking=True) if self.config.stage == 1 else None
        )  # stage 2 reads no labels
        return Batch(image, mask, gaze)

    def _run_phase(self, phase: Phase, batch: Batch) -> None:
        trains_d = phase.optimizer == "d"
        if trains_d != self._d_requires_grad:  # D's switch flips twice a step, not once per phase
            set_requires_grad([self.d], trains_d)
            self._d_requires_grad = trains_d
        with self.autocast() if phase.autocast else nullcontext():
            result = phase_loss(self, phase, batch)
        if result is None:
            return
        loss, values, passes = result
        optimizer = self.d_optim if trains_d else self.g_optim
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        self.window.add({**passes.records, **values})
        if phase.finish is not None:
            self.window.add(phase.finish(self, passes))

    @torch.no_grad()
    def _ema(self) -> None:
        torch._foreach_lerp_(*self._ema_pairs, 1 - self.config.ema_decay)  # one kernel for every parameter

    def iteration(self) -> None:
        """One training iteration at self.step (0-based): each phase whose interval divides the step, then the
        EMA; step += 1."""
        batch = self._batch()
        for phase in self.phases:
            if self.step % phase.every(self) == 0:
                self._run_phase(phase, batch)
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
                    "g_blocks": parameter_summary(self.g),
                    "d_blocks": parameter_summary(self.d),
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
