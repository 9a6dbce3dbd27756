"""Training throughput (img/s) and peak memory of `gcgan train`: against a base revision and against
a reference-style loop, each in alternating fresh processes (benchmarks/harness.py).

    python benchmarks/train.py [--configs tiny64,small64,ref256] [--batch 8] [--device cpu|cuda]
                               [--baseline REV] [--processes 3] [--threads N] [--steps 10] [--warmup 3]
                               [--compile]

Rows per configuration:
- with --baseline REV: gcgan at REV against gcgan in the working tree (the code being replaced);
- always: the reference-style loop against gcgan, both from the working tree. The reference-style
  loop is what the reference does per step beyond the algorithm: it evaluates D(real, wrong gaze)
  and drops it, reduces and `.item()`s every loss every step (a host sync), loads data in the main
  process (num_workers 0, also gcgan's default on the CPU), and runs in fp32 with TF32 (PyTorch
  1.10's defaults on Ampere+ GPUs; plain fp32 on CPU); gcgan has no wasted D pass, keeps losses on
  the device between log steps, and on CUDA uses DataLoader workers with pinned memory and bf16
  autocast for the main passes (`--precision bf16`).
One process trains `--warmup` iterations (D step, G step and the lazy regularisers at their
intervals), then times `--steps`; img/s = batch / mean step time. Peak memory: CUDA
max_memory_allocated, or the process's max RSS on CPU. With --compile the working tree trains with
`--compile` (the backend from GCGAN_COMPILE_BACKEND): every graph compiles in the warm-up, which
the first iteration covers, so the timed steps exclude compilation; the base revision and the
reference-style loop stay uncompiled, and the rows are named "... --compile".
Configurations: tiny64 (the tiny preset at 64 px), small64 (the `small` preset), ref256 (the reference's model).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import harness

harness.use_tree()

import torch  # noqa: E402

from gcgan_cli import cli  # noqa: E402
from gcgan_cli.core.training.conditioning import wrong_gazes  # noqa: E402
from gcgan_cli.core.training.config import resolve  # noqa: E402
from gcgan_cli.core.training.trainer import Trainer  # noqa: E402
from gcgan_cli.core.training.window import LossWindow  # noqa: E402


class SyncedWindow(LossWindow):
    def add(self, values):
        super().add(values)
        for value in values.values():
            value.item()  # reduce_loss_dict + .item() every step


class ReferenceStyle(Trainer):
    """The reference loop's per-step extras, on top of the same algorithm."""

    def __init__(self, config):
        super().__init__(config)
        self.window = SyncedWindow()

    def _run_phase(self, phase, batch):
        super()._run_phase(phase, batch)
        if phase.name == "D" and batch.gaze is not None:  # D(real, wrong gaze): computed, never used
            self.d_train(
                batch.image, batch.mask, wrong_gazes(self.gaze_labels, batch.gaze, self.config.mismatch_min_deg)
            )


def make_db(root: Path, size: int) -> Path:
    db = root / f"db{size}"
    if db.is_dir():  # configurations of one size share it
        return db
    with contextlib.redirect_stdout(io.StringIO()):
        assert (
            cli.run(["segment", "synthetic", "--n", "64", "--size", str(size), "--outdir", str(root / f"prep{size}")])
            == 0
        )
        assert cli.run(["pack", "--data", str(root / f"prep{size}"), "--outdir", str(db), "--size", str(size)]) == 0
    return db


def measure(args) -> dict:
    """One variant in this process: JSON with the img/s and peak memory."""
    harness.set_threads(args.threads)
    device = torch.device(args.device)
    reference = args.variant == "reference"
    run = Path(tempfile.mkdtemp(prefix="run-", dir=Path(args.db).parent))
    preset, size = harness.MODEL_CONFIGS[args.config]
    options = {
        "preset": preset,
        "size": size,
        "dataset": args.db,
        "checkpoint_dir": str(run),
        "batch": args.batch,
        "iters": 10**9,
        "log_every": 10**6,
        "viz_every": 0,
        "save_every": 0,
        "fid_every": 0,
        "device": str(device),
        "workers": 0 if reference else None,
        "precision": "fp32" if device.type != "cuda" else "tf32" if reference else "bf16",
        **({"compile": True} if args.compile else {}),
    }  # a base revision may predate the option
    trainer = (ReferenceStyle if reference else Trainer)(resolve(options))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(args.warmup):
        trainer.iteration()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        trainer.iteration()
    sync()
    step = (time.perf_counter() - start) / args.steps
    peak = (
        torch.cuda.max_memory_allocated()
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return {
        "step_s": step,
        "img_s": args.batch / step,
        "peak_mib": peak / 2**20,
        "precision": options["precision"],
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="tiny64,small64,ref256" if torch.cuda.is_available() else "tiny64,small64")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="the working tree trains with --compile")
    harness.add_arguments(parser)
    parser.add_argument("--variant", choices=("reference", "gcgan"), help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args)))
        return
    print(
        f"torch {torch.__version__}, {args.device}, batch {args.batch}, {args.processes} processes per variant "
        f"of {args.warmup} + {args.steps} iterations",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp, harness.trees(args.baseline) as trees:
        for name in args.configs.split(","):
            db = make_db(Path(tmp), harness.MODEL_CONFIGS[name][1])

            def child(variant: str, compiled: bool = False) -> list[str]:
                return [
                    sys.executable,
                    __file__,
                    "--variant",
                    variant,
                    "--config",
                    name,
                    "--db",
                    str(db),
                    "--device",
                    args.device,
                    "--batch",
                    str(args.batch),
                    "--steps",
                    str(args.steps),
                    "--warmup",
                    str(args.warmup),
                    "--threads",
                    str(args.threads),
                    *(["--compile"] if compiled else []),
                ]

            runs = {
                label: (child("gcgan", args.compile and label == harness.CURRENT), tree)
                for label, tree in trees.items()
            }
            runs["reference-style loop"] = (child("reference"), harness.ROOT)
            bench = f"train {name}" + (" --compile" if args.compile else "")
            results = harness.alternate(runs, args.processes)
            rows += harness.speed_rows(bench, results)
    harness.report(rows, args.json_out)


if __name__ == "__main__":
    main()
