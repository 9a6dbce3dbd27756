"""Forward + backward time of the GC-GAN generator and gaze discriminator.

    python benchmarks/model.py [--configs tiny,tiny64,ref256] [--batch 4] [--device cpu|cuda] [--repeat 10]

One step = G forward, D(image, seg, gaze) forward, backward of the D logit through both.
Configurations: `tiny` (32 px, the test preset), `tiny64` (the same widths at 64 px) and
`ref256` (the reference README's model). On a GPU each row is timed with the custom ops and
with their PyTorch reference (GCGAN_CUDA_OPS=off) in the same run; ratio = ref / cuda.
Median of `--repeat` steps after 2 warm-up steps.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gcgan_cli.core.model import Discriminator, Generator, preset  # noqa: E402

CONFIGS = {"tiny": lambda: preset("tiny"), "tiny64": lambda: preset("tiny", size=64), "ref256": lambda: preset("ref256")}


def step_times(config, batch: int, device: torch.device, repeat: int) -> list[float]:
    torch.manual_seed(0)
    g, d = Generator(config).to(device), Discriminator(config, gaze=True).to(device)
    z = torch.randn(batch, config.style_dim, device=device)
    gaze = torch.rand(batch, 2, device=device) - 0.5
    times = []
    for i in range(repeat + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = g(z, gaze)
        d(out.image, out.seg, gaze).sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="tiny,tiny64,ref256")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    device = torch.device(args.device)
    policies = ("off", "force") if device.type == "cuda" else ("off",)
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, batch {args.batch}")
    for name in args.configs.split(","):
        config = CONFIGS[name]()
        medians = {}
        for policy in policies:
            os.environ["GCGAN_CUDA_OPS"] = policy
            medians[policy] = statistics.median(step_times(config, args.batch, device, args.repeat)) * 1e3
        line = f"{name:<7} {config.size:>4} px  ref ops {medians['off']:9.1f} ms"
        if "force" in medians:
            line += f"  cuda ops {medians['force']:8.1f} ms  ratio {medians['off'] / medians['force']:.2f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
