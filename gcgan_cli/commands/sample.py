"""`gcgan sample`: gaze-annotated face images with their masks (and latents) from a checkpoint,
written as a folder that `gcgan pack` and `gcgan gaze` read as a dataset (samples.jsonl). The
folder is built under a hidden name beside --outdir and renamed when complete, so --outdir is a
whole sample set or absent, and a re-run after a kill gives the same files as a clean run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gcgan_cli.commands.display import progress_bar, stop_on_sigterm, summary_table
from gcgan_cli.commands.options import AllowExtrapolationOpt, DeviceOpt, parse_gaze
from gcgan_cli.console import console
from gcgan_cli.core.folders import SHEET, SHEET_MAX
from gcgan_cli.data.gaze_db import read_labels
from gcgan_cli.data.pack_inputs import SAMPLES
from gcgan_cli.data.prep_dir import built_in_place
from gcgan_cli.errors import UsageError
from gcgan_cli.outputs import folder_place, reporting_disk_full, writer_lock

# torch and the modules that import it are imported in the functions that use them, so --help stays fast.

if TYPE_CHECKING:
    import torch

GAZE_GRID_MAX = 64  # rows of --gaze-grid: 4,096 gazes, far more than a sheet shows


def sample_command(
    ckpt: Annotated[
        Path,
        typer.Option(
            "--network", help="A checkpoint from `gcgan train` (stage 1 or 2) or a model folder from `gcgan export`."
        ),
    ],
    outdir: Annotated[Path, typer.Option("--outdir", "-o", help="Folder for the samples and samples.jsonl.")] = Path(
        "results"
    ),
    n: Annotated[
        int | None, typer.Option("--n", min=1, help="Number of samples (default 8, or one per --seeds).")
    ] = None,
    batch: Annotated[int, typer.Option(min=1, help="Samples per forward pass.")] = 32,
    truncation: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="psi: w <- w_bar + psi (w - w_bar); 1 = none.")
    ] = 0.7,
    gaze_labels: Annotated[
        Path | None,
        typer.Option(help="Draw gazes from this label set (.npy [N, 2] or .json) instead of the checkpoint's."),
    ] = None,
    gaze: Annotated[str | None, typer.Option(help="One gaze for every sample: PITCH,YAW in radians.")] = None,
    gaze_grid_rows: Annotated[
        int | None,
        typer.Option(
            "--gaze-grid",
            min=1,
            max=GAZE_GRID_MAX,
            help="Cycle through an R x R grid over the training gaze range (5th-95th percentiles).",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of z and of the gazes drawn, for the whole run (default 0).")
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds",
            help="Per-image seeds instead, e.g. 0-99 or 1,5,9: image i draws z from seed S_i and its gaze "
            "from S_i + 1, as `gcgan fid --seeds` does, whatever the batch or the other seeds.",
        ),
    ] = None,
    save_latent: Annotated[
        bool,
        typer.Option(
            "--save-latent",
            help="Also write NNNNNN_latent.npy: the truncated compact W+ \\[rows, style_dim] float32 (see README).",
        ),
    ] = False,
    ema: Annotated[bool, typer.Option("--ema/--no-ema", help="Use G_ema (default) or the raw G.")] = True,
    sheet: Annotated[
        bool,
        typer.Option(
            "--sheet/--no-sheet",
            help=f"Write {SHEET}: the first {SHEET_MAX} samples with gaze arrows beside their masks.",
        ),
    ] = True,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace --outdir (an earlier run's folder) as a whole, once the new samples are complete.",
        ),
    ] = False,
    allow_extrapolation: AllowExtrapolationOpt = False,
    compile: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="Render through torch.compile. For GPUs: the first batch (and a smaller last one) is slow "
            "while its graph compiles. It works on the CPU too (inductor builds C++ with gcc). "
            "GCGAN_COMPILE_BACKEND picks the backend (default inductor).",
        ),
    ] = False,
    device: DeviceOpt = "auto",
) -> None:
    """Sample gaze-conditioned images with their part masks from a training checkpoint.

    Per sample: NNNNNN.png (RGB), NNNNNN_mask.png (class ids), NNNNNN_mask_color.png, optionally NNNNNN_latent.npy; one samples.jsonl makes the folder a gaze dataset for `gcgan pack` and `gcgan gaze`. The same checkpoint, seed and options give the same images.
    """  # noqa: E501 (help text: one line per paragraph)
    import torch

    from cuda_ops import compiler
    from gcgan_cli.core.synthesis import check_label_range, drawn_inputs, load_generator, parse_seeds, write_samples

    chosen = [
        name
        for name, value in (("--gaze", gaze), ("--gaze-grid", gaze_grid_rows), ("--gaze-labels", gaze_labels))
        if value is not None
    ]
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join(chosen)}: choose one way to set the gazes")
    fixed = parse_gaze(gaze) if gaze is not None else None
    chosen_seeds = parse_seeds(seeds) if seeds is not None else None
    if chosen_seeds is not None and seed is not None:
        raise UsageError(f"--seed {seed} and --seeds {seeds}: give one (--seeds sets every image's seed)")
    if chosen_seeds is not None and n is not None and n != len(chosen_seeds):
        raise UsageError(f"--n {n} and --seeds {seeds} ({len(chosen_seeds)} seeds) disagree; give one of them")
    n = len(chosen_seeds) if chosen_seeds is not None else n or 8
    if compile:
        compiler.backend(UsageError)
    seed = seed or 0  # with --seeds: the seed of the truncation centre alone, fixed so it is the same in every run
    loaded = load_generator(ckpt, device, ema)
    labels = torch.from_numpy(read_labels(gaze_labels)) if gaze_labels is not None else loaded.gaze_labels
    z, drawn, image_seeds = drawn_inputs(loaded.config.style_dim, labels, n, seed, chosen_seeds)
    gazes = _gazes(labels, n, fixed, gaze_grid_rows, drawn)
    if (gaze is not None or gaze_labels is not None) and not allow_extrapolation:
        where = f"--gaze {gaze}" if gaze is not None else f"--gaze-labels {gaze_labels}"
        check_label_range(gazes, loaded.gaze_labels, where)
    outdir = folder_place(outdir, "--outdir")
    manifest = outdir / SAMPLES
    stop_on_sigterm()
    start = time.perf_counter()
    with writer_lock(outdir, "sample"):
        _check_outdir(outdir, overwrite)
        with built_in_place(outdir) as building, reporting_disk_full(outdir), progress_bar("sample") as progress:
            bar = progress.add_task("", total=n)
            write_samples(
                loaded,
                building,
                z,
                gazes,
                image_seeds,
                seed,
                truncation,
                batch,
                save_latent,
                sheet,
                {"checkpoint": str(ckpt), "checkpoint_sha256": loaded.sha256, "ema": ema},
                on_advance=lambda k: progress.advance(bar, k),
                compile=compile,
            )
    elapsed = time.perf_counter() - start
    table = summary_table("gcgan sample")
    table.add_row("checkpoint", f"{ckpt} (step {loaded.step}, {'G_ema' if ema else 'G'}, sha256 {loaded.sha256[:12]})")
    table.add_row(
        "samples",
        f"{n} at {loaded.config.size}x{loaded.config.size}, {loaded.config.seg_dim} classes, truncation {truncation}",
    )
    table.add_row("gazes", chosen[0] if chosen else "drawn from the checkpoint's training label set")
    table.add_row(
        "time",
        f"{elapsed:.1f} s, {n / elapsed:.1f} img/s on {device}, batch {batch}"
        + (", compiled (the compilation included)" if compile else ""),
    )
    table.add_row("manifest", str(manifest))
    if sheet:
        table.add_row("contact sheet", str(outdir / SHEET))
    console.print(table)


def _check_outdir(outdir: Path, overwrite: bool) -> None:
    """Refuse an earlier folder at --outdir unless --overwrite replaces it."""
    if overwrite or not outdir.is_dir() or not any(outdir.iterdir()):
        return
    held = f"already holds samples ({SAMPLES})" if (outdir / SAMPLES).exists() else "is not empty"
    raise UsageError(f"--outdir {outdir} {held}; pass --overwrite to replace it or choose another folder")


def _gazes(
    labels: torch.Tensor, n: int, fixed: tuple[float, float] | None, grid_rows: int | None, drawn: torch.Tensor
) -> torch.Tensor:
    """[n, 2] (pitch, yaw) per sample: the fixed gaze, the grid's, else those drawn from the label set."""
    import torch

    from gcgan_cli.core.synthesis import gaze_grid

    if fixed is not None:
        return torch.tensor([fixed]).repeat(n, 1)
    if grid_rows is not None:
        grid = gaze_grid(labels, grid_rows)
        return grid[torch.arange(n) % len(grid)]
    return drawn
