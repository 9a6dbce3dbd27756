"""Does bf16 autocast train like fp32? The same configuration from the same seed in fp32 and in bf16,
and, as the yardstick, fp32 from another seed; the loss curves compared as means over windows.

    python benchmarks/bf16_check.py [--config tiny64|small64|ref256] [--steps N] [--batch 4] [--window W]
                                    [--device cpu|cuda] [--seed 0] [--factor 1.5]

Defaults: on a GPU ref256, 300 steps, windows of 50; on the CPU tiny64, 100 steps, windows of 20 (minutes on
2 cores: 6.6 while other jobs shared them). Each run is the full iteration of `gcgan train` (D step, R1, G
step, path length, EMA) on a synthetic DB. On CUDA the bf16 run is `--precision bf16` as users run it
(autocast of the main passes, TF32 elsewhere) against `--precision fp32`. The trainer refuses --precision
bf16 on the CPU, so on the CPU the fp32 trainer's main passes run under CPU bf16 autocast: the same passes
in the same precision, for a check of the method without a GPU.

Two runs of a GAN drift apart whatever their precision (every difference feeds back through G and D), so
the question is whether bf16 moves the losses further from fp32 than another seed does. Per loss term:
the mean over windows of |window mean - fp32's window mean|, for bf16 and for the other seed. Verdict:
"bf16 tracks fp32" when every bf16 loss is finite and, for every term, the bf16 distance is at most
`--factor` times the other seed's or under 1e-3; otherwise it names the terms that are not.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import harness

harness.use_tree()

import torch  # noqa: E402
from train import make_db  # noqa: E402  (benchmarks/train.py: the synthetic DB)

from gcgan_cli.core.training.config import resolve  # noqa: E402
from gcgan_cli.core.training.trainer import Trainer  # noqa: E402

COMPARED = ("d", "g", "mask", "real_score", "fake_score", "r1_img", "r1_seg", "path_length")
SHOWN = ("d", "g", "mask", "path_length")  # the curves printed window by window
ABSOLUTE_SLACK = 1e-3


def run(args, db: Path, seed: int, bf16: bool) -> list[dict[str, float]]:
    """Window means of every recorded loss term, one dict per window."""
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    preset, size = harness.MODEL_CONFIGS[args.config]
    options = {
        "preset": preset,
        "size": size,
        "dataset": str(db),
        "checkpoint_dir": tempfile.mkdtemp(dir=db.parent) + "/run",
        "batch": args.batch,
        "iters": args.steps,
        "seed": seed,
        "log_every": 10**6,
        "viz_every": 0,
        "save_every": 0,
        "fid_every": 0,
        "device": str(device),
        "workers": 0,
        "precision": "bf16" if bf16 and cuda else "fp32",
    }
    trainer = Trainer(resolve(options))
    if bf16 and not cuda:
        trainer.autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    windows = []
    try:
        for _ in range(args.steps):
            trainer.iteration()
            if trainer.step % args.window == 0:
                windows.append(trainer.window.means())
                trainer.window.clear()
    finally:
        trainer.close()
    return windows


def distance(a: list[dict], b: list[dict], key: str) -> float:
    """Mean over the windows where both recorded `key` of |a - b|."""
    gaps = [abs(x[key] - y[key]) for x, y in zip(a, b) if key in x and key in y]
    return sum(gaps) / len(gaps) if gaps else math.nan


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(harness.MODEL_CONFIGS), default="ref256" if cuda else "tiny64")
    parser.add_argument("--steps", type=int, help="iterations per run (default: 300 on CUDA, 100 on the CPU)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--window", type=int, help="steps per window (default: 50 on CUDA, 20 on the CPU)")
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--factor", type=float, default=1.5, help="bf16 may be this many times further from fp32 than another seed is"
    )
    args = parser.parse_args()
    on_cuda = args.device.startswith("cuda")
    args.steps = args.steps or (300 if on_cuda else 100)
    args.window = args.window or (50 if on_cuda else 20)
    if args.steps < args.window:
        parser.error(f"--steps {args.steps} is shorter than one --window {args.window}")
    print(
        f"torch {torch.__version__}, {args.device}, {args.config}, batch {args.batch}, {args.steps} steps, "
        f"windows of {args.window}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        db = make_db(Path(tmp), harness.MODEL_CONFIGS[args.config][1])
        curves = {}
        for label, seed, bf16 in (
            ("fp32", args.seed, False),
            ("bf16", args.seed, True),
            (f"fp32 seed {args.seed + 1}", args.seed + 1, False),
        ):
            start = time.perf_counter()
            curves[label] = run(args, db, seed, bf16)
            print(f"{label}: {time.perf_counter() - start:.1f} s", flush=True)
    fp32, bf16, other = curves.values()
    keys = [k for k in COMPARED if any(k in w for w in fp32)]
    shown = [k for k in SHOWN if k in keys]
    print(f"\nwindow means ({', '.join(curves)}):")
    print(f"{'steps':>11} " + " ".join(f"{k:>30}" for k in shown))
    for i, windows in enumerate(zip(*curves.values())):
        cells = [" / ".join(f"{w[k]:.4g}" if k in w else "-" for w in windows) for k in shown]
        print(f"{i * args.window + 1:>5}-{(i + 1) * args.window:<5} " + " ".join(f"{c:>30}" for c in cells))
    print(f"\nmean |window mean - fp32's|: {'term':<12} {'bf16':>10} {f'seed {args.seed + 1}':>10} {'ratio':>7}")
    worse = []
    for key in keys:
        ours, yardstick = distance(bf16, fp32, key), distance(other, fp32, key)
        ratio = ours / yardstick if yardstick > 0 else math.inf
        print(f"{'':<28} {key:<12} {ours:>10.4g} {yardstick:>10.4g} {ratio:>6.2f}x")
        if not (ours <= args.factor * yardstick or ours <= ABSOLUTE_SLACK):
            worse.append(key)
    finite = all(math.isfinite(v) for w in bf16 for v in w.values())
    if finite and not worse:
        print(f"\nverdict: bf16 tracks fp32 (every term within {args.factor}x of another seed's distance)")
    else:
        problems = ([] if finite else ["a non-finite bf16 loss"]) + [f"{k} further than {args.factor}x" for k in worse]
        print(f"\nverdict: bf16 differs from fp32: {', '.join(problems)}")


if __name__ == "__main__":
    main()
