"""Training throughput (img/s) and peak memory of `gcgan train` against a reference-style loop.

    python benchmarks/train.py [--configs tiny64,ref256] [--batch 4] [--device cpu|cuda]
                               [--steps 20] [--repeat 3] [--warmup 5]

Both variants run the same Trainer on the same synthetic DB, each in a fresh process:
- reference-style: what the reference loop does per step beyond the algorithm: it evaluates
  D(real, wrong gaze) and drops it, reduces and `.item()`s every loss every step (a host sync),
  loads data in the main process (num_workers 0, also gcgan's default on the CPU), and runs in fp32 with TF32 (PyTorch 1.10's
  defaults on Ampere+ GPUs; plain fp32 on CPU);
- gcgan: no wasted D pass, losses stay on the device between log steps, on CUDA DataLoader
  workers with pinned memory and bf16 autocast for the main passes (`--precision bf16`).
img/s = batch / median step time over `--repeat` blocks of `--steps` steps, after `--warmup`.
Peak memory: CUDA max_memory_allocated, or the process's max RSS on CPU.
Configurations: tiny64 (the tiny preset's widths at 64 px: CPU), ref256 (the reference's model).
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
from gcgan_cli.core.training.config import resolve  # noqa: E402
from gcgan_cli.core.training.trainer import Trainer  # noqa: E402

CONFIGS = {"tiny64": {"preset": "tiny", "size": 64}, "ref256": {"preset": "ref256", "size": 256}}


class ReferenceStyle(Trainer):
    """The reference loop's per-step extras, on top of the same algorithm."""

    def _d_step(self, real, mask, gaze):
        if gaze is not None:
            self.d_train(real, mask, self._fake_gaze(real.shape[0]))  # computed, never used
        super()._d_step(real, mask, gaze)

    def _record(self, **values):
        super()._record(**values)
        for value in values.values():
            value.item()  # reduce_loss_dict + .item() every step


def make_db(root: Path, size: int) -> Path:
    db = root / f"db{size}"
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.run(["segment", "synthetic", "--n", "64", "--size", str(size), "--outdir", str(root / f"prep{size}")]) == 0
        assert cli.run(["pack", "--data", str(root / f"prep{size}"), "--outdir", str(db), "--size", str(size)]) == 0
    return db


def measure(args) -> dict:
    """One variant in this process: JSON with the median step time and peak memory."""
    device = torch.device(args.device)
    reference = args.variant == "reference"
    options = {**CONFIGS[args.config], "dataset": args.db, "checkpoint_dir": str(Path(args.db).parent / f"run-{args.variant}"),
               "batch": args.batch, "iters": 10**9, "log_every": 10**6, "viz_every": 0, "save_every": 0, "fid_every": 0,
               "device": str(device), "workers": 0 if reference else None,
               "precision": "fp32" if device.type != "cuda" else "tf32" if reference else "bf16"}
    trainer = (ReferenceStyle if reference else Trainer)(resolve(options))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(args.warmup):
        trainer.iteration()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    blocks = []
    for _ in range(args.repeat):
        sync()
        start = time.perf_counter()
        for _ in range(args.steps):
            trainer.iteration()
        trainer.window.clear()
        sync()
        blocks.append((time.perf_counter() - start) / args.steps)
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    step = statistics.median(blocks)
    return {"step_s": step, "img_s": args.batch / step, "peak_mib": peak / 2**20, "precision": options["precision"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="tiny64,ref256" if torch.cuda.is_available() else "tiny64")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--variant", choices=("reference", "gcgan"), help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args)))
        return
    print(f"torch {torch.__version__}, {args.device}, batch {args.batch}, median of {args.repeat} x {args.steps} steps")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs.split(","):
            db = make_db(Path(tmp), CONFIGS[name]["size"])
            results = {}
            for variant in ("reference", "gcgan"):
                command = [sys.executable, __file__, "--variant", variant, "--config", name, "--db", str(db),
                           "--device", args.device, "--batch", str(args.batch), "--steps", str(args.steps),
                           "--repeat", str(args.repeat), "--warmup", str(args.warmup)]
                output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
                results[variant] = json.loads(output.strip().splitlines()[-1])
            ref, ours = results["reference"], results["gcgan"]
            print(f"{name:<7} reference-style {ref['img_s']:8.2f} img/s ({ref['peak_mib']:7.0f} MiB, {ref['precision']})"
                  f"  gcgan {ours['img_s']:8.2f} img/s ({ours['peak_mib']:7.0f} MiB, {ours['precision']})"
                  f"  ratio {ours['img_s'] / ref['img_s']:.2f}x", flush=True)


if __name__ == "__main__":
    main()
