"""Sampling throughput: batched passes against one image per forward pass (the reference's way),
and against a base revision, in alternating fresh processes (benchmarks/harness.py).

    python benchmarks/sample.py [--configs tiny64,small64,ref256] [--batch 32] [--n 512] [--device cpu|cuda]
                                [--baseline REV] [--processes 3] [--threads N] [--compile]

Every variant renders the same n truncated latents through `core.synthesis.render` with G_ema-style
fixed noise on a randomly initialised generator (speed does not depend on the weights), once to warm
up and once timed (n = 512: a timed pass of 64 on the CPU varied 2x between processes); img/s =
n / that time, the image moved to the CPU as `gcgan sample` does.
Rows: batch 1 against `--batch` in the working tree; with --baseline, REV against the working tree at
`--batch`; each with the peak memory (CUDA max_memory_allocated, or the process's max RSS on CPU).
With --compile the working tree's `--batch` variant renders through torch.compile (`gcgan sample
--compile`; its graphs compile in the warm-up pass) and the rows are named "... --compile".
Configurations: tiny64, small64, ref256 (the reference's model, meant for a GPU).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import harness

harness.use_tree()

import torch  # noqa: E402

from gcgan_cli.core.model import Generator  # noqa: E402
from gcgan_cli.core.synthesis import render, truncated_latents  # noqa: E402


def measure(args) -> dict:
    device, config = harness.child_setup(args)
    generator = Generator(config).to(device).eval().requires_grad_(False)
    z = torch.randn(args.n, config.style_dim, device=device)
    latents = truncated_latents(generator, z, 0.7, generator.mean_latent(1000))
    gazes = (torch.rand(args.n, 2, device=device) - 0.5) * 0.8
    compiled = {"compile": True} if args.compile else {}  # a base revision's render may predate the option
    seconds = []
    for _ in range(2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for out in render(generator, latents, gazes, args.batch, **compiled):
            out.image.float().clamp(-1, 1).to("cpu")
        seconds.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"img_s": args.n / seconds[-1], "peak_mib": peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="tiny64,small64,ref256" if torch.cuda.is_available() else "tiny64,small64")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action="store_true", help="the working tree renders through torch.compile")
    harness.add_arguments(parser)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    print(f"torch {torch.__version__}, {args.device}, n {args.n}, {args.processes} processes per variant", flush=True)
    rows = []
    with harness.trees(args.baseline) as trees:
        for name in args.configs.split(","):

            def child(batch: int, compiled: bool = False) -> list[str]:
                return [
                    sys.executable,
                    __file__,
                    "--child",
                    "--config",
                    name,
                    "--batch",
                    str(batch),
                    "--n",
                    str(args.n),
                    "--device",
                    args.device,
                    "--threads",
                    str(args.threads),
                    *(["--compile"] if compiled else []),
                ]

            runs = {
                label: (child(args.batch, args.compile and label == harness.CURRENT), tree)
                for label, tree in trees.items()
            }
            runs["one image per pass"] = (child(1), harness.ROOT)
            results = harness.alternate(runs, args.processes)
            bench = f"sample {name} batch {args.batch}" + (" --compile" if args.compile else "")
            rows += harness.speed_rows(bench, results)
    harness.report(rows, args.json_out)


if __name__ == "__main__":
    main()
