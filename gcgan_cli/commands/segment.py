"""`gcgan segment ethx|celeba|synthetic`: datasets -> eye-strip images + part masks (PREP_DIR)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gcgan_cli.commands.display import QuietOpt, progress_bar, stop_on_sigterm, summary_table
from gcgan_cli.commands.examples import epilog
from gcgan_cli.console import console
from gcgan_cli.core.pool import default_workers
from gcgan_cli.core.segment import segment
from gcgan_cli.data import celeba, ethx, synthetic
from gcgan_cli.data.masks import CLASS_NAMES
from gcgan_cli.data.prep_dir import PrepDir
from gcgan_cli.data.sources import DETECT_MODES, CelebaSource, EthxSource, SyntheticSource
from gcgan_cli.errors import UsageError

app = typer.Typer(
    help="Datasets -> 256x256 eye-region strips (RGB) + part masks (class ids "
    + ", ".join(f"{i} {n}" for i, n in enumerate(CLASS_NAMES))
    + ") + manifest.jsonl with the gaze. Re-running skips finished strips.",
    no_args_is_help=True,
)

OutdirOpt = Annotated[
    Path,
    typer.Option(
        "--outdir", "-o", help="PREP_DIR to write: rgb/, mask/, manifest.jsonl, segment_report.json, preview.png."
    ),
]
RgbDirOpt = Annotated[Path | None, typer.Option("--rgb-dir", help="Write the RGB strips here instead of PREP_DIR/rgb.")]
MaskDirOpt = Annotated[Path | None, typer.Option("--mask-dir", help="Write the masks here instead of PREP_DIR/mask.")]
SizeOpt = Annotated[int, typer.Option("--size", min=16, max=2048, help="Strip side in pixels.")]
WorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", "-j", min=0, help="Worker processes (default: every core; 0 or 1: this process)."),
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Redo strips that already exist.")]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", min=1, help="Process at most this many inputs (after filters).")
]


def _int_list(text: str, option: str) -> tuple[int, ...] | None:
    if text.strip().lower() == "all":
        return None
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"{option}: expected comma-separated integers or 'all', got {text!r}") from None
    if not values:
        raise UsageError(f"{option}: expected comma-separated integers or 'all', got {text!r}")
    return values


def _run(
    source,
    outdir: Path,
    rgb_dir: Path | None,
    mask_dir: Path | None,
    workers: int | None,
    overwrite: bool,
    options: dict,
    quiet: bool,
) -> None:
    prep = PrepDir.at(outdir, rgb_dir, mask_dir)
    workers = default_workers() if workers is None else workers
    stop_on_sigterm()
    with progress_bar("segment", "strips", quiet) as progress:
        bar = progress.add_task(source.kind, total=None)
        result = segment(
            source,
            prep,
            workers,
            overwrite,
            options,
            on_start=lambda total: progress.update(bar, total=total),
            on_advance=lambda: progress.advance(bar),
        )
    table = summary_table(f"gcgan segment {source.kind}")
    table.add_row("candidates", str(result.candidates))
    table.add_row("written", str(result.written))
    table.add_row("already done", str(result.already_done))
    table.add_row(
        "skipped",
        f"{len(result.failed)}"
        + (f" (first: {result.failed[0].item}: {result.failed[0].reason})" if result.failed else ""),
    )
    rate = result.written / result.elapsed_s if result.elapsed_s > 0 else 0.0
    table.add_row("time", f"{result.elapsed_s:.1f} s, {rate:.0f} strips/s, {result.workers} worker(s)")
    table.add_row("strips", f"{prep.rgb_dir}  {prep.mask_dir}")
    table.add_row("manifest", str(prep.manifest))
    table.add_row("report", str(prep.report))
    if prep.preview.exists():
        table.add_row("preview", str(prep.preview))
    console.print(table)
    if result.interrupted:
        console.print(
            f"[yellow]interrupted[/]: {result.written} strip(s) written; run the same command again to continue"
        )
        raise typer.Exit(130)


@app.command("ethx", epilog=epilog("segment ethx"))
def ethx_command(
    h5_dir: Annotated[
        Path,
        typer.Option("--data", help="Folder of ETH-XGaze subjectXXXX.h5 files (the 224x224 preprocessed release)."),
    ],
    outdir: OutdirOpt,
    cameras: Annotated[str, typer.Option(help="cam_index values to keep, comma-separated, or 'all'.")] = ",".join(
        map(str, ethx.DEFAULT_CAMERAS)
    ),
    max_frame: Annotated[
        str, typer.Option(help="Keep frame_index <= this ('all' keeps the dim-light frames too).")
    ] = str(ethx.DEFAULT_MAX_FRAME),
    subjects: Annotated[str, typer.Option(help="Subject ids to process, e.g. 0000,0003, or 'all'.")] = "all",
    detect: Annotated[
        str,
        typer.Option(
            help=(
                "every: the face detector on every frame, as the reference; track: the detector at the start of each "
                "32-frame span of a (subject, camera) run and the landmark model following the face through it (the "
                "detector again where it loses the face), faster in one process, slower with several workers."
            )
        ),
    ] = "every",
    limit: LimitOpt = None,
    size: SizeOpt = 256,
    workers: WorkersOpt = None,
    overwrite: OverwriteOpt = False,
    rgb_dir: RgbDirOpt = None,
    mask_dir: MaskDirOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """ETH-XGaze subject .h5 files -> strips labelled with face_gaze (pitch, yaw) in radians.

    Test-split files (no face_gaze) give unlabelled strips. Frames without a face, corrupt files and
    missing keys are listed in segment_report.json; the run goes on.
    """
    frames = _int_list(max_frame, "--max-frame")
    if frames is not None and len(frames) != 1:
        raise UsageError(f"--max-frame: expected one integer or 'all', got {max_frame!r}")
    subject_ids = (
        None if subjects.strip().lower() == "all" else tuple(s.strip() for s in subjects.split(",") if s.strip())
    )
    if detect not in DETECT_MODES:
        raise UsageError(f"--detect: expected {' or '.join(DETECT_MODES)}, got {detect!r}")
    keep = ethx.EthxFilter(_int_list(cameras, "--cameras"), frames[0] if frames else None, subject_ids)
    source = EthxSource(h5_dir, size, keep, limit, detect)
    options = {
        "input": str(h5_dir),
        "size": size,
        "cameras": keep.cameras,
        "max_frame": keep.max_frame,
        "subjects": subject_ids,
        "limit": limit,
        "detect": detect,
    }
    _run(source, outdir, rgb_dir, mask_dir, workers, overwrite, options, quiet)


@app.command("celeba", epilog=epilog("segment celeba"))
def celeba_command(
    celeba_dir: Annotated[
        Path, typer.Option("--data", help="CelebAMask-HQ folder (with CelebA-HQ-img/), or a folder of <id>.jpg.")
    ],
    outdir: OutdirOpt,
    use_annotations: Annotated[
        bool,
        typer.Option(help="Take skin/eye/brow/nose/mouth from CelebAMask-HQ-mask-anno/ (only the iris from FaceMesh)."),
    ] = False,
    limit: LimitOpt = None,
    size: SizeOpt = 256,
    workers: WorkersOpt = None,
    overwrite: OverwriteOpt = False,
    rgb_dir: RgbDirOpt = None,
    mask_dir: MaskDirOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """CelebA-HQ photos -> unlabelled strips (the stage-2 domain). Images without a face are reported."""
    if use_annotations and celeba.annotation_root(celeba_dir) is None:
        raise UsageError(f"--use-annotations: {celeba_dir / celeba.ANNOTATION_DIR} does not exist")
    source = CelebaSource(celeba_dir, size, use_annotations, limit)
    options = {"input": str(celeba_dir), "size": size, "use_annotations": use_annotations, "limit": limit}
    _run(source, outdir, rgb_dir, mask_dir, workers, overwrite, options, quiet)


@app.command("synthetic", epilog=epilog("segment synthetic"))
def synthetic_command(
    outdir: OutdirOpt,
    n: Annotated[int, typer.Option("--n", min=1, help="Number of strips.")] = 2000,
    seed: Annotated[int, typer.Option(min=0, help="Dataset seed: same seed, same bytes.")] = 0,
    style: Annotated[
        str,
        typer.Option(
            help="Look of the domain: " + "; ".join(f"{k}: {v.description}" for k, v in synthetic.STYLES.items())
        ),
    ] = synthetic.DEFAULT_STYLE,
    per_subject: Annotated[int, typer.Option(min=1, help="Strips per synthetic subject (identity).")] = 20,
    size: SizeOpt = 256,
    workers: WorkersOpt = None,
    overwrite: OverwriteOpt = False,
    rgb_dir: RgbDirOpt = None,
    mask_dir: MaskDirOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Procedural eye strips with exact masks and known gaze: no download needed."""
    if style not in synthetic.STYLES:
        raise UsageError(f"--style: unknown style {style!r}; choose one of {', '.join(synthetic.STYLES)}")
    source = SyntheticSource(n, seed, size, style, per_subject)
    options = {"n": n, "seed": seed, "style": style, "per_subject": per_subject, "size": size}
    _run(source, outdir, rgb_dir, mask_dir, workers, overwrite, options, quiet)
