"""Forward + backward time of the GC-GAN generator and gaze discriminator, against a base revision
(and on a GPU the custom ops against their PyTorch twins), in alternating fresh processes.

    python benchmarks/model.py [--configs tiny,tiny64,small64,ref256] [--batch 4] [--device cpu|cuda]
                               [--baseline REV] [--processes 3] [--threads N] [--steps 10]

One step = G forward, D(image, seg, gaze) forward, backward of the D logit through both, on
networks placed as training places them (`gcgan_cli.device.place` where the tree has it). A child
times `--steps` steps after 2 warm-up steps; ms = the median step. Rows: REV against the working
tree; on a GPU also GCGAN_CUDA_OPS=off (the PyTorch twins) against the kernels.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import harness

harness.use_tree()

import torch  # noqa: E402

from gcgan_cli.core.model import Discriminator, Generator  # noqa: E402


def measure(args) -> dict:
    device, config = harness.child_setup(args)
    g, d = Generator(config), Discriminator(config, gaze=True)
    try:
        from gcgan_cli.device import place
    except ImportError:  # a revision from before the layouts
        g, d = g.to(device), d.to(device)
    else:
        g, d = place(g, device), place(d, device)
    z = torch.randn(args.batch, config.style_dim, device=device)
    gaze = torch.rand(args.batch, 2, device=device) - 0.5
    times = []
    for i in range(args.steps + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = g(z, gaze)
        d(out.image, out.seg, gaze).sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return {"ms": statistics.median(times) * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configs", default="tiny,tiny64,small64,ref256" if torch.cuda.is_available() else "tiny,tiny64,small64"
    )
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=10)
    harness.add_arguments(parser)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    print(
        f"torch {torch.__version__}, {args.device}, batch {args.batch}, {args.processes} processes per variant",
        flush=True,
    )
    rows = []
    on_gpu = torch.device(args.device).type == "cuda"
    with harness.trees(args.baseline) as trees:
        for name in args.configs.split(","):
            child = [
                sys.executable,
                __file__,
                "--child",
                "--config",
                name,
                "--batch",
                str(args.batch),
                "--device",
                args.device,
                "--steps",
                str(args.steps),
                "--threads",
                str(args.threads),
            ]
            runs = {label: (child, tree) for label, tree in trees.items()}
            if on_gpu:
                runs["PyTorch twins (GCGAN_CUDA_OPS=off)"] = (["env", "GCGAN_CUDA_OPS=off", *child], harness.ROOT)
            results = harness.alternate(runs, args.processes)
            ours = [r["ms"] for r in results[harness.CURRENT]]
            for label in runs:
                if label != harness.CURRENT:
                    rows.append(
                        harness.row(
                            f"G+D fwd+bwd {name}",
                            "ms",
                            label,
                            [r["ms"] for r in results[label]],
                            ours,
                            higher_is_better=False,
                        )
                    )
    if not rows:
        print("nothing to compare: give --baseline REV (or run on a GPU for the ops rows)")
    harness.report(rows, args.json_out)


if __name__ == "__main__":
    main()
