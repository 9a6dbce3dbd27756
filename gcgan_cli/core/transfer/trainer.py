"""FP-GAN training: G: S -> R and F: R -> S with discriminators D_R and D_S, CycleGAN's step
order, exact resume.

One step: one forward of both cycles; a G/F step with the discriminators frozen; then a D step on
fakes drawn from the image pools (detached). The original instead ran its four optimisers in one
graph with no order between their reads and updates, and filled the pools from a second batch;
both are replaced here. Batches are never partial: each domain is drawn as seeded epoch
permutations and an epoch's remainder is skipped. Adam over G and F together (and over both
discriminators) is the original's four Adams, since Adam works per parameter.

Run folder (`--out`):
    config.json                 the resolved options (with --resume, flags given win)
    checkpoints/NNNNNNN.pt      networks, optimisers, schedules, pools, data positions, RNG, the
                                feature networks' paths and SHA-256 (atomic; --keep prunes)
    metrics.jsonl               means of every loss term per --log-every steps
    samples/NNNNNNN.png         x | G(x) | F(G(x)) | |G(x) - x| for fixed S rows, then the same R -> S
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from gcgan_cli.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from gcgan_cli.core.frozen import set_requires_grad
from gcgan_cli.core.gaze.sources import EyeOptions, GazeSource, open_source
from gcgan_cli.core.training.run_dir import RunDir
from gcgan_cli.core.training.trainer import Hooks
from gcgan_cli.core.training.window import LossWindow, nonfinite
from gcgan_cli.core.transfer import losses
from gcgan_cli.core.transfer.config import TransferConfig
from gcgan_cli.core.transfer.networks import NetConfig, build_discriminator, build_generator
from gcgan_cli.core.transfer.pool import ImagePool
from gcgan_cli.core.transfer.sheets import translation_sheet
from gcgan_cli.data.atomic import write_atomic
from gcgan_cli.data.eye_patch import EYE_SHAPE
from gcgan_cli.data.png import encode_png
from gcgan_cli.device import resolve_device
from gcgan_cli.errors import CheckpointError, TrainingDiverged, UsageError

KIND = "gcgan-transfer"
CHECKPOINT_KEYS = (
    "kind",
    "step",
    "config",
    "net",
    "g",
    "f",
    "d_r",
    "d_s",
    "opt_g",
    "opt_d",
    "sched_g",
    "sched_d",
    "pools",
    "streams",
    "rng",
    "features",
)


def run_dir(root: Path) -> RunDir:
    return RunDir(root, kind=KIND, required=CHECKPOINT_KEYS, flag="--outdir")


def open_domain(
    path: str, flag: str, gray: str | None, jitter: bool, max_head_pose: float | None, seed: int
) -> GazeSource:
    source = open_source(
        path, 0, EyeOptions(gray=gray, jitter=jitter, max_head_pose=max_head_pose, seed=seed), flag=flag
    )
    if len(source) < 2:
        raise UsageError(f"{flag} {path}: needs at least 2 samples")
    return source


def linear_decay(steps: int) -> Callable[[int], float]:
    """The learning-rate factor at step t: 1 up to n/2, then linear to 0 at n."""
    half = steps / 2

    def factor(t: int) -> float:
        return 1.0 if t < half else max(0.0, 1.0 - (t - half) / max(half, 1e-9))

    return factor


class DomainStream:
    """Batches of one domain: seeded epoch permutations, the remainder of each epoch skipped so
    no batch is partial; its position is two integers, saved in the checkpoint. Images are held
    in memory (decoded once) unless a random crop jitter makes every read different."""

    def __init__(self, source: GazeSource, batch: int, seed: int, preload: bool):
        if len(source) < batch:
            raise UsageError(f"{source.path}: {len(source)} samples, fewer than one batch of {batch}")
        self.source, self.batch, self.seed = source, batch, seed
        self.epoch, self.position = 0, 0
        self.images = torch.stack([source[i]["image"] for i in range(len(source))]) if preload else None
        self._order = self._permutation()

    def _permutation(self) -> torch.Tensor:
        return torch.randperm(
            len(self.source), generator=torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        )

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(images [B, 1, 36, 60], indices [B])."""
        if self.position + self.batch > len(self.source):
            self.epoch, self.position = self.epoch + 1, 0
            self._order = self._permutation()
        index = self._order[self.position : self.position + self.batch]
        self.position += self.batch
        if self.images is not None:
            return self.images[index], index
        return torch.stack([self.source[int(i)]["image"] for i in index]), index

    def state_dict(self) -> dict:
        """The position, and the jittered reader's per-item draw counts (its next crops)."""
        state = {"epoch": self.epoch, "position": self.position}
        if self.images is None:
            state["draws"] = torch.from_numpy(self.source.draws.copy())
        return state

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._permutation()
        if self.images is None:
            self.source.draws[:] = state["draws"].numpy()


