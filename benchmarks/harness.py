"""Timing the working tree against a base revision in the same run, in alternating fresh processes.

A benchmark script runs itself as a child once per (repetition, tree): the child imports gcgan from
the tree named by GCGAN_BENCH_TREE (the working tree, or a `git worktree` of the base revision),
measures one thing, and prints one JSON line. The order of the trees alternates between repetitions,
so a machine that slows down during the run slows both alike. Every claim of a speed-up in this
project is a `Row` printed from two such series: median, min-max, and the ratio of the medians.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREE_ENV = "GCGAN_BENCH_TREE"
CURRENT = "working tree"


def use_tree() -> Path:
    """Put the tree under test first on sys.path (call before importing gcgan_cli or cuda_ops)."""
    tree = Path(os.environ.get(TREE_ENV, ROOT))
    sys.path.insert(0, str(tree))
    return tree


def add_arguments(parser) -> None:
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also time this git revision (a worktree of it), alternating with the working tree",
    )
    parser.add_argument(
        "--processes", type=int, default=3, help="fresh processes per tree; medians and min-max are over them"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads in each child (0: torch's default)")
    parser.add_argument("--json", dest="json_out", type=Path, help="also write the rows to this JSON file")


def set_threads(threads: int) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


# The model configurations the benchmarks time: preset name and image size.
MODEL_CONFIGS = {"tiny": ("tiny", 32), "tiny64": ("tiny", 64), "small64": ("small", 64), "ref256": ("ref256", 256)}


def child_setup(args):
    """A child's threads, device and model config for `args.config`, with torch seeded (import after use_tree)."""
    import torch

    from gcgan_cli.core.model import preset

    set_threads(args.threads)
    name, size = MODEL_CONFIGS[args.config]
    torch.manual_seed(0)
    return torch.device(args.device), preset(name, size=size)


@contextlib.contextmanager
def trees(baseline: str | None) -> Iterator[dict[str, Path]]:
    """{label: source root}: the working tree, and with `baseline` a temporary worktree of it."""
    if baseline is None:
        yield {CURRENT: ROOT}
        return
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", baseline], capture_output=True, text=True)
    if sha.returncode != 0:
        raise SystemExit(f"--baseline {baseline}: not a revision of {ROOT} ({sha.stderr.strip()})")
    with tempfile.TemporaryDirectory(prefix="gcgan-baseline-") as tmp:
        worktree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(worktree), baseline], check=True
        )
        try:
            yield {f"{baseline} ({sha.stdout.strip()})": worktree, CURRENT: ROOT}
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=False)


def alternate(runs: dict[str, tuple[list[str], Path]], processes: int) -> dict[str, list[dict]]:
    """Run each labelled (command, tree) `processes` times in fresh processes, the order reversed
    every other repetition; the parsed last stdout line of each run, by label."""
    results: dict[str, list[dict]] = {label: [] for label in runs}
    labels = list(runs)
    for repetition in range(processes):
        for label in labels if repetition % 2 == 0 else labels[::-1]:
            command, tree = runs[label]
            done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, TREE_ENV: str(tree)})
            if done.returncode != 0:
                raise SystemExit(f"benchmark child failed on {label}:\n{done.stderr[-3000:]}")
            results[label].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


@dataclass
class Row:
    """One measured comparison: `ours` against `base`, both medians of the same unit."""

    bench: str
    unit: str
    base_label: str
    base: float
    base_range: tuple[float, float]
    ours: float
    ours_range: tuple[float, float]
    higher_is_better: bool = True

    @classmethod
    def from_record(cls, record: dict) -> Row:
        """A row as `report` writes it to JSON."""
        fields = {name: value for name, value in record.items() if name != "ratio"}
        return cls(**{**fields, "base_range": tuple(fields["base_range"]), "ours_range": tuple(fields["ours_range"])})

    @property
    def ratio(self) -> float:
        """How many times better ours is (> 1: faster, or less memory)."""
        return self.ours / self.base if self.higher_is_better else self.base / self.ours

    def text(self) -> str:
        return (
            f"{self.bench:<28} {self.unit:<8} {self.base_label:<26} {_span(self.base, self.base_range):>24}  "
            f"{_span(self.ours, self.ours_range):>24}  {self.ratio:6.2f}x"
        )


def row(
    bench: str, unit: str, base_label: str, base: list[float], ours: list[float], higher_is_better: bool = True
) -> Row:
    return Row(
        bench,
        unit,
        base_label,
        statistics.median(base),
        (min(base), max(base)),
        statistics.median(ours),
        (min(ours), max(ours)),
        higher_is_better,
    )


def speed_rows(bench: str, results: dict[str, list[dict]]) -> list[Row]:
    """img/s and peak MiB of the working tree against each other label's runs."""
    ours, rows = results[CURRENT], []
    for label, base in results.items():
        if label != CURRENT:
            rows.append(row(bench, "img/s", label, [r["img_s"] for r in base], [r["img_s"] for r in ours]))
            rows.append(
                row(
                    f"{bench} peak",
                    "MiB",
                    label,
                    [r["peak_mib"] for r in base],
                    [r["peak_mib"] for r in ours],
                    higher_is_better=False,
                )
            )
    return rows


def header() -> str:
    return (
        f"{'benchmark':<28} {'unit':<8} {'baseline':<26} {'baseline median [min-max]':>24}  "
        f"{'ours median [min-max]':>24}  {'ratio':>7}"
    )


def _span(median: float, span: tuple[float, float]) -> str:
    return f"{median:.4g} [{span[0]:.4g}-{span[1]:.4g}]"


def report(rows: list[Row], json_out: Path | None) -> None:
    print(header())
    for item in rows:
        print(item.text(), flush=True)
    if json_out is not None:
        json_out.write_text(json.dumps([{**asdict(item), "ratio": item.ratio} for item in rows], indent=1))
