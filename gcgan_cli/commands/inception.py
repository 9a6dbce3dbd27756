"""`gcgan inception`: FID statistics (mean, covariance of Inception pool features) of a packed DB."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from gcgan_cli.commands.display import progress_bar, summary_table
from gcgan_cli.commands.options import DeviceOpt, InceptionWeightsOpt
from gcgan_cli.console import console
from gcgan_cli.core.metrics.inception_weights import resolve_inception_weights
from gcgan_cli.core.pool import default_workers
from gcgan_cli.data.gaze_db import read_meta
from gcgan_cli.errors import UsageError
from gcgan_cli.outputs import output_file


def inception_command(
    db: Annotated[Path, typer.Option("--data", help="A DB from `gcgan pack`.")],
    output: Annotated[
        Path, typer.Option("--out", "-o", help="The statistics file to write (.npz: mu, sigma, count, config).")
    ],
    n: Annotated[
        int | None, typer.Option("--n", min=2, help="Use this many images, spread evenly over the DB (default: all).")
    ] = None,
    batch: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 50,
    weights: InceptionWeightsOpt = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-j", min=0, help="DataLoader workers decoding PNGs (default: cores - 1)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out.")] = False,
    device: DeviceOpt = "auto",
) -> None:
    """FID statistics of a packed dataset with the standard FID network.

    The network is the TF 2015-12-05 Inception-v3 used by pytorch-fid, so FIDs are comparable
    with published ones (the reference used torchvision's ImageNet Inception, whose are not).
    """
    from gcgan_cli.core.metrics.fid import dataset_stats  # these import torch: here, so --help stays fast
    from gcgan_cli.core.metrics.inception import load_fid_inception

    if output.suffix != ".npz":
        raise UsageError(f"--out {output}: use a .npz file name")
    meta = read_meta(db)  # a bad DB fails before the weights are looked for
    output_file(output, "--out", overwrite)  # and so does an output that cannot be written
    path = resolve_inception_weights(weights)
    network = load_fid_inception(path, device)
    workers = max(0, default_workers() - 1) if workers is None else workers
    start = time.perf_counter()
    with progress_bar("inception") as progress:
        bar = progress.add_task("features", total=None)
        stats = dataset_stats(
            db,
            network,
            device,
            n,
            batch,
            workers,
            on_start=lambda total: progress.update(bar, total=total),
            on_batch=lambda count: progress.advance(bar, count),
        )
    elapsed = time.perf_counter() - start
    stats.config["weights"] = str(path)
    stats.save(output)
    table = summary_table("gcgan inception")
    table.add_row("DB", f"{db} ({meta.count} records, {meta.size}x{meta.size})")
    table.add_row("images", f"{stats.count} ({stats.config['selection']})")
    table.add_row(
        "features", f"{stats.mu.shape[0]}-d; |mu| {np.linalg.norm(stats.mu):.3f}, tr(sigma) {np.trace(stats.sigma):.3f}"
    )
    table.add_row("time", f"{elapsed:.1f} s, {stats.count / elapsed:.1f} img/s on {device}")
    table.add_row("weights", str(path))
    table.add_row("output", str(output))
    console.print(table)
