"""`gcgan pack`: image + mask folders -> one LMDB with the gaze label set (training input)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gcgan_cli.commands.display import QuietOpt, progress_bar, stop_on_sigterm, summary_table
from gcgan_cli.console import console
from gcgan_cli.core.pack import check_destination, pack
from gcgan_cli.core.pool import default_workers
from gcgan_cli.data.gaze_db import LABELS_FILE, PREVIEW_FILE
from gcgan_cli.data.masks import CLASS_NAMES
from gcgan_cli.data.pack_inputs import check_folders, find_inputs
from gcgan_cli.errors import UsageError


def pack_command(
    prep_dir: Annotated[
        Path,
        typer.Option(
            "--data",
            help="PREP_DIR from `gcgan segment` (rgb/, mask/, manifest.jsonl), or a `gcgan sample` folder "
            "(samples.jsonl).",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--outdir", "-o", help="The DB folder to write (LMDB + labels_gaze.npy + preview.png).")
    ],
    size: Annotated[
        int,
        typer.Option(
            min=8,
            max=4096,
            help="Side of the packed images; others are resized (area/bicubic for images, nearest for masks).",
        ),
    ] = 256,
    rgb_dir: Annotated[
        Path | None,
        typer.Option(
            "--rgb-dir",
            help="Images from this folder instead of PREP_DIR/rgb (any tool's; paired with masks by file name).",
        ),
    ] = None,
    mask_dir: Annotated[
        Path | None,
        typer.Option("--mask-dir", help="Masks (one channel of class ids) from this folder instead of PREP_DIR/mask."),
    ] = None,
    classes: Annotated[
        str, typer.Option(help="Declared class names, comma-separated, in id order; masks may use ids 0..N-1.")
    ] = ",".join(CLASS_NAMES),
    unlabelled: Annotated[
        bool,
        typer.Option("--unlabelled", help="Pack without gaze (a stage-2 domain), whatever the manifest or names say."),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-j", min=0, help="Worker processes (default: every core; 0 or 1: this process)."),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace an existing DB at --outdir (only once the new one is complete)."),
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Pack image + mask pairs into one LMDB: PNG image, PNG mask and float32 gaze per record.

    Gaze comes from manifest.jsonl (or samples.jsonl), else from reference-style names
    (`..._eregion_{pitch}_{yaw}_c_{cam}`). The DB is built as OUTDIR.partial and renamed when
    complete; Ctrl-C keeps what was committed, and the same command continues from there.
    """
    class_names = tuple(name.strip() for name in classes.split(",") if name.strip())
    if not class_names or len(set(class_names)) != len(class_names) or len(class_names) > 255:
        raise UsageError(f"--classes {classes!r}: expected 1-255 distinct comma-separated names")
    check_folders(prep_dir, rgb_dir, mask_dir, out)
    check_destination(out, overwrite)  # before scanning thousands of files
    inputs = find_inputs(prep_dir, rgb_dir, mask_dir, unlabelled)
    workers = default_workers() if workers is None else workers
    stop_on_sigterm()
    with progress_bar("pack", "records", quiet) as progress:
        bar = progress.add_task("", total=None)
        result = pack(
            inputs,
            out,
            size,
            class_names,
            workers,
            overwrite,
            unlabelled,
            on_start=lambda total, done: progress.update(bar, total=total, completed=done),
            on_advance=lambda: progress.advance(bar),
        )
    table = summary_table("gcgan pack")
    table.add_row("input", f"{prep_dir} ({inputs.kind})")
    table.add_row(
        "records",
        f"{result.count} at {result.size}x{result.size}"
        + (f", {result.resumed_from} from an interrupted run" if result.resumed_from else ""),
    )
    table.add_row(
        "gaze", ", ".join(f"{k}: {v}" for k, v in result.gaze_from.items()) if result.labelled else "none (unlabelled)"
    )
    table.add_row("classes", ", ".join(f"{i} {n}" for i, n in enumerate(class_names)))
    rate = result.written / result.elapsed_s if result.elapsed_s > 0 else 0.0
    table.add_row("time", f"{result.elapsed_s:.1f} s, {rate:.0f} records/s, {result.workers} worker(s)")
    if result.interrupted:
        console.print(table)
        console.print(
            f"[yellow]interrupted[/]: {result.resumed_from + result.written} of {result.count} records kept in "
            f"{out}.partial; run the same command again to continue"
        )
        raise typer.Exit(130)
    table.add_row("DB", f"{out} ({result.db_bytes / 2**20:.1f} MiB)")
    if result.labelled:
        table.add_row("label set", str(out / LABELS_FILE))
    table.add_row("preview", str(out / PREVIEW_FILE))
    console.print(table)
