"""Throughput and peak memory of `gcgan pack`, against single-process baselines in the same run.

    python benchmarks/pack.py [--sizes 2000,20000] [--workers N] [--repeat 3] [--csv pack.csv]

Input: PREP_DIRs of `--sizes` synthetic strips rendered by `gcgan segment synthetic`, at 256
(packed at 256: the strips are kept byte for byte) and at 250 (packed at 256: the reference's
case, every strip decoded, resized with Lanczos and re-encoded). Each run is a fresh process:
  - reference-style: one process, every record decoded, resized, encoded with cv2.imencode;
  - gcgan, 1 process: core.pack with workers=1;
  - gcgan, N processes: core.pack with `--workers` (worker start included).
img/s is the median of `--repeat` runs (one run at the largest size); ratio = img/s over the
reference-style baseline of the same input. Peak memory: the largest resident set of the main
process and of any worker, from getrusage.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gcgan_cli.core.pool import default_workers  # noqa: E402


def child(mode: str, prep: Path, out: Path, size: int, workers: int) -> None:
    """One measured run; prints a JSON line."""
    from gcgan_cli.data.masks import CLASS_NAMES
    from gcgan_cli.data.pack_inputs import find_inputs

    inputs = find_inputs(prep)
    start = time.perf_counter()
    if mode == "reference":
        count = reference_pack(inputs, out, size)
    else:
        from gcgan_cli.core.pack import pack

        count = pack(inputs, out, size, CLASS_NAMES, workers).count
    elapsed = time.perf_counter() - start
    print(
        json.dumps(
            {
                "count": count,
                "elapsed": elapsed,
                "main_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            }
        )
    )


def reference_pack(inputs, out: Path, size: int) -> int:
    """The reference's per-record work in one process: decode, Lanczos resize, PNG encode, put."""
    import cv2
    import lmdb

    env = lmdb.open(str(out), map_size=1 << 40, readahead=False)
    txn = env.begin(write=True)
    for i, pair in enumerate(inputs.pairs):
        image = cv2.resize(cv2.imread(str(pair.image)), (size, size), interpolation=cv2.INTER_LANCZOS4)
        mask = cv2.resize(
            cv2.imread(str(pair.mask), cv2.IMREAD_GRAYSCALE), (size, size), interpolation=cv2.INTER_NEAREST
        )
        label = f"{pair.gaze[0]:.4f}_{pair.gaze[1]:.4f}"
        txn.put(f"image-{i:07d}-{label}".encode(), cv2.imencode(".png", image)[1].tobytes())
        txn.put(f"label-{i:07d}-{label}".encode(), cv2.imencode(".png", mask)[1].tobytes())
        if i % 1000 == 999:
            txn.commit()
            txn = env.begin(write=True)
    txn.put(b"image-length", str(len(inputs.pairs)).encode())
    txn.commit()
    env.close()
    return len(inputs.pairs)


def measure(mode: str, prep: Path, scratch: Path, size: int, workers: int) -> dict:
    out = scratch / f"db-{mode}-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    line = (
        subprocess.run(
            [sys.executable, __file__, "--child", mode, str(prep), str(out), str(size), str(workers)],
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(line)


def make_prep(folder: Path, n: int, size: int, workers: int) -> None:
    from gcgan_cli.core.segment import segment
    from gcgan_cli.data.prep_dir import PrepDir
    from gcgan_cli.data.sources import SyntheticSource

    segment(SyntheticSource(n=n, size=size), PrepDir.at(folder), workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000", help="dataset sizes (records), comma-separated")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--csv", type=Path)
    parser.add_argument("--json", dest="json_out", type=Path, help="also write the comparisons as rows (run_all.py)")
    parser.add_argument("--child", nargs=5, metavar=("MODE", "PREP", "OUT", "SIZE", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, prep, out, size, workers = args.child
        child(mode, Path(prep), Path(out), int(size), int(workers))
        return
    counts = [int(n) for n in args.sizes.split(",")]
    rows, comparisons = [], []
    with tempfile.TemporaryDirectory(prefix="gcgan-pack-bench-") as tmp:
        scratch = Path(tmp)
        cases = [(n, 256, 256) for n in counts] + [(counts[0], 250, 256)]
        for n, strip, size in cases:
            prep = scratch / f"prep-{n}-{strip}"
            make_prep(prep, n, strip, args.workers)
            repeat = 1 if n == max(counts) and len(counts) > 1 else args.repeat
            results, rates = {}, {}
            for label, mode, workers in (
                ("reference-style, 1 process", "reference", 1),
                ("gcgan, 1 process", "gcgan", 1),
                (f"gcgan, {args.workers} processes", "gcgan", args.workers),
            ):
                runs = [measure(mode, prep, scratch, size, workers) for _ in range(repeat)]
                rates[label] = [r["count"] / r["elapsed"] for r in runs]
                rate = statistics.median(rates[label])
                results[label] = rate
                rows.append(
                    {
                        "records": n,
                        "strip": strip,
                        "packed": size,
                        "variant": label,
                        "img_s": round(rate, 1),
                        "ratio": round(rate / results["reference-style, 1 process"], 2),
                        "main_mib": round(max(r["main_mib"] for r in runs)),
                        "worker_mib": round(max(r["worker_mib"] for r in runs)),
                        "runs": repeat,
                    }
                )
                row = rows[-1]
                print(
                    f"{n:>6} {strip}->{size}  {label:<28} {row['img_s']:>7.1f} img/s  x{row['ratio']:<5} "
                    f"main {row['main_mib']:>4} MiB  worker {row['worker_mib']:>4} MiB  ({repeat} run(s))",
                    flush=True,
                )
            base = "reference-style, 1 process"
            comparisons += [
                harness.row(
                    f"pack {n} {strip}->{size}, {label.removeprefix('gcgan, ')}",
                    "img/s",
                    base,
                    rates[base],
                    rates[label],
                )
                for label in rates
                if label != base
            ]
            shutil.rmtree(prep)
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    if args.json_out:
        harness.report(comparisons, args.json_out)


if __name__ == "__main__":
    main()