@dataclass
class FitResult:
    step: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    images: int = 0
    checkpoint: Path | None = None
    last_row: dict = field(default_factory=dict)


class TransferTrainer:
    def __init__(self, config: TransferConfig, hooks: Hooks, resume: bool):
        self.config, self.hooks = config, hooks
        self.device = resolve_device(config.device)
        self.run = run_dir(Path(config.out))
        record = self.run.latest() if resume else None
        if not resume:
            self.run.refuse_overwrite()
        self.net = config.net()
        torch.manual_seed(config.seed)
        self.s = open_domain(config.s, "--s", config.gray_s, config.crop_jitter, config.max_head_pose, config.seed)
        self.r = open_domain(config.r, "--r", config.gray_r, False, config.max_head_pose, config.seed + 1)
        self.streams = {
            "s": DomainStream(self.s, config.batch, config.seed, preload=not config.crop_jitter),
            "r": DomainStream(self.r, config.batch, config.seed + 1, preload=True),
        }
        self.s_gazes = torch.from_numpy(self.s.gazes)
        self.g, self.f = build_generator(self.net).to(self.device), build_generator(self.net).to(self.device)
        self.d_r, self.d_s = (
            build_discriminator(self.net).to(self.device),
            build_discriminator(self.net).to(self.device),
        )
        betas = (config.beta1, 0.999)
        self.opt_g = torch.optim.Adam([*self.g.parameters(), *self.f.parameters()], lr=config.lr, betas=betas)
        self.opt_d = torch.optim.Adam([*self.d_r.parameters(), *self.d_s.parameters()], lr=config.lr, betas=betas)
        decay = linear_decay(config.steps)
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, decay)
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, decay)
        self.pools = {"r": ImagePool(config.pool_size, config.pool), "s": ImagePool(config.pool_size, config.pool)}
        self.pool_rng = torch.Generator().manual_seed(config.seed + 7)
        self.gaze = losses.frozen_gaze(Path(config.gaze_model), self.device) if config.lambda_gaze > 0 else None
        self.landmarks = (
            losses.frozen_landmarks(Path(config.landmark_model), self.device) if config.lambda_landmarks > 0 else None
        )
        self.landmark_scale = losses.landmark_scale(config.landmark_norm, *EYE_SHAPE[1:])
        self.step = 0
        if record is not None:
            self._restore(record)
        else:
            self.run.create()
        self.run.write_config(
            {"transfer": config.to_dict(), "net": asdict(self.net)}
        )  # a resumed run's flags win next time too
        self.run.truncate_metrics(self.step)
        plain_s = (
            open_domain(config.s, "--s", config.gray_s, False, config.max_head_pose, config.seed)
            if config.crop_jitter
            else self.s
        )
        self.fixed = {
            name: [src[i] for i in range(min(config.n_sample, len(src)))]
            for name, src in (("s", plain_s), ("r", self.r))
        }

    def features(self) -> dict:
        return {
            "gaze": self.gaze.record() if self.gaze else None,
            "landmarks": self.landmarks.record() if self.landmarks else None,
        }

    def _restore(self, record: dict) -> None:
        stored = record["features"]
        for name, net in (("gaze", self.gaze), ("landmarks", self.landmarks)):
            if net is not None and stored.get(name) and stored[name]["sha256"] != net.sha256:
                raise UsageError(
                    f"--resume: the {name} network {net.path} is not the file this run started with "
                    f"(SHA-256 {stored[name]['sha256'][:12]}...)"
                )
        for name in ("g", "f", "d_r", "d_s", "opt_g", "opt_d", "sched_g", "sched_d"):
            getattr(self, name).load_state_dict(record[name])
        for name, pool in self.pools.items():
            pool.load_state_dict(record["pools"][name])
        self.pool_rng.set_state(record["pools"]["rng"])
        for name, stream in self.streams.items():
            stream.load_state_dict(record["streams"][name])
        restore_rng_state(record["rng"])
        self.step = int(record["step"])

    def save(self) -> Path:
        path = self.run.checkpoint_path(self.step)
        save_checkpoint(
            path,
            {
                "kind": KIND,
                "step": self.step,
                "config": self.config.to_dict(),
                "net": asdict(self.net),
                **{
                    name: getattr(self, name).state_dict()
                    for name in ("g", "f", "d_r", "d_s", "opt_g", "opt_d", "sched_g", "sched_d")
                },
                "pools": {
                    **{name: pool.state_dict() for name, pool in self.pools.items()},
                    "rng": self.pool_rng.get_state(),
                },
                "streams": {name: stream.state_dict() for name, stream in self.streams.items()},
                "rng": capture_rng_state(),
                "features": self.features(),
            },
        )
        self.run.prune(self.config.keep)
        return path

    def train_step(self) -> dict[str, torch.Tensor]:
        """One CycleGAN step; returns the loss terms (detached)."""
        c = self.config
        s, s_index = self.streams["s"].next()
        r, _ = self.streams["r"].next()
        s, r = s.to(self.device), r.to(self.device)
        fake_r, fake_s = self.g(s), self.f(r)
        rec_s, rec_r = self.f(fake_r), self.g(fake_s)
        terms: dict[str, torch.Tensor] = {}
        set_requires_grad((self.d_r, self.d_s), False)
        terms["g_adv"] = losses.lsgan_generator(self.d_r(fake_r), c.real_label)
        terms["f_adv"] = losses.lsgan_generator(self.d_s(fake_s), c.real_label)
        terms["cycle"] = c.lambda_cycle_s * losses.l1(rec_s, s) + c.lambda_cycle_r * losses.l1(rec_r, r)
        if c.lambda_self > 0:
            terms["self"] = c.lambda_self * (losses.l1(fake_r, s) + losses.l1(fake_s, r))
        if c.lambda_idt > 0:
            terms["idt"] = c.lambda_idt * (losses.l1(self.g(r), r) + losses.l1(self.f(s), s))
        if self.gaze is not None:
            target = self.s_gazes[s_index].to(self.device) if c.gaze_target == "label" else None
            terms["gaze"] = c.lambda_gaze * (
                losses.gaze_consistency(self.gaze, s, fake_r, target) + losses.gaze_consistency(self.gaze, r, fake_s)
            )
        if self.landmarks is not None:
            terms["landmarks"] = c.lambda_landmarks * (
                losses.landmark_consistency(self.landmarks, s, fake_r, self.landmark_scale)
                + losses.landmark_consistency(self.landmarks, r, fake_s, self.landmark_scale)
            )
        total_g = sum(terms.values())
        self.opt_g.zero_grad(set_to_none=True)
        total_g.backward()
        self.opt_g.step()
        set_requires_grad((self.d_r, self.d_s), True)
        pooled_r = self.pools["r"].query(fake_r.detach(), self.pool_rng)
        pooled_s = self.pools["s"].query(fake_s.detach(), self.pool_rng)
        terms["d_r"] = losses.lsgan_discriminator(self.d_r(r), self.d_r(pooled_r), c.real_label)
        terms["d_s"] = losses.lsgan_discriminator(self.d_s(s), self.d_s(pooled_s), c.real_label)
        self.opt_d.zero_grad(set_to_none=True)
        (terms["d_r"] + terms["d_s"]).backward()
        self.opt_d.step()
        self.last_lr = self.opt_g.param_groups[0]["lr"]
        self.sched_g.step()
        self.sched_d.step()
        return {name: value.detach() for name, value in terms.items()}

    @torch.no_grad()
    def write_sheet(self) -> Path:
        path = self.run.sample_path(self.step)
        rows, landmarks = [], []
        for name, forward, back in (("s", self.g, self.f), ("r", self.f, self.g)):
            items = self.fixed[name]
            x = torch.stack([item["image"] for item in items]).to(self.device)
            translated = forward(x)
            rows.append(
                (
                    x.cpu(),
                    translated.cpu(),
                    back(translated).cpu(),
                    torch.stack([item["gaze"] for item in items]).numpy(),
                )
            )
            landmarks.append(torch.stack([item["landmarks"] for item in items]).numpy())
        picture = translation_sheet(rows, ("S -> R", "R -> S"), landmarks)
        write_atomic(path, encode_png(picture))
        return path

    def train(self) -> FitResult:
        c = self.config
        for module in (self.g, self.f, self.d_r, self.d_s):
            module.train()
        self.hooks.on_start(
            {
                "step": self.step,
                "device": str(self.device),
                "s": self.s.describe(),
                "r": self.r.describe(),
                "g_params": sum(p.numel() for p in self.g.parameters()),
                "d_params": sum(p.numel() for p in self.d_r.parameters()),
                "features": self.features(),
            }
        )
        result = FitResult(step=self.step)
        window = LossWindow()
        count, started, opened = 0, time.perf_counter(), time.perf_counter()
        while self.step < c.steps:
            if self.hooks.should_stop():
                result.interrupted = True
                break
            window.add(self.train_step())
            self.step += 1
            count += 1
            result.images += c.batch
            self.hooks.on_step(self.step)
            if self.step % c.log_every == 0 or self.step == c.steps:
                elapsed = time.perf_counter() - opened
                row = {
                    "step": self.step,
                    **self._finite(window.means()),
                    "lr": self.last_lr,
                    "sec_per_step": elapsed / count,
                    "img_per_s": count * c.batch / max(elapsed, 1e-9),
                }
                self.run.append_metrics(row)
                self.hooks.on_log(row)
                result.last_row = row
                window.clear()
                count, opened = 0, time.perf_counter()
            if c.sample_every and self.step % c.sample_every == 0:
                self.hooks.on_event(f"samples: {self.write_sheet()}")
            if c.save_every and self.step % c.save_every == 0 and self.step < c.steps:
                self._finite(window.means())
                self.save()
        if not result.interrupted and c.sample_every:
            self.write_sheet()
        result.step, result.seconds = self.step, time.perf_counter() - started
        self._finite(window.means())
        result.checkpoint = self.save()
        return result

    def _finite(self, means: dict[str, float]) -> dict[str, float]:
        """`means`, unless a loss became NaN or infinite: then the run stops without saving."""
        bad = nonfinite(means)
        if bad:
            files = self.run.checkpoint_files()
            last = f"the last good checkpoint is {files[-1]}" if files else "no checkpoint was written before it"
            raise TrainingDiverged(
                f"training diverged: {', '.join(bad)} became non-finite by step {self.step}; stopped without "
                f"saving; {last} (lower --lr or the lambdas and --resume)"
            )
        return means


def load_translator(path: Path, direction: str, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """The generator of one direction (s2r: G, r2s: F) from a transfer checkpoint file or run
    folder (its newest checkpoint), in eval mode; and the checkpoint's config."""
    path = Path(path)
    if path.is_dir():
        files = run_dir(path).checkpoint_files()
        if not files:
            raise UsageError(
                f"--network {path}: no checkpoints/NNNNNNN.pt in this folder; is it a `gcgan transfer fit` run?"
            )
        path = files[-1]
    record = load_checkpoint(path, required=("kind", "net", "g", "f", "step", "config"))
    if record["kind"] != KIND:
        raise UsageError(f"--network {path} is not a `gcgan transfer fit` checkpoint")
    try:
        generator = build_generator(NetConfig.from_dict(record["net"]))
        generator.load_state_dict(record["g" if direction == "s2r" else "f"])
    except (UsageError, RuntimeError) as exc:
        raise CheckpointError(f"--network {path}: its generator does not load ({str(exc).splitlines()[0]})") from None
    return generator.to(device).eval(), {
        "step": record["step"],
        "config": record["config"],
        "path": str(path),
        "features": record.get("features", {}),
    }
