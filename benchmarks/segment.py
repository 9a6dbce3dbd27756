"""Throughput of `gcgan segment`: ours against the reference's way, measured in the same run.

    python benchmarks/segment.py [--images 600] [--workers N] [--repeat 3] [--csv segment.csv]

ETH-XGaze rows: an ETH-format .h5 of `--images` real face photographs (tests/face_fixtures.py:
the scikit-image astronaut, shifted and mirrored, mirrored in cameras 2 and 8), in two kinds:
  - jitter: every frame of a camera at another of 9 shifts within +-6 px (the worst case for tracking);
  - drift: each camera's face wanders by at most 1 px per frame within +-6 px, as in normalised
    ETH-XGaze patches of one (subject, camera) run.
Each goes through
  - baseline: one process that builds a new FaceMesh for every image, as the reference does;
  - gcgan `--detect every` (the detector on every frame) and `--detect track` (the landmark model
    follows the face through each camera's run): `core.segment` in one process with one FaceMesh,
    and with `--workers` processes, one FaceMesh each (worker start included).
All do the same crop, mask, PNG encoding and writing. Synthetic rows: the renderer alone on one
core (OpenCV single-threaded), and `segment synthetic` end to end with the workers. Each number is
the median of `--repeat` runs, the runs of one repeat back to back; ratio = img/s / baseline img/s
on the same images.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import h5py
import harness

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import face_fixtures  # noqa: E402

from gcgan_cli.core.pool import default_workers  # noqa: E402
from gcgan_cli.core.segment import segment  # noqa: E402
from gcgan_cli.data import ethx, face_strip, synthetic  # noqa: E402
from gcgan_cli.data.landmarks import LandmarkDetector  # noqa: E402
from gcgan_cli.data.png import encode_png  # noqa: E402
from gcgan_cli.data.prep_dir import PrepDir, strip_name  # noqa: E402
from gcgan_cli.data.sources import EthxSource, SyntheticSource  # noqa: E402

VARIANTS = [((dy, dx), flip) for dy in (-6, 0, 6) for dx in (-6, 0, 6) for flip in (False, True)]
CAMERAS = (1, 2, 3, 8)
MOTIONS = ("jitter", "drift")


def write_fixture(path: Path, images: int, motion: str = "jitter") -> None:
    if motion == "drift":
        rows = face_fixtures.camera_runs(-(-images // len(CAMERAS)), CAMERAS)[:images]
    else:
        rows = [
            (VARIANTS[i % len(VARIANTS)], CAMERAS[i % 4], i % 500, 0.01 * (i % 40) - 0.2, 0.02 * (i % 60) - 0.6)
            for i in range(images)
        ]
    face_fixtures.write_ethx_subject(path, rows)


def baseline(h5_dir: Path, out: Path, size: int) -> int:
    """The reference's loop: every image builds (and drops) its own FaceMesh."""
    prep = PrepDir.at(out)
    prep.create()
    done = 0
    for path in ethx.subject_files(h5_dir, None):
        with h5py.File(path, "r") as h5:
            for row in ethx.scan_subject(path, ethx.EthxFilter()):
                rgb = ethx.read_face(h5, row.row)
                with LandmarkDetector() as detector:
                    try:
                        points, box = face_strip.locate(rgb, detector, face_strip.ETHX_VIEW)
                    except face_strip.NoFace:
                        continue
                strip, mask = face_strip.strip_from_landmarks(rgb, points, box, size)
                prep.write_pair(
                    strip_name(row.camera, row.subject, row.k, row.pitch, row.yaw), encode_png(strip), encode_png(mask)
                )
                done += 1
    return done


def timed(fn) -> tuple[float, int]:
    start = time.perf_counter()
    count = fn()
    return time.perf_counter() - start, count


def render_rate(size: int, count: int) -> float:
    cv2.setNumThreads(1)
    synthetic.render(0, 0, size)
    start = time.perf_counter()
    for i in range(count):
        synthetic.render(0, i, size)
    cv2.setNumThreads(-1)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--synthetic", type=int, default=2000, help="strips for the synthetic rows")
    parser.add_argument("--csv", type=Path)
    parser.add_argument("--json", dest="json_out", type=Path, help="also write the comparisons as rows (run_all.py)")
    args = parser.parse_args()

    rows, comparisons = [], []
    runs = [(detect, workers) for detect in ("every", "track") for workers in (1, args.workers)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for motion in MOTIONS:
            h5_dir = tmp / motion / "h5"
            h5_dir.mkdir(parents=True)
            write_fixture(h5_dir / "subject0000.h5", args.images, motion)
            rates: dict = {run: [] for run in ["baseline", *runs]}
            for r in range(args.repeat):
                seconds, count = timed(lambda: baseline(h5_dir, tmp / motion / f"base{r}", args.size))
                rates["baseline"].append(count / seconds)
                for detect, workers in runs:
                    source = EthxSource(h5_dir, args.size, detect=detect)
                    out = PrepDir.at(tmp / motion / f"{detect}{workers}-{r}")
                    seconds, _ = timed(lambda: segment(source, out, workers))
                    rates[detect, workers].append(count / seconds)
            base = statistics.median(rates["baseline"])
            rows.append((f"ethx {motion}", "baseline: FaceMesh per image, 1 process", count, base, 1.0))
            for detect, workers in runs:
                rate = statistics.median(rates[detect, workers])
                where = "1 process" if workers == 1 else f"{workers} workers, one FaceMesh each"
                rows.append((f"ethx {motion}", f"gcgan --detect {detect}, {where}", count, rate, rate / base))
                comparisons.append(
                    harness.row(
                        f"segment ethx {motion} {detect} x{workers}",
                        "img/s",
                        "FaceMesh per image",
                        rates["baseline"],
                        rates[detect, workers],
                    )
                )

        render = statistics.median(render_rate(args.size, min(args.synthetic, 1000)) for _ in range(args.repeat))
        rows.append(("synthetic", "renderer only, 1 core", min(args.synthetic, 1000), render, float("nan")))
        rates = []
        for r in range(args.repeat):
            seconds, _ = timed(
                lambda: segment(
                    SyntheticSource(args.synthetic, size=args.size), PrepDir.at(tmp / f"syn{r}"), args.workers
                )
            )
            rates.append(args.synthetic / seconds)
        rows.append(
            (
                "synthetic",
                f"segment synthetic (render + PNG + write), {args.workers} workers",
                args.synthetic,
                statistics.median(rates),
                float("nan"),
            )
        )

    print(f"{os.cpu_count()} CPUs, {args.size} px strips, median of {args.repeat}")
    print(f"{'data':12s} {'method':64s} {'n':>6s} {'img/s':>8s} {'ratio':>6s}")
    for data, method, n, rate, ratio in rows:
        print(f"{data:12s} {method:64s} {n:6d} {rate:8.1f} {ratio:6.2f}")
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["data", "method", "n", "img_per_s", "ratio_vs_baseline"])
            writer.writerows(rows)
    if args.json_out:
        harness.report(comparisons, args.json_out)


if __name__ == "__main__":
    main()
