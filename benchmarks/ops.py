"""Forward+backward time of the custom ops: CUDA kernels, or on the CPU the native-convolution path
(`cuda_ops.native`), against the PyTorch reference.

    python benchmarks/ops.py [--device cuda] [--repeat 50] [--csv ops.csv]

StyleGAN2 shapes at batch 8: 512 channels at 4-64 px, 128 and 64 channels at
128 and 256 px; for upfirdn2d the three resamplings the networks use (upsample,
the blur before a strided conv, downsample). Each row is the median of
``--repeat`` timed runs after warm-up (CUDA events), and ref/ours is the speedup. Without a GPU
"ours" is impl="auto" on the CPU (sizes up to --max-size): upfirdn2d through native convolutions,
fused_leaky_relu the reference itself (ratio about 1).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import time
from pathlib import Path

import harness
import torch

harness.use_tree()

import cuda_ops  # noqa: E402

SHAPES = [(8, 512, 4), (8, 512, 8), (8, 512, 16), (8, 512, 32), (8, 512, 64), (8, 128, 128), (8, 64, 256)]
KERNEL = cuda_ops.make_kernel([1, 3, 3, 1])
# name: (kernel gain, upfirdn2d arguments); the upsampler scales its kernel by up**2.
RESAMPLINGS = {
    "upsample x2": (4.0, dict(up=2, pad=(2, 1))),
    "blur pad 2": (1.0, dict(pad=(2, 2))),
    "downsample x2": (1.0, dict(down=2, pad=(1, 1))),
}


def time_ms(fn, device: torch.device, repeat: int, warmup: int = 5) -> list[float]:
    """Milliseconds of fn() in each of `repeat` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
    return samples


def upfirdn_step(x, grad, impl, kernel, kwargs):
    def run():
        xi = x.detach().requires_grad_(True)
        cuda_ops.upfirdn2d(xi, kernel, impl=impl, **kwargs).backward(grad)

    return run


def act_step(x, bias, grad, impl):
    def run():
        xi, bi = x.detach().requires_grad_(True), bias.detach().requires_grad_(True)
        cuda_ops.fused_leaky_relu(xi, bi, impl=impl).backward(grad)

    return run


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument(
        "--max-size", type=int, default=None, help="largest resolution (default: all on GPU, 32 on CPU)"
    )
    parser.add_argument("--csv", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--json", dest="json_out", type=Path, help="also write the comparisons as rows (run_all.py)")
    args = parser.parse_args()
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    max_size = args.max_size or (256 if on_gpu else 32)
    impls = ("ref", "cuda") if on_gpu else ("ref", "auto")
    gpu = torch.cuda.get_device_name(device) if on_gpu else "none"
    print(f"device {device} ({gpu}), torch {torch.__version__}, CUDA {torch.version.cuda}, git {git_sha()}")

    rows, comparisons = [], []
    gen = torch.Generator().manual_seed(0)
    for n, c, size in SHAPES:
        if size > max_size:
            continue
        x = torch.randn(n, c, size, size, generator=gen).to(device)
        bias = torch.randn(c, generator=gen).to(device)
        cases = {}
        for name, (gain, kwargs) in RESAMPLINGS.items():
            kernel = (KERNEL * gain).to(device)
            out_shape = cuda_ops.upfirdn2d(x, kernel, impl="ref", **kwargs).shape
            grad = torch.randn(out_shape, generator=gen).to(device)
            cases[f"upfirdn2d {name}"] = {impl: upfirdn_step(x, grad, impl, kernel, kwargs) for impl in impls}
        grad = torch.randn(x.shape, generator=gen).to(device)
        cases["fused_leaky_relu"] = {impl: act_step(x, bias, grad, impl) for impl in impls}
        for op, fns in cases.items():
            times = {impl: time_ms(fn, device, args.repeat) for impl, fn in fns.items()}
            ref_ms, our_ms = statistics.median(times["ref"]), statistics.median(times[impls[1]])
            rows.append((op, f"{n}x{c}x{size}x{size}", ref_ms, our_ms, ref_ms / our_ms))
            comparisons.append(
                harness.row(
                    f"{op} {n}x{c}x{size}",
                    "ms",
                    "reference twin",
                    times["ref"],
                    times[impls[1]],
                    higher_is_better=False,
                )
            )

    ours = "cuda" if on_gpu else "native"
    header = ("op", "shape [N,C,H,W]", "ref ms", f"{ours} ms", f"ref/{ours}")
    print(f"{header[0]:<26} {header[1]:<18} {header[2]:>9} {header[3]:>9} {header[4]:>9}")
    for op, shape, ref_ms, our_ms, ratio in rows:
        print(f"{op:<26} {shape:<18} {ref_ms:9.3f} {our_ms:9.3f} {ratio:9.2f}")
    print(f"median speedup ref/{ours} over {len(rows)} rows: {statistics.median(r[4] for r in rows):.2f}")
    if args.json_out:
        harness.report(comparisons, args.json_out)
    if args.csv:
        with args.csv.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([*header, "device", "torch", "cuda"])
            for row in rows:
                writer.writerow([*row, gpu, torch.__version__, torch.version.cuda])


if __name__ == "__main__":
    main()
