"""`gcgan unpack`: a packed DB back as a PREP_DIR (rgb/, mask/, manifest.jsonl) that `gcgan pack`
rebuilds the same DB from: to edit, filter or merge a dataset with other tools, then pack it again."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gcgan_cli.commands.display import progress_bar, stop_on_sigterm, summary_table
from gcgan_cli.console import console
from gcgan_cli.core.unpack import unpack
from gcgan_cli.data.manifest import MANIFEST


def unpack_command(
    data: Annotated[Path, typer.Option("--data", help="A DB from `gcgan pack`.")],
    outdir: Annotated[
        Path, typer.Option("--outdir", "-o", help=f"The PREP_DIR to write: rgb/NAME.png, mask/NAME.png, {MANIFEST}.")
    ],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an earlier PREP_DIR at --outdir, once the new one is complete.")
    ] = False,
) -> None:
    """Write a packed DB back as a PREP_DIR: each record's image and mask PNG as stored, name and gaze in a manifest.

    `gcgan pack --data OUTDIR --outdir NEW_DB --size S --classes ...` with the DB's size and classes rebuilds the same records.
    The folder is built beside --outdir and renamed when complete.
    """  # noqa: E501 (help text: one line per paragraph)
    stop_on_sigterm()
    with progress_bar("unpack", unit="records") as progress:
        bar = progress.add_task("")
        result = unpack(
            data,
            outdir,
            overwrite,
            on_start=lambda total: progress.update(bar, total=total),
            on_advance=lambda: progress.advance(bar),
        )
    meta = result.meta
    table = summary_table("gcgan unpack")
    table.add_row("DB", f"{data} ({meta.count} records at {meta.size}x{meta.size})")
    table.add_row("gaze", f"{result.labelled} labelled" if result.labelled else "none (unlabelled)")
    table.add_row("PREP_DIR", str(result.outdir))
    again = (
        f"gcgan pack --data {result.outdir} --outdir NEW_DB --size {meta.size} --classes {','.join(meta.class_names)}"
    )
    table.add_row(
        "pack again",
        again
        if result.in_name_order
        else f"{again} (records come back sorted by name: the DB held them in another order)",
    )
    console.print(table)
