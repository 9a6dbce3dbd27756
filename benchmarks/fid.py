"""Time of the Fréchet distance's Tr(sqrt(S1 S2)): gcgan's eigendecomposition against scipy's sqrtm
(pytorch-fid's way), on covariances of Gaussian features.

    python benchmarks/fid.py [--dims 2048] [--samples 10000,1000] [--repeat 3]

Per sample count: two covariances of `--dims`-d features (full rank when samples > dims, else of
rank samples - 1), each path timed `--repeat` times; printed are the medians, their ratio and the
two traces' relative difference. The BLAS threads are whatever numpy has here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gcgan_cli.core.metrics.fid import trace_sqrt_product, trace_sqrt_product_sqrtm  # noqa: E402


def timed(function, *args, repeat: int) -> tuple[float, float]:
    """(median seconds, value) over `repeat` calls."""
    seconds, value = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        value = function(*args)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, default=2048)
    parser.add_argument("--samples", default="10000,1000", help="comma-separated sample counts")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'samples':>8} {'dims':>5} {'eigh s':>8} {'sqrtm s':>8} {'ratio':>6} {'rel diff':>9}")
    for samples in (int(s) for s in args.samples.split(",")):
        a = rng.normal(size=(samples, args.dims)) * rng.uniform(0.2, 2, args.dims)
        b = rng.normal(size=(samples, args.dims)) @ rng.normal(size=(args.dims, args.dims)) / np.sqrt(args.dims)
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        eigen, eigen_value = timed(trace_sqrt_product, s1, s2, repeat=args.repeat)
        sqrtm, sqrtm_value = timed(trace_sqrt_product_sqrtm, s1, s2, repeat=args.repeat)
        print(
            f"{samples:>8} {args.dims:>5} {eigen:>8.2f} {sqrtm:>8.2f} {sqrtm / eigen:>6.1f} "
            f"{abs(eigen_value - sqrtm_value) / abs(sqrtm_value):>9.1e}"
        )


if __name__ == "__main__":
    main()
