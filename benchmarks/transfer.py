"""Training and translation throughput (img/s) and peak memory of `gcgan transfer`.

    python benchmarks/transfer.py [--presets tiny,reference] [--batch 8] [--device cpu|cuda]
                                  [--steps 10] [--repeat 3] [--warmup 3] [--features]

Each measurement runs in a fresh process, on the same synthetic S and R sets:
- training, against a reference-style step: the original ran two passes per step, the first
  only to fill the image pools from another batch (G(s1), F(r1)), then the losses and updates on
  a second batch; gcgan computes the fakes once (CycleGAN's order). Both run the same trainer.
  With --features the gaze and landmark loss networks (random weights, the study's sizes) are on.
- translation (`transfer run`'s loop: eval mode, no_grad): batch 100 against one image per pass.
img/s = images of one domain per second, median over `--repeat` blocks after `--warmup`.
Peak memory: CUDA max_memory_allocated, or the process's max RSS on the CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gcgan_cli import cli  # noqa: E402
from gcgan_cli.checkpoint import save_checkpoint  # noqa: E402
from gcgan_cli.core.gaze.estimator import build, network_config, save_estimator  # noqa: E402
from gcgan_cli.core.transfer.config import TransferConfig  # noqa: E402
from gcgan_cli.core.transfer.landmarks import ElgConfig, build_elg  # noqa: E402
from gcgan_cli.core.transfer.trainer import Hooks, TransferTrainer  # noqa: E402
from gcgan_cli.data.eye_patch import EYE_SHAPE  # noqa: E402

TRANSLATE_BATCH = 100


class ReferenceStyle(TransferTrainer):
    """The original's extra pass per step: fakes of another batch go to the pools first."""

    def train_step(self):
        with torch.no_grad():
            s, _ = self.streams["s"].next()
            r, _ = self.streams["r"].next()
            self.pools["r"].query(self.g(s.to(self.device)), self.pool_rng)
            self.pools["s"].query(self.f(r.to(self.device)), self.pool_rng)
        return super().train_step()


def make_data(root: Path) -> tuple[Path, Path, Path, Path]:
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.run(["transfer", "synth", "--outdir", str(root / "s"), "--n", "400", "--seed", "0"]) == 0
        assert (
            cli.run(
                [
                    "transfer",
                    "synth",
                    "--outdir",
                    str(root / "r.h5"),
                    "--style",
                    "r",
                    "--format",
                    "mpii",
                    "--n",
                    "400",
                    "--seed",
                    "1",
                ]
            )
            == 0
        )
    gaze, landmarks = root / "gaze.pt", root / "lm.pt"
    save_estimator(
        gaze, build("small", 0, shape=EYE_SHAPE), {**network_config("small", EYE_SHAPE), "mean_gaze": [0.0, 0.0]}, {}
    )
    elg = ElgConfig(stride=2, maps=16, modules=1)
    save_checkpoint(
        landmarks,
        {
            "kind": "gcgan-landmark-model",
            "config": {**elg.__dict__, "input": list(EYE_SHAPE)},
            "model": build_elg(elg).state_dict(),
            "report": {},
        },
    )
    return root / "s", root / "r.h5", gaze, landmarks


def _peak(device: torch.device) -> float:
    peak = (
        torch.cuda.max_memory_allocated()
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return peak / 2**20


def _timed(run, blocks: int, sync) -> float:
    times = []
    for _ in range(blocks):
        sync()
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(args) -> dict:
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    root = Path(args.data)
    features = (
        {
            "lambda_gaze": 30.0,
            "gaze_model": str(root / "gaze.pt"),
            "lambda_landmarks": 15.0,
            "landmark_model": str(root / "lm.pt"),
        }
        if args.features
        else {}
    )
    config = TransferConfig(
        s=str(root / "s"),
        r=str(root / "r.h5"),
        out=str(root / f"run-{args.variant}-{time.time_ns()}"),
        preset=args.preset,
        batch=args.batch,
        steps=10**9,
        log_every=10**6,
        sample_every=0,
        save_every=0,
        device=str(device),
        **features,
    ).validate()
    if args.variant in ("reference", "gcgan"):
        trainer = (ReferenceStyle if args.variant == "reference" else TransferTrainer)(config, Hooks(), resume=False)

        def block():
            for _ in range(args.steps):
                trainer.train_step()

        block()  # warm-up
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        seconds = _timed(block, args.repeat, sync) / args.steps
        return {"img_s": args.batch / seconds, "peak_mib": _peak(device)}
    trainer = TransferTrainer(config, Hooks(), resume=False)
    generator = trainer.g.eval()
    batch = 1 if args.variant == "translate-1" else TRANSLATE_BATCH
    images = torch.rand(TRANSLATE_BATCH * 2, *EYE_SHAPE) * 2 - 1

    @torch.no_grad()
    def block():
        for start in range(0, len(images), batch):
            generator(images[start : start + batch].to(device)).cpu()

    block()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    return {"img_s": len(images) / _timed(block, args.repeat, sync), "peak_mib": _peak(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,reference" if torch.cuda.is_available() else "tiny")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--features", action="store_true", help="train through the gaze and landmark loss networks")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--preset", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args)))
        return
    print(
        f"torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads, batch {args.batch}, "
        f"median of {args.repeat} x {args.steps} steps" + (", with the feature losses" if args.features else "")
    )
    with tempfile.TemporaryDirectory() as tmp:
        make_data(Path(tmp))
        for preset in args.presets.split(","):
            results = {}
            for variant in ("reference", "gcgan", "translate-1", "translate-100"):
                command = [
                    sys.executable,
                    __file__,
                    "--variant",
                    variant,
                    "--preset",
                    preset,
                    "--data",
                    tmp,
                    "--device",
                    args.device,
                    "--batch",
                    str(args.batch),
                    "--steps",
                    str(args.steps),
                    "--repeat",
                    str(args.repeat),
                ]
                command += ["--features"] if args.features else []
                output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
                results[variant] = json.loads(output.strip().splitlines()[-1])
            ref, ours, one, many = (results[v] for v in ("reference", "gcgan", "translate-1", "translate-100"))
            print(
                f"{preset:<9} train: reference-style {ref['img_s']:7.1f} img/s ({ref['peak_mib']:6.0f} MiB)  gcgan "
                f"{ours['img_s']:7.1f} img/s "
                f"({ours['peak_mib']:6.0f} MiB)  ratio {ours['img_s'] / ref['img_s']:.2f}x",
                flush=True,
            )
            print(
                f"{preset:<9} translate: 1 per pass {one['img_s']:7.0f} img/s  batch {TRANSLATE_BATCH} "
                f"{many['img_s']:7.0f} img/s "
                f"({many['peak_mib']:6.0f} MiB)  ratio {many['img_s'] / one['img_s']:.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
