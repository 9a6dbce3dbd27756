"""`gcgan export`: a training checkpoint's G_ema as a shareable model folder (safetensors weights,
config.json, a model card) that `gcgan sample`, `interpolate` and `gaze consistency` read as they
read the checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gcgan_cli.commands.display import summary_table
from gcgan_cli.console import console
from gcgan_cli.core.folders import CARD, CONFIG, WEIGHTS


def export_command(
    network: Annotated[
        Path, typer.Option("--network", help="A checkpoint from `gcgan train` (RUN/checkpoints/NNNNNNN.pt).")
    ],
    outdir: Annotated[
        Path, typer.Option("--outdir", "-o", help=f"The model folder to write: {WEIGHTS}, {CONFIG}, {CARD}.")
    ],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an earlier export at --outdir, once the new one is complete.")
    ] = False,
) -> None:
    """Export G_ema of a training checkpoint as a model folder: no pickle, no optimizer state.

    model.safetensors holds the weights and the gaze label set; config.json the model config, step, kimg, sources.
    README.md is a model card: training data, steps, kimg, and FID and gaze consistency where the run measured them.
    The folder is built beside --outdir and renamed when complete.
    """
    from gcgan_cli.core.export import export_generator  # imports torch: here, so --help stays fast

    summary = export_generator(network, outdir, overwrite)
    table = summary_table("gcgan export")
    table.add_row(
        "network",
        f"{network} (step {summary['step']}, {summary['kimg']:g} kimg, sha256 {summary['source']['sha256'][:12]})",
    )
    table.add_row(
        "weights",
        f"{outdir / WEIGHTS} (G_ema + {summary['gaze_labels']['count']} gaze labels, "
        f"sha256 {summary['weights_sha256'][:12]})",
    )
    measured = ", ".join(f"{name} {value:.4g}" for name, value in summary["metrics"].items())
    table.add_row("measured", measured or "nothing at this step")
    table.add_row("model card", str(outdir / CARD))
    console.print(table)
