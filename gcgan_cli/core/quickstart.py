"""`gcgan quickstart`: the whole pipeline on synthetic data inside a time box, as the commands a user would type.

Every step runs existing subcommands through a `runner` (the CLI, in-process), so what quickstart does is what the
command lines it prints do. The folder it fills:

    quickstart.json        what makes the folder a quickstart run (its scale), written first
    steps/NAME.json        a finished step: its command lines, numbers, pictures and time (written last, atomically)
    quickstart.log         the step lines and commands (and, with --quiet, the subcommands' output)
    data/                  prep_studio, prep_wild (segment synthetic), db_studio, db_wild (pack)
    stage1/, stage2/       gcgan train runs
    samples/, anim/        gcgan sample folders (samples/pretrained*: the pretrained generator's), interpolate GIFs
    gaze/                  the judge estimator, consistency JSON, sweep sheets
    pretrained/            the pretrained generator's model card and config.json, for the page to link
    transfer/              FP-GAN eye sets, E_R, the fp run, translated patches, eval.json
    index.html             one page with every picture and number (core/report_page.py)

Time: each step owns a share of --minutes (SHARES) and must end by the sum of the shares up to it, so an early
step's overrun or saving moves into the next timed step. The three trainings are timed by measured speed:
GC-GAN runs a short probe, then resumes twice (two thirds of the time left, then the rest, each re-measured), so
a change of load on a shared machine moves the step count, not the end. FP-GAN's learning-rate schedule spans its
--steps, so its speed is measured by a probe run that is thrown away, then one run of the steps that fit.
A re-run skips the finished steps and gives the remaining ones the whole --minutes by their shares.

The pretrained step samples and judges the generator gcgan ships (Options.pretrained, a `gcgan export` folder) as
stage 1 was, so the page shows what the time box gives beside what a long run gives; where the folder is missing
or draws another size or other classes than this run's data, the step is skipped and its number says why.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from gcgan_cli.core.folders import CARD, CONFIG
from gcgan_cli.core.training.run_dir import RunDir, read_metrics
from gcgan_cli.data.atomic import write_atomic, write_json_atomic
from gcgan_cli.errors import CheckpointError, GcganError, UsageError

if TYPE_CHECKING:
    from gcgan_cli.core.export import ExportedModel

MARKER = "quickstart.json"
STEPS_DIR = "steps"
LOG = "quickstart.log"
PAGE = "index.html"
FORMAT = 1
# The shipped generator of the README's 6,000-step small run (gcgan_cli/pretrained/small64-synthetic/README.md)
PRETRAINED = Path(__file__).resolve().parent.parent / "pretrained" / "small64-synthetic"
NOT_SHOWN = "not shown"  # the number of a pretrained step that was skipped: why
JUDGE = "gaze/judge.pt"  # the gaze step's estimator, which judges every generator of the run

# Runner: (argv without "gcgan", capture stdout?) -> (exit code, the captured stdout or "").
Runner = Callable[[list[str], bool], tuple[int, str]]


@dataclass(frozen=True)
class Scale:
    """How big each step is. cpu: sized for 2 cores in 12 minutes; gpu: the same steps with 2-3x the data, batch
    32 and longer estimator fits (the trainings fill the same time shares, so they run many more steps); tiny:
    the tests' (32 px `tiny` preset, a few samples)."""

    name: str
    preset: str  # GC-GAN model preset
    size: int  # strip side, px
    n_studio: int  # labelled strips (20 per synthetic person)
    n_wild: int  # unlabelled strips
    batch: int  # GC-GAN images per step
    probe: int  # GC-GAN steps of the speed probe
    min_chunk: int  # fewer steps than this left: no further resume
    log_every: int
    viz_every: int
    save_every: int
    n_samples: int  # per sample folder
    grid: int  # gaze grid rows (grid x grid gazes)
    frames: int  # per GIF
    judge_epochs: int
    consistency_n: int
    s_train: int  # synthetic eyes (S) to train FP-GAN on
    s_test: int  # the few hundred S patches translated and judged
    r_per_person: int  # R eyes per person: 12 persons train, 3 others test
    er_epochs: int  # the independent evaluator E_R
    fp_preset: str
    fp_probe: int
    fp_min_steps: int


