"""Sampling throughput: one image per forward pass (the reference's way) against batched passes.

    python benchmarks/sample.py [--configs tiny64,ref256] [--batch 32] [--n 64] [--device cpu|cuda] [--repeat 3]

Both render the same n truncated latents through `core.synthesis.render` with G_ema-style fixed
noise on a randomly initialised generator (speed does not depend on the weights). img/s is n / the
median over `--repeat` runs, after one warm-up run. Configurations: tiny64 (the tiny preset's
widths at 64 px), ref256 (the reference's model, meant for a GPU).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gcgan_cli.core.model import Generator, preset  # noqa: E402
from gcgan_cli.core.synthesis import render, truncated_latents  # noqa: E402

CONFIGS = {"tiny64": lambda: preset("tiny", size=64), "ref256": lambda: preset("ref256")}


def images_per_second(generator: Generator, latents: torch.Tensor, gazes: torch.Tensor, batch: int, repeat: int) -> float:
    device = latents.device
    times = []
    for i in range(repeat + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for out in render(generator, latents, gazes, batch):
            out.image.float().clamp(-1, 1).to("cpu")  # what `gcgan sample` does with each batch
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - start)
    return len(latents) / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="tiny64,ref256" if torch.cuda.is_available() else "tiny64")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, n {args.n}, median of {args.repeat}")
    for name in args.configs.split(","):
        config = CONFIGS[name]()
        torch.manual_seed(0)
        generator = Generator(config).to(device).eval().requires_grad_(False)
        z = torch.randn(args.n, config.style_dim, device=device)
        latents = truncated_latents(generator, z, 0.7, generator.mean_latent(1000))
        gazes = (torch.rand(args.n, 2, device=device) - 0.5) * 0.8
        single = images_per_second(generator, latents, gazes, 1, args.repeat)
        batched = images_per_second(generator, latents, gazes, args.batch, args.repeat)
        print(f"{name:<7} {config.size:>4} px  batch 1 {single:8.1f} img/s  batch {args.batch} {batched:8.1f} img/s"
              f"  ratio {batched / single:.2f}x", flush=True)


if __name__ == "__main__":
    main()
