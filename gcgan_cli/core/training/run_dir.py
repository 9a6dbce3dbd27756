"""A training run's folder: checkpoints, metrics, samples and the resolved config.

    DIR/config.json              the resolved TrainConfig + model config (written at start)
    DIR/checkpoints/NNNNNNN.pt   training state after N steps (atomic; the newest --keep are kept)
    DIR/metrics.jsonl            one JSON row per --log-every steps (and one at the end), FID rows, events
    DIR/log.txt                  what rank 0 reports, as plain text: start line, status lines, events,
                                 summary; a resumed run appends
    DIR/samples/NNNNNNN.png      sample grids from G_ema (fixed z and gazes)
    DIR/tensorboard/             event files, when tensorboard is installed

Which checkpoint is latest comes from the step stored inside it, not from parsing its name (the
reference parsed the name, so stage 2 continued stage 1's count); names only keep them sorted.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

from gcgan_cli.data.atomic import write_atomic, write_json_atomic
from gcgan_cli.errors import CheckpointError, GcganError, UsageError
from gcgan_cli.outputs import reporting_disk_full

_NAME = re.compile(r"^(\d{7,})\.pt$")
CHECKPOINT_KEYS = (
    "kind",
    "stage",
    "step",
    "config",
    "g",
    "d",
    "g_ema",
    "g_optim",
    "d_optim",
    "rng",
    "gaze_labels",
    "data",
)


class RunDir:
    """`kind` and `required` name the checkpoints this folder holds (GC-GAN training by default;
    `gcgan transfer fit` keeps its own kind in the same layout)."""

    def __init__(
        self, root: Path, kind: str = "gcgan-train", required: tuple[str, ...] = CHECKPOINT_KEYS, flag: str = "--outdir"
    ):
        self.root, self.kind, self.required, self.flag = Path(root), kind, required, flag
        self.checkpoints = self.root / "checkpoints"
        self.samples = self.root / "samples"
        self.metrics = self.root / "metrics.jsonl"
        self.config = self.root / "config.json"
        self.tensorboard = self.root / "tensorboard"
        self.log = self.root / "log.txt"

    def create(self) -> None:
        for folder in (self.checkpoints, self.samples):
            folder.mkdir(parents=True, exist_ok=True)

    def checkpoint_files(self) -> list[Path]:
        """Oldest first, by the number in the name (step 10,000,000 has one digit more than 9,999,999)."""
        if not self.checkpoints.is_dir():
            return []
        return sorted((p for p in self.checkpoints.iterdir() if _NAME.match(p.name)), key=lambda p: int(p.stem))

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints / f"{step:07d}.pt"

    def sample_path(self, step: int) -> Path:
        return self.samples / f"{step:07d}.png"

    def latest(self) -> dict:
        """The newest checkpoint's contents, after removing temp files a killed save left."""
        for stray in self.checkpoints.glob(".*.tmp") if self.checkpoints.is_dir() else []:
            stray.unlink(missing_ok=True)
        files = self.checkpoint_files()
        if not files:
            raise UsageError(f"--resume: {self.checkpoints} has no checkpoint to resume from; start without --resume")
        from gcgan_cli.checkpoint import load_checkpoint  # torch: here, so reading a run's files needs none

        try:
            record = load_checkpoint(files[-1], required=self.required)
        except CheckpointError as exc:
            if len(files) < 2:
                raise
            raise CheckpointError(
                f"{exc}; to resume from {files[-2].name}, move {files[-1].name} out of {self.checkpoints}"
            ) from exc
        if record.get("kind") != self.kind:
            raise CheckpointError(f"{files[-1]} is not a training checkpoint")
        return record

    def refuse_overwrite(self) -> None:
        if self.checkpoint_files():
            raise UsageError(
                f"{self.flag} {self.root} already holds checkpoints: pass --resume to continue that run, or choose "
                "another folder"
            )

    def prune(self, keep: int) -> None:
        """Delete all but the newest `keep` checkpoints (0 keeps every one)."""
        if keep > 0:
            for old in self.checkpoint_files()[:-keep]:
                old.unlink(missing_ok=True)

    def write_config(self, record: dict) -> None:
        with reporting_disk_full(self.root):
            write_json_atomic(self.config, record)

    def read_config(self) -> dict | None:
        if not self.config.is_file():
            return None
        try:
            record = json.loads(self.config.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(
                f"{self.config} is not valid JSON ({exc}); restore it or start a new {self.flag}"
            ) from None
        if not isinstance(record, dict):
            raise UsageError(
                f"{self.config} is not a run's config (a {type(record).__name__}, not a table); "
                f"restore it or start a new {self.flag}"
            )
        return record

    def append_metrics(self, row: dict) -> None:
        """A row cut short by a full disk is skipped by every reader and dropped on --resume."""
        with reporting_disk_full(self.root), open(self.metrics, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")

    def append_log(self, text: str) -> None:
        """One entry of log.txt (a line, or a table's lines), whatever the terminal showed."""
        with reporting_disk_full(self.root), open(self.log, "a", encoding="utf-8") as handle:
            handle.write(text.rstrip("\n") + "\n")

    def truncate_metrics(self, step: int) -> None:
        """Drop rows after `step`: a resumed run rewrites them, so the file stays one history."""
        if not self.metrics.is_file():
            return
        kept = [
            line
            for line in self.metrics.read_text(encoding="utf-8").splitlines(keepends=True)
            if _row_step(line) is not None and _row_step(line) <= step
        ]
        with reporting_disk_full(self.root):
            write_atomic(self.metrics, "".join(kept).encode())


def _row_step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None  # a line cut short by a killed run


def read_metrics(path: Path) -> list[dict]:
    """The rows of a metrics.jsonl (complete lines only)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def run_of(checkpoint: Path) -> RunDir | None:
    """The run folder a `gcgan train` checkpoint lies in (RUN/checkpoints/NAME.pt beside RUN/config.json),
    or None for a checkpoint kept anywhere else."""
    checkpoint = Path(checkpoint).resolve()
    run = RunDir(checkpoint.parent.parent)
    return run if checkpoint.parent.name == "checkpoints" and run.config.is_file() else None


def record_measure(network: Path, step: int, values: dict) -> Path | None:
    """Append a measure of a run's checkpoint (FID, gaze consistency) to that run's metrics.jsonl as a
    row of the checkpoint's step, where export's model card finds it. Returns the file, or None when
    the checkpoint lies outside a run folder or the folder is read-only (the measure is printed anyway)."""
    run = run_of(network)
    if run is None or not os.access(run.root, os.W_OK):
        return None
    run.append_metrics({"step": step, **values})
    return run.metrics


class RunLog:
    """The run folder's log.txt. Lines from before the trainer made the folder wait for it, so a
    run refused during setup leaves nothing behind."""

    def __init__(self, run: RunDir):
        self.run, self.waiting = run, []

    def __call__(self, text: str) -> None:
        if self.waiting is None:
            self.run.append_log(text)
        else:
            self.waiting.append(text)

    def open(self) -> None:
        waiting, self.waiting = self.waiting, None
        for text in waiting:
            self.run.append_log(text)

    def failed(self, exc: GcganError) -> None:
        """The error that ends the run, as its last line; a log that cannot be written (a full disk)
        leaves the error to stderr alone."""
        with contextlib.suppress(OSError, GcganError):
            self(f"error: {exc}")