SCALES = {
    "cpu": Scale(
        name="cpu",
        preset="small",
        size=64,
        n_studio=2000,
        n_wild=1000,
        batch=8,
        probe=10,
        min_chunk=10,
        log_every=10,
        viz_every=100,
        save_every=100,
        n_samples=64,
        grid=8,
        frames=48,
        judge_epochs=6,
        consistency_n=500,
        s_train=1000,
        s_test=300,
        r_per_person=80,
        er_epochs=5,
        fp_preset="tiny",
        fp_probe=20,
        fp_min_steps=20,
    ),
    "gpu": Scale(
        name="gpu",
        preset="small",
        size=64,
        n_studio=4000,
        n_wild=2000,
        batch=32,
        probe=20,
        min_chunk=20,
        log_every=20,
        viz_every=500,
        save_every=500,
        n_samples=64,
        grid=8,
        frames=96,
        judge_epochs=30,
        consistency_n=1000,
        s_train=3000,
        s_test=500,
        r_per_person=200,
        er_epochs=15,
        fp_preset="reference",
        fp_probe=50,
        fp_min_steps=50,
    ),
    "tiny": Scale(
        name="tiny",
        preset="tiny",
        size=32,
        n_studio=200,
        n_wild=100,
        batch=4,
        probe=2,
        min_chunk=2,
        log_every=2,
        viz_every=4,
        save_every=0,
        n_samples=8,
        grid=2,
        frames=4,
        judge_epochs=1,
        consistency_n=16,
        s_train=64,
        s_test=32,
        r_per_person=8,
        er_epochs=1,
        fp_preset="tiny",
        fp_probe=2,
        fp_min_steps=2,
    ),
}

# (name, title, share of --minutes); the shares sum to 1 (the page takes well under a second). On 2 CPU cores at
# 12 minutes the untimed steps took: data 5 s, samples 4 s, gaze 32 s, and in transfer its data and E_R 14 s, the
# speed probe 17 s, translation and evaluation 6 s; their shares leave room for a machine several times slower.
# The pretrained step's commands (two sample folders and a 500-sample consistency of the small model) took about
# 10 s with the 2 cores free and 20-40 s beside another job's tests. It comes last so that running it again (its
# marker deleted, or a folder from before it) runs only it and the page, not the FP-GAN step.
STEPS = (
    ("data", "synthetic data", 0.03),
    ("stage1", "train stage 1 (labelled)", 0.50),
    ("stage2", "train stage 2 (unlabelled)", 0.12),
    ("samples", "samples and animations", 0.03),
    ("gaze", "gaze estimator and consistency", 0.09),
    ("transfer", "FP-GAN eye translation", 0.21),
    ("pretrained", "pretrained generator beside stage 1", 0.02),
    ("page", "index.html", 0.0),
)
FP_EVAL_SHARE = 0.15  # of the time left to the transfer step after its probe, kept for translating and judging


class StepFailed(GcganError):
    """A subcommand of a step exited non-zero; its own error line was printed before this one."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class StepResult:
    """What a finished step leaves in steps/NAME.json, and all the page needs of it (paths relative to OUTDIR)."""

    commands: list[str]  # equivalent command lines, to rerun the step by hand
    headline: str  # its number, for the summary table
    wrote: list[str]  # the main outputs
    numbers: dict[str, str] = field(default_factory=dict)
    pictures: list[list[str]] = field(default_factory=list)  # [path, caption]
    links: list[list[str]] = field(default_factory=list)  # [path, label]
    calls: list[str] = field(default_factory=list)  # the command lines actually run, where they differ
    columns: list[str] = field(default_factory=list)  # headings: the pictures are rows of this many, side by side
    seconds: float = 0.0
    name: str = ""
    title: str = ""


@dataclass
class Events:
    """What the command layer shows: a command line about to run, a step starting, ending or skipped."""

    command: Callable[[str], None] = lambda line: None
    step_started: Callable[[int, str, float], None] = lambda index, name, budget: None
    step_done: Callable[[int, StepResult, bool], None] = lambda index, result, skipped: None


@dataclass
class Options:
    outdir: Path  # as given: the printed command lines use it, so they run from the same folder
    minutes: float
    device: str  # resolved, e.g. "cpu" or "cuda:0"
    scale: Scale
    threads: int  # torch CPU threads (0: not set, on a GPU)
    quiet: bool
    pretrained: Path = PRETRAINED  # a `gcgan export` folder shown beside stage 1


def cpu_threads(requested: int, busy: float | None = None) -> int:
    """`requested`, or the cores other work leaves free (cores minus the busy ones, at least 1): on 2 cores beside
    two other jobs the small model trained at 1.6 img/s with 2 threads and at 8.4 img/s with 1."""
    if requested:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    busy = busy_cores(cores) if busy is None else busy
    return max(1, min(cores, round(cores - busy)))


def busy_cores(cores: int, seconds: float = 0.5, stat: Path = Path("/proc/stat")) -> float:
    """How many cores are busy now: the non-idle share of the CPU time in `stat` over `seconds`, times `cores`. The
    1-minute load average (the fallback where there is no /proc/stat) still counts a job that ended a minute ago."""

    def times() -> tuple[int, int]:
        fields = [int(v) for v in stat.read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields[:8])  # idle + iowait; user .. steal

    try:
        idle_0, total_0 = times()
        time.sleep(seconds)
        idle_1, total_1 = times()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return cores * (1 - (idle_1 - idle_0) / max(total_1 - total_0, 1))


def check_outdir(outdir: Path, scale: Scale) -> None:
    """Refuse, before anything is written, a file, a folder of something else, or a quickstart run of another
    scale; a quickstart run of this scale is continued."""
    if outdir.exists() and not outdir.is_dir():
        raise UsageError(f"--outdir {outdir}: a file is in the way; give a folder")
    marker = outdir / MARKER
    if not marker.is_file():
        if outdir.is_dir() and any(outdir.iterdir()):
            raise UsageError(
                f"--outdir {outdir} holds files and no {MARKER}: not a quickstart folder; give a new or empty folder"
            )
        return
    try:
        made = json.loads(marker.read_text())
    except (OSError, ValueError):
        raise UsageError(f"--outdir {outdir}: {MARKER} is unreadable; give a new folder") from None
    if made.get("scale") != scale.name:
        raise UsageError(
            f"--outdir {outdir} holds a quickstart run at scale {made.get('scale')!r}, this one would be "
            f"{scale.name!r} (the device decides it); give another folder"
        )


def plan(outdir: Path, minutes: float) -> list[tuple[str, str, float]]:
    """(name, title, seconds) of each step still to run: finished steps are skipped and the rest share the time."""
    left = [(name, title, share) for name, title, share in STEPS if not (outdir / STEPS_DIR / f"{name}.json").is_file()]
    total = sum(share for _, _, share in left) or 1.0
    return [(name, title, minutes * 60 * share / total) for name, title, share in left]


def run_quickstart(options: Options, runner: Runner, events: Events) -> list[StepResult]:
    """Run every step not finished yet, in order, within the time box; the results of all steps, in order."""
    outdir = options.outdir
    outdir.mkdir(parents=True, exist_ok=True)
    if not (outdir / MARKER).is_file():
        write_json_atomic(outdir / MARKER, {"format": FORMAT, "scale": options.scale.name, "created": _now()})
    (outdir / STEPS_DIR).mkdir(exist_ok=True)
    if options.threads:
        import torch  # here: the help of the command must not wait for torch

        torch.set_num_threads(options.threads)
    context = _Context(options, runner, events, time.monotonic())
    budgets = {name: seconds for name, _, seconds in plan(outdir, options.minutes)}
    deadline = context.started
    results, ran = [], False
    for index, (name, title, _) in enumerate(STEPS):
        marker = outdir / STEPS_DIR / f"{name}.json"
        if marker.is_file() and not ran:
            result = StepResult(**json.loads(marker.read_text()))
            events.step_done(index, result, True)
            results.append(result)
            continue
        ran = True  # a step that runs makes the later steps' outputs stale: they run too
        marker.unlink(missing_ok=True)
        deadline += budgets.get(name, 0.0)
        context.step = title
        events.step_started(index, name, budgets.get(name, 0.0))
        begun = time.monotonic()
        result = STEP_FUNCTIONS[name](context, deadline, results)
        result.name, result.title, result.seconds = name, title, time.monotonic() - begun
        write_json_atomic(marker, asdict(result))
        events.step_done(index, result, False)
        results.append(result)
    return results


class _Context:
    def __init__(self, options: Options, runner: Runner, events: Events, started: float):
        self.options, self.runner, self.events, self.started = options, runner, events, started
        self.scale = options.scale
        self.step = ""  # the title of the step running

    def path(self, relative: str) -> str:
        return str(self.options.outdir / relative)

    def call(self, argv: list[str], capture: bool = False) -> str:
        """Run `gcgan ARGV`; a non-zero exit stops the quickstart with a line saying how to continue."""
        line = command_line(argv)
        self.events.command(line)
        code, text = self.runner(argv, capture)
        if code:
            again = "run the same gcgan quickstart command again to continue"
            what = "interrupted" if code == 130 else f"`{line}` exited {code} (its error is above)"
            raise StepFailed(f"quickstart stopped in step {self.step!r}: {what}; {again}", code)
        return text

    def device(self) -> list[str]:
        return ["--device", self.options.device]

    def quiet(self) -> list[str]:
        return ["--quiet"] if self.options.quiet else []


def command_line(argv: list[str]) -> str:
    return shlex.join(["gcgan", *argv])


# ---------------------------------------------------------------------------------------------------------------
# The steps: each returns its StepResult; `deadline` is the monotonic time it should end by.


def _data(c: _Context, deadline: float, done: list[StepResult]) -> StepResult:
    s = c.scale
    size = ["--size", str(s.size)]
    studio = [
        "segment",
        "synthetic",
        "--n",
        str(s.n_studio),
        *size,
        "--seed",
        "1",
        "--style",
        "studio",
        "--outdir",
        c.path("data/prep_studio"),
    ]
    wild = [
        "segment",
        "synthetic",
        "--n",
        str(s.n_wild),
        *size,
        "--seed",
        "2",
        "--style",
        "wild",
        "--outdir",
        c.path("data/prep_wild"),
    ]
    pack_studio = [
        "pack",
        "--data",
        c.path("data/prep_studio"),
        "--outdir",
        c.path("data/db_studio"),
        *size,
        "--overwrite",
    ]
    pack_wild = [
        "pack",
        "--data",
        c.path("data/prep_wild"),
        "--outdir",
        c.path("data/db_wild"),
        *size,
        "--unlabelled",
        "--overwrite",
    ]
    commands = [studio, wild, pack_studio, pack_wild]
    for argv in commands:  # segment continues a folder it began; pack rebuilds the DB whole
        c.call(argv + c.quiet())
    people = s.n_studio // 20
    return StepResult(
        commands=[command_line(a) for a in commands],
        headline=f"{s.n_studio:,} labelled + {s.n_wild:,} unlabelled strips, {s.size} px",
        wrote=["data/db_studio", "data/db_wild"],
        numbers={
            "labelled (studio)": f"{s.n_studio:,} strips of {people} synthetic people, exact masks and gaze",
            "unlabelled (wild)": f"{s.n_wild:,} strips in another look, gaze dropped",
            "size": f"{s.size} px",
        },
        pictures=[
            ["data/prep_studio/preview.png", "studio strips (the labelled domain) beside their mask overlays"],
            ["data/prep_wild/preview.png", "wild strips (the unlabelled domain) beside their mask overlays"],
        ],
        links=[
            ["data/prep_studio/segment_report.json", "studio segment report"],
            ["data/prep_wild/segment_report.json", "wild segment report"],
        ],
    )


def _stage1(c: _Context, deadline: float, done: list[StepResult]) -> StepResult:
    s = c.scale
    first = [
        "train",
        "--data",
        c.path("data/db_studio"),
        "--outdir",
        c.path("stage1"),
        "--preset",
        s.preset,
        "--batch",
        str(s.batch),
        "--mirror",
    ]
    return _train_step(
        c, "stage1", first, deadline, "G_ema on the labelled domain, each image with its gaze arrow beside its mask"
    )


def _stage2(c: _Context, deadline: float, done: list[StepResult]) -> StepResult:
    start = newest_checkpoint(c.options.outdir / "stage1")
    first = [
        "train",
        "--stage",
        "2",
        "--network",
        c.path(f"stage1/checkpoints/{start.name}"),
        "--data",
        c.path("data/db_wild"),
        "--outdir",
        c.path("stage2"),
        "--batch",
        str(c.scale.batch),
    ]
    return _train_step(
        c, "stage2", first, deadline, "G_ema moved to the unlabelled domain (gazes from stage 1's label set)"
    )


def _train_step(c: _Context, run: str, first: list[str], deadline: float, caption: str) -> StepResult:
    s = c.scale
    folder = c.options.outdir / run
    cadence = ["--log-every", str(s.log_every), "--viz-every", str(s.viz_every), "--save-every", str(s.save_every)]
    first = first + cadence + c.device()
    resume = ["train", "--outdir", c.path(run), "--resume"]
    calls = []

    def train(argv: list[str], target: int) -> None:
        argv = argv + ["--iters", str(target)] + c.quiet()
        calls.append(command_line(argv))
        c.call(argv)

    if not checkpoint_steps(folder):
        if folder.exists():
            shutil.rmtree(folder)  # a run stopped before its first checkpoint holds nothing to continue
        measured = _timed(lambda: train(first, s.probe))
    elif speed(folder) is None:
        measured = _timed(lambda: train(resume, checkpoint_steps(folder)[-1] + s.probe))
    else:
        measured = 0.0
    overhead = max(0.0, measured - s.probe * (speed(folder) or 0.0))
    for share in (2 / 3, 1.0):  # the time left, re-measured before the last part
        step, per_step = checkpoint_steps(folder)[-1], speed(folder)
        more = int(max(0.0, deadline - time.monotonic() - overhead) * share / per_step)
        if more < s.min_chunk:
            break
        seconds = _timed(lambda target=step + more: train(resume, target))
        overhead = max(0.0, seconds - more * speed(folder))
    rows = metrics_rows(folder / "metrics.jsonl")
    steps, kimg = rows[-1]["step"], rows[-1]["kimg"]
    train_seconds = _train_seconds(rows)
    rate = steps * s.batch / train_seconds if train_seconds else math.nan
    grids = sorted((folder / "samples").glob("*.png"))
    losses = ", ".join(f"{k} {rows[-1][k]:.3g}" for k in ("d", "g", "mask") if k in rows[-1])
    return StepResult(
        commands=[command_line(first + ["--iters", str(steps)])],
        headline=f"{steps:,} steps, {rate:.1f} img/s",
        wrote=[f"{run}/checkpoints/{newest_checkpoint(folder).name}"],
        numbers={
            "steps": f"{steps:,} ({kimg:.2f} kimg, batch {s.batch})",
            "speed": f"{rate:.1f} img/s",
            "training time": f"{train_seconds:.0f} s",
            "last losses": losses,
            "ran as": f"{len(calls)} call(s) of gcgan train, each to the steps the time left allowed",
        },
        pictures=[[str(grids[-1].relative_to(c.options.outdir)), f"{caption}, step {steps}"]] if grids else [],
        links=[
            [f"{run}/metrics.jsonl", f"{run} metrics.jsonl"],
            [f"{run}/log.txt", f"{run} log.txt"],
            [f"{run}/config.json", f"{run} config.json"],
        ],
        calls=calls,
    )


def _sample_argvs(c: _Context, network: str, name: str, *extra: str) -> list[list[str]]:
    """`gcgan sample` of NETWORK into samples/NAME (gazes from its label set) and samples/NAME_gaze_grid."""
    s = c.scale
    sheet = ["sample", "--network", network, "--outdir", c.path(f"samples/{name}"), "--n", str(s.n_samples), *extra]
    grid = ["sample", "--network", network, "--outdir", c.path(f"samples/{name}_gaze_grid")]
    grid += ["--n", str(s.grid * s.grid), "--gaze-grid", str(s.grid)]
    return [argv + ["--overwrite", *c.device()] for argv in (sheet, grid)]


def _sample_pictures(s: Scale, name: str) -> list[list[str]]:
    return [
        [
            f"samples/{name}/contact_sheet.png",
            f"{name}: samples at gazes drawn from the label set, each with its gaze arrow beside its mask",
        ],
        [
            f"samples/{name}_gaze_grid/contact_sheet.png",
            f"{name}: a {s.grid} x {s.grid} gaze grid over the label set's 5th-95th percentiles "
            "(the iris should follow the arrow)",
        ],
    ]


def _samples(c: _Context, deadline: float, done: list[StepResult]) -> StepResult:
    s = c.scale
    commands, pictures = [], []
    for run in ("stage1", "stage2"):
        network = c.path(f"{run}/checkpoints/{newest_checkpoint(c.options.outdir / run).name}")
        commands += _sample_argvs(c, network, run, "--save-latent")
        pictures += _sample_pictures(s, run)
    for argv in commands:
        c.call(argv)
    network = c.path(f"stage2/checkpoints/{newest_checkpoint(c.options.outdir / 'stage2').name}")
    latent = c.path("samples/stage2/000000_latent.npy")
    for component, caption in (
        ("nose", "only the nose's latent moves; everything else and the gaze stay"),
        ("gaze", "the latent stays; the gaze goes round the training range"),
    ):
        argv = [
            "interpolate",
            "--network",
            network,
            "--latent",
            latent,
            "--outdir",
            c.path("anim"),
            "--component",
            component,
            "--with-mask",
            "--frames",
            str(s.frames),
            "--overwrite",
            *c.device(),
        ]
        commands.append(argv)
        c.call(argv)
        gif = sorted((c.options.outdir / "anim").glob(f"*_{component}.gif"))[-1]
        pictures.append([str(gif.relative_to(c.options.outdir)), f"stage2, {caption}"])
    count = 2 * (s.n_samples + s.grid * s.grid)
    return StepResult(
        commands=[command_line(a) for a in commands],
        headline=f"{count} images + masks + latents, 2 GIFs",
        wrote=["samples/", "anim/"],
        numbers={
            "images": f"{count} (each with its mask, class ids and colours)",
            "animations": f"nose and gaze, {s.frames} frames each",
        },
        pictures=pictures,
        links=[["samples/stage2/samples.jsonl", "stage2 samples.jsonl (a gaze dataset)"]],
    )


def _gaze(c: _Context, deadline: float, done: list[StepResult]) -> StepResult:
    s = c.scale
    judge = c.path(JUDGE)
    fit = [
        "gaze",
        "fit",
        "--data",
        c.path("data/db_studio"),
        "--out",
        judge,
        "--size",
        str(s.size),
        "--epochs",
        str(s.judge_epochs),
        "--seed",
        "1",
        "--overwrite",
        *c.device(),
    ]
    c.call(fit + c.quiet())
    commands, numbers, pictures, links, results = [fit], {}, [], [], {}
    for run in ("stage1", "stage2"):
        network = c.path(f"{run}/checkpoints/{newest_checkpoint(c.options.outdir / run).name}")
        argv = _consistency_argv(c, network, run)
        commands.append(argv)
        results[run] = _consistency(c, argv, run)
        numbers[f"{run} consistency"] = _consistency_text(results[run])
        pictures += _sweep_pictures(run)
        links.append([f"gaze/consistency_{run}.json", f"{run} consistency JSON"])
    first = results["stage1"]
    numbers["judge's own error"] = (
        f"{first['estimator_validation_error_deg']:.2f} deg on its held-out people "
        f"({s.judge_epochs} epochs on the labelled set; no loss used it)"
    )
    numbers["mean-gaze baseline"] = (
        f"{first['mean_gaze_baseline_deg']['mean']:.2f} deg (what a generator that ignores its gaze scores)"
    )
    numbers["note"] = "stage 2 draws the wild look, which the judge never saw: its number mixes in that domain gap"
    return StepResult(
        commands=[command_line(a) for a in commands],
        headline=(
            f"consistency {first['error_deg']['mean']:.1f} deg; "
            f"judge {first['estimator_validation_error_deg']:.1f}"
            f", baseline {first['mean_gaze_baseline_deg']['mean']:.1f}"
        ),
        wrote=["gaze/judge.pt", "gaze/consistency_stage1.json"],
        numbers=numbers,
        pictures=pictures,
        links=links,
    )


def _consistency_argv(c: _Context, network: str, name: str) -> list[str]:
    """`gcgan gaze consistency` of NETWORK by the judge, its sweep sheets at gaze/NAME_sweep_{yaw,pitch}.png."""
    sweep = ["--sweep", c.path(f"gaze/{name}_sweep")]
    model = ["--model", c.path(JUDGE), "--n", str(c.scale.consistency_n)]
    return ["gaze", "consistency", "--network", network, *model, *sweep, "--json", *c.device()]


def _consistency(c: _Context, argv: list[str], name: str) -> dict:
    """Run it; its JSON, kept at gaze/consistency_NAME.json."""
    result = json.loads(c.call(argv, capture=True))
    write_json_atomic(c.options.outdir / f"gaze/consistency_{name}.json", result)
    return result


def _consistency_text(result: dict) -> str:
    return (
        f"{result['error_deg']['mean']:.2f} deg mean, "
        f"{result['error_deg']['median']:.2f} median over {result['n']} samples; "
        f"r pitch {_r(result, 'pitch')}, yaw {_r(result, 'yaw')}"
    )


def _sweep_pictures(name: str) -> list[list[str]]:
    return [
        [
            f"gaze/{name}_sweep_{axis}.png",
            f"{name}: identities (rows) across {axis} values, the conditioning gaze in green, "
            "the judge's reading in red",
        ]
        for axis in ("yaw", "pitch")
    ]


def _pretrained(c: _Context, deadline: float, done: list[StepResult]) -> StepResult:
    """The shipped generator of a long run, sampled and judged as stage 1 was and shown beside it: what the time
    box gives next to what a long run gives. Skipped, with the reason as its number, where it does not fit."""
    folder, outdir = c.options.pretrained, c.options.outdir
    model, why = fitting_export(folder, outdir / "stage1")
    if model is None:
        return StepResult(commands=[], headline=f"skipped: {why}", wrote=[], numbers={NOT_SHOWN: why})
    network = str(folder)
    argvs = _sample_argvs(c, network, "pretrained")
    consistency = _consistency_argv(c, network, "pretrained")
    for argv in argvs:
        c.call(argv)
    theirs = _consistency(c, consistency, "pretrained")
    ours = json.loads((outdir / "gaze/consistency_stage1.json").read_text())
    (outdir / "pretrained").mkdir(exist_ok=True)
    for name in (CARD, CONFIG):  # beside the page, which links only its own folder
        write_atomic(outdir / "pretrained" / name, (folder / name).read_bytes())
    steps = checkpoint_steps(outdir / "stage1")[-1]
    minutes = _train_seconds(metrics_rows(outdir / "stage1/metrics.jsonl")) / 60
    pairs = zip(
        _sample_pictures(c.scale, "stage1") + _sweep_pictures("stage1"),
        _sample_pictures(c.scale, "pretrained") + _sweep_pictures("pretrained"),
    )
    baseline = theirs["mean_gaze_baseline_deg"]["mean"]
    return StepResult(
        commands=[command_line(a) for a in (*argvs, consistency)],
        headline=(
            f"{model.step:,} steps: consistency {theirs['error_deg']['mean']:.1f} deg "
            f"(this run's stage 1: {ours['error_deg']['mean']:.1f}), baseline {baseline:.1f}"
        ),
        wrote=["samples/pretrained", "samples/pretrained_gaze_grid", "gaze/consistency_pretrained.json"],
        numbers={
            "pretrained": f"{folder}: G_ema after {model.step:,} steps of a documented run at {model.config.size} px "
            "(its model card, linked below, says how it was made)",
            "this run": f"stage 1, {steps:,} steps in {minutes:.1f} min of training on this machine",
            "pretrained consistency": _consistency_text(theirs),
            "this run's stage 1 consistency": _consistency_text(ours),
            "mean-gaze baseline": f"{baseline:.2f} deg on the pretrained one's gazes, "
            f"{ours['mean_gaze_baseline_deg']['mean']:.2f} on this run's (what a generator that ignores its gaze "
            "scores)",
            "judge": f"gaze/judge.pt, fit in the gaze step ({ours['estimator_validation_error_deg']:.2f} deg on its "
            "held-out people); no loss of either generator saw it",
        },
        pictures=[picture for pair in pairs for picture in pair],
        columns=[
            f"this run: stage 1, {steps:,} steps in {minutes:.1f} min on this machine",
            f"pretrained: {model.step:,} steps (a documented run, see its model card)",
        ],
        links=[
            [f"pretrained/{CARD}", "the pretrained generator's model card: how it was made"],
            [f"pretrained/{CONFIG}", "its config.json"],
            ["gaze/consistency_pretrained.json", "pretrained consistency JSON"],
        ],
    )


def fitting_export(folder: Path, run: Path) -> tuple[ExportedModel | None, str]:
    """(the `gcgan export` at `folder`, "") where it draws what `run` was trained on (its size and classes), else
    (None, why not in a line)."""
    from gcgan_cli.core.export import read_export  # imports torch

    if not folder.is_dir():
        return None, f"no pretrained generator at {folder}"
    try:
        model = read_export(folder)
    except CheckpointError as exc:
        return None, str(exc)
    ours = json.loads((run / "config.json").read_text())["model"]
    if model.config.size != ours["size"]:
        return None, f"the pretrained generator at {folder} draws {model.config.size} px, this run {ours['size']} px"
    if list(model.config.class_names) != ours["class_names"]:
        return None, (
            f"the pretrained generator at {folder} draws the classes {', '.join(model.config.class_names)}; "
            f"this run {', '.join(ours['class_names'])}"
        )
    return model, ""


def _transfer(c: _Context, deadline: float, done: list[StepResult]) -> StepResult:
    s = c.scale
    t = "transfer"
    synth = [
        [
            "transfer",
            "synth",
            "--outdir",
            c.path(f"{t}/s_train"),
            "--style",
            "s",
            "--n",
            str(s.s_train),
            "--seed",
            "0",
            "--overwrite",
        ],
        [
            "transfer",
            "synth",
            "--outdir",
            c.path(f"{t}/s_test"),
            "--style",
            "s",
            "--n",
            str(s.s_test),
            "--seed",
            "1",
            "--twin",
            "--overwrite",
        ],
        [
            "transfer",
            "synth",
            "--outdir",
            c.path(f"{t}/r_train.h5"),
            "--style",
            "r",
            "--format",
            "mpii",
            "--n",
            str(12 * s.r_per_person),
            "--persons",
            "12",
            "--seed",
            "2",
            "--overwrite",
        ],
        [
            "transfer",
            "synth",
            "--outdir",
            c.path(f"{t}/r_test.h5"),
            "--style",
            "r",
            "--format",
            "mpii",
            "--n",
            str(3 * s.r_per_person),
            "--persons",
            "3",
            "--first-person",
            "12",
            "--seed",
            "2",
            "--overwrite",
        ],
    ]
    evaluator = [
        "gaze",
        "fit",
        "--input",
        "eye",
        "--data",
        c.path(f"{t}/r_train.h5"),
        "--out",
        c.path(f"{t}/e_r.pt"),
        "--arch",
        "small",
        "--seed",
        "11",
        "--epochs",
        str(s.er_epochs),
        "--overwrite",
        *c.device(),
    ]
    for argv in synth:
        c.call(argv)
    c.call(evaluator + c.quiet())
    fp = c.options.outdir / t / "fp"
    domains = ["--s", c.path(f"{t}/s_train"), "--r", c.path(f"{t}/r_train.h5")]
    calls = []
    if checkpoint_steps(fp):  # an interrupted fit continues to the --steps it was planned with
        steps = json.loads((fp / "config.json").read_text())["transfer"]["steps"]
        fit = [
            "transfer",
            "fit",
            *domains,
            "--outdir",
            c.path(f"{t}/fp"),
            "--preset",
            s.fp_preset,
            "--steps",
            str(steps),
            "--log-every",
            "50",
            "--sample-every",
            str(steps),
            "--save-every",
            "0",
            *c.device(),
        ]
        calls.append(command_line(["transfer", "fit", "--outdir", c.path(f"{t}/fp"), "--resume"]))
        c.call(["transfer", "fit", "--outdir", c.path(f"{t}/fp"), "--resume"])
    else:
        if fp.exists():
            shutil.rmtree(fp)
        probe = c.options.outdir / t / "probe"
        shutil.rmtree(probe, ignore_errors=True)
        argv = [
            "transfer",
            "fit",
            *domains,
            "--outdir",
            str(probe),
            "--preset",
            s.fp_preset,
            "--steps",
            str(s.fp_probe),
            "--log-every",
            str(s.fp_probe),
            "--save-every",
            "0",
            *c.device(),
        ]
        calls.append(command_line(argv))
        seconds = _timed(lambda: c.call(argv))
        per_step = metrics_rows(probe / "metrics.jsonl")[-1]["sec_per_step"]
        overhead = max(0.0, seconds - s.fp_probe * per_step)
        shutil.rmtree(probe)
        left = deadline - time.monotonic()
        steps = max(s.fp_min_steps, int((left * (1 - FP_EVAL_SHARE) - overhead) / per_step))
        fit = [
            "transfer",
            "fit",
            *domains,
            "--outdir",
            c.path(f"{t}/fp"),
            "--preset",
            s.fp_preset,
            "--steps",
            str(steps),
            "--log-every",
            str(min(50, steps)),
            "--sample-every",
            str(steps),
            "--save-every",
            "0",
            *c.device(),
        ]
        calls.append(command_line(fit))
        c.call(fit)
    translate = [
        "transfer",
        "run",
        "--network",
        c.path(f"{t}/fp"),
        "--data",
        c.path(f"{t}/s_test"),
        "--direction",
        "s2r",
        "--outdir",
        c.path(f"{t}/s_test_in_r"),
        "--overwrite",
        *c.device(),
    ]
    judge = [
        "transfer",
        "eval",
        "--network",
        c.path(f"{t}/fp"),
        "--s-test",
        c.path(f"{t}/s_test"),
        "--r-test",
        c.path(f"{t}/r_test.h5"),
        "--s-train",
        c.path(f"{t}/s_train"),
        "--r-train",
        c.path(f"{t}/r_train.h5"),
        "--gaze-r",
        c.path(f"{t}/e_r.pt"),
        "--twins",
        c.path(f"{t}/s_test-twin"),
        "--out",
        c.path(f"{t}/eval.json"),
        *c.device(),
    ]
    c.call(translate)
    c.call(judge)
    report = json.loads((c.options.outdir / t / "eval.json").read_text())
    gaze, realism = report["gaze"], report["realism"]
    sheets = sorted((fp / "samples").glob("*.png"))
    return StepResult(
        commands=[command_line(a) for a in (*synth, evaluator, fit, translate, judge)],
        headline=f"E_R gaze error {gaze['raw_s']['mean']:.1f} -> {gaze['translated']['mean']:.1f} deg",
        wrote=[f"{t}/fp", f"{t}/s_test_in_r", f"{t}/eval.json"],
        numbers={
            "translated": f"{s.s_test} synthetic eye patches (S_test) by G: S -> R, {steps:,} steps of the "
            f"{s.fp_preset} preset",
            "gaze error, before": f"{gaze['raw_s']['mean']:.2f} deg: E_R (trained on R only, no loss saw it) on "
            "the raw S patches against their true gaze",
            "gaze error, after": f"{gaze['translated']['mean']:.2f} deg: E_R on their translations",
            "floor": f"{gaze['r_test_floor']['mean']:.2f} deg: E_R on held-out R people",
            "realism": f"an S-vs-R judge calls {realism['translated']:.0f} % of translations synthetic "
            f"(raw S: {realism['raw_s']:.0f} %; 50 % = chance)",
        },
        pictures=[
            [
                str(sheets[-1].relative_to(c.options.outdir)),
                "x | G(x) | F(G(x)) | |G(x) - x|: S -> R rows on top, R -> S below, the true gaze as arrows",
            ]
        ]
        if sheets
        else [],
        links=[[f"{t}/eval.json", "transfer eval JSON"], [f"{t}/fp/metrics.jsonl", "fp metrics.jsonl"]],
        calls=calls,
    )


def _page(c: _Context, deadline: float, done: list[StepResult]) -> StepResult:
    from gcgan_cli.core.report_page import render

    page = c.options.outdir / PAGE
    header = {
        "minutes": c.options.minutes,
        "device": c.options.device,
        "threads": c.options.threads,
        "scale": c.scale.name,
        "written": _now(),
    }
    write_atomic(page, render(header, done).encode())
    return StepResult(commands=[], headline="open it in a browser", wrote=[PAGE])


STEP_FUNCTIONS = {
    "data": _data,
    "stage1": _stage1,
    "stage2": _stage2,
    "samples": _samples,
    "gaze": _gaze,
    "transfer": _transfer,
    "pretrained": _pretrained,
    "page": _page,
}


# ---------------------------------------------------------------------------------------------------------------
# Reading what the subcommands wrote.


def checkpoint_steps(run: Path) -> list[int]:
    """The steps of a run's checkpoints (NNNNNNN.pt), ascending."""
    return [int(path.stem) for path in RunDir(run).checkpoint_files()]


def newest_checkpoint(run: Path) -> Path:
    files = RunDir(run).checkpoint_files()
    if not files:
        raise UsageError(f"{run}: no checkpoint; its training step did not finish (run quickstart again)")
    return files[-1]


def metrics_rows(path: Path) -> list[dict]:
    """The training rows of a metrics.jsonl (rows with a step and a speed; FID and consistency rows are others)."""
    rows = read_metrics(path) if path.is_file() else []
    return [row for row in rows if "step" in row and "sec_per_step" in row]


def speed(run: Path) -> float | None:
    """Seconds per step of the newest metrics row, or None before the first."""
    rows = metrics_rows(run / "metrics.jsonl")
    return rows[-1]["sec_per_step"] if rows else None


def _train_seconds(rows: list[dict]) -> float:
    """The training time the rows cover: each row's mean seconds per step times its steps (a step logged twice,
    before a kill and after the resume, counts once)."""
    total, before = 0.0, 0
    for row in sorted({row["step"]: row for row in rows}.values(), key=lambda row: row["step"]):
        total += (row["step"] - before) * row["sec_per_step"]
        before = row["step"]
    return total


def _timed(work: Callable[[], object]) -> float:
    begun = time.monotonic()
    work()
    return time.monotonic() - begun


def _r(result: dict, axis: str) -> str:
    value = result["correlation"][axis]
    return "n/a" if value is None else f"{value:.2f}"


def _now() -> str:
    return datetime.now().isoformat(timespec="seconds")
