"""Logs that work on clusters (stdout sent to a file or a pipe): plain status lines instead of the
bar, never wrapped, no ANSI codes; every training run keeps log.txt; metrics.jsonl ends with a row
even when the run is shorter than --log-every or is stopped; --quiet keeps only the summary."""

import os
import pty
import re
import subprocess
import sys

import pytest
from faults import one_error, packed, synthetic_prep

from gcgan_cli.commands import display
from gcgan_cli.core.training.config import resolve
from gcgan_cli.core.training.run_dir import read_metrics
from gcgan_cli.core.training.trainer import Hooks, Trainer

TINY = ["--preset", "tiny", "--workers", "0", "--batch", "4", "--viz-every", "0"]
ESC = "\x1b"  # every ANSI control sequence starts with it


# The tiny model gains nothing from more threads; on a shared machine they wait on each other.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("logs")
    return packed(synthetic_prep(root / "prep", n=8), root / "db")


def cli_env(**extra) -> dict:
    """The environment of a `gcgan` subprocess: no terminal settings from this shell, one math thread,
    the given variables."""
    return {
        **{k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE")},
        "OMP_NUM_THREADS": "1",
        **extra,
    }


def train_command(db, run, *args) -> list[str]:
    return [sys.executable, "-m", "gcgan_cli", "train", "--data", str(db), "--outdir", str(run), *TINY, *map(str, args)]


STATUS = re.compile(r"  (\d+)/(\d+) \w+ \(\d+%\)  ")  # `  done/total unit (pct%)  `


def status_lines(text: str, head: str) -> list[str]:
    """The status lines of `text` that begin with `head` (the command and its description)."""
    return [line for line in text.splitlines() if line.startswith(head) and STATUS.search(line)]


def counts(lines: list[str]) -> list[tuple[int, int]]:
    """(done, total) of each status line."""
    return [tuple(int(n) for n in STATUS.search(line).groups()) for line in lines]


class Clock:
    """time.monotonic for display, set by the test."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    """display's clock, set by the test; status lines at most every 10 s of it."""
    clock = Clock()
    monkeypatch.setattr(display, "time", clock)
    monkeypatch.setenv(display.LOG_SECONDS, "10")
    return clock


def test_status_lines_are_spaced_by_gcgan_log_seconds_and_count_rate_and_eta(clock, capsys):
    logged = []
    with display.progress_bar("x", "items", log=logged.append) as progress:
        task = progress.add_task("demo", total=None)
        progress.update(task, total=100)
        for now, advance in ((5, 10), (10, 10), (15, 10)):
            clock.now = now
            progress.advance(task, advance)
        clock.now = 20
        progress.update(task, speed="fast")  # a field alone prints nothing
        clock.now = 3725
        progress.advance(task, 70)
    # 20 items in 10 s: 2/s, 80 left -> 40 s; then 100 items in 3725 s, none left
    assert logged == [
        "x demo  20/100 items (20%)  2.00 items/s  elapsed 0:00:10  eta 0:00:40",
        "x demo  100/100 items (100%)  0.03 items/s  elapsed 1:02:05  eta 0:00:00  fast",
    ]
    assert capsys.readouterr().out.splitlines() == logged  # stdout is not a terminal here


def test_a_resumed_count_rates_only_this_runs_work_and_ends_with_a_line(clock, capsys):
    logged = []
    with display.progress_bar("pack", "records", log=logged.append) as progress:
        task = progress.add_task("", total=None)
        progress.update(task, total=50, completed=30)  # 30 from an interrupted run
        clock.now = 10
        progress.advance(task, 10)
        clock.now = 12
        progress.advance(task, 5)  # 2 s after the last line: not due, shown at the end
    assert logged == [
        "pack  40/50 records (80%)  1.00 records/s  elapsed 0:00:10  eta 0:00:10",
        "pack  45/50 records (90%)  1.25 records/s  elapsed 0:00:12  eta 0:00:04",
    ]
    assert capsys.readouterr().out.splitlines() == logged


def test_quiet_progress_prints_nothing_but_still_feeds_the_log(monkeypatch, capsys):
    monkeypatch.setenv(display.LOG_SECONDS, "0")
    logged = []
    with display.progress_bar("x", "items", quiet=True, log=logged.append) as progress:
        task = progress.add_task("", total=2)
        progress.advance(task)
        progress.print("an event")
        progress.advance(task)
    assert capsys.readouterr().out == ""
    assert [line.split("  ")[1] for line in logged if line.startswith("x  ")] == ["1/2 items (50%)", "2/2 items (100%)"]
    assert "an event" in logged


@pytest.mark.slow
def test_a_piped_train_prints_one_line_status_lines_and_log_txt_keeps_the_same(db, tmp_path):
    run = tmp_path / "run"
    done = subprocess.run(
        train_command(db, run, "--iters", "3", "--log-every", "2"),
        capture_output=True,
        text=True,
        env=cli_env(GCGAN_LOG_SECONDS="0"),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert ESC not in out and done.stderr == ""
    start = [line for line in out.splitlines() if line.startswith("gcgan train stage 1:")]
    assert len(start) == 1 and len(start[0]) > 80 and "total batch 4" in start[0] and "started " in start[0]
    blocks = [line for line in out.splitlines() if line.startswith(("  G blocks: style ", "  D blocks: convs_img "))]
    assert len(blocks) == 2 and "local_nets.0 " in blocks[0]
    lines = status_lines(out, "train stage 1")
    assert counts(lines) == [(k, 3) for k in range(1, 4)]
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [2, 3]  # 3 is not a --log-every step: the run still ends with a row
    assert "final" not in rows[0] and rows[1]["final"] is True
    for line, row in ((lines[1], rows[0]), (lines[2], rows[1])):
        assert f"kimg {row['step'] * 4 / 1000:.3f}  {row['img_per_s']:.1f} img/s" in line
        assert f"  d {row['d']:.3g} g {row['g']:.3g} mask {row['mask']:.3g}" in line and "peak rss " in line
    assert "img/s" not in lines[0] and "  d " not in lines[0]  # before the first row there is nothing to show
    assert f"step 3: checkpoint {run / 'checkpoints' / '0000003.pt'}" in out.splitlines()
    assert "gcgan train, stage 1" in out and str(run / "log.txt") in out  # the summary, paths whole
    assert (run / "log.txt").read_text(encoding="utf-8") == out


@pytest.mark.slow
def test_on_a_terminal_the_bar_is_drawn_and_log_txt_stays_plain(db, tmp_path):
    run = tmp_path / "run"
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        train_command(db, run, "--iters", "2", "--log-every", "2"),
        stdout=follower,
        stderr=subprocess.PIPE,
        env=cli_env(GCGAN_LOG_SECONDS="0"),
    )
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert process.wait(timeout=300) == 0, process.stderr.read()
    process.stderr.close()
    screen = shown.decode()
    assert "━" in screen and ESC in screen and "steps (50%)" not in screen  # the rich bar, no status lines
    log = (run / "log.txt").read_text(encoding="utf-8")
    assert ESC not in log and "━" not in log
    assert [line.split("  ")[1] for line in status_lines(log, "train stage 1")] == [
        "1/2 steps (50%)",
        "2/2 steps (100%)",
    ]


def test_quiet_train_prints_the_summary_and_a_resumed_run_appends_to_log_txt(db, tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv(display.LOG_SECONDS, "0")
    run = tmp_path / "run"
    base = ["train", "--data", db, "--outdir", run, *TINY, "--log-every", "2", "--quiet"]
    code, out, err = run_cli(*base, "--iters", "3")
    assert code == 0 and err == ""
    assert out.lstrip().startswith("gcgan train, stage 1") and "checkpoint" in out
    assert not status_lines(out, "train stage 1") and "FID is off" not in out and "started" not in out
    first = (run / "log.txt").read_text(encoding="utf-8")
    assert len(status_lines(first, "train stage 1")) == 3 and "step 3: checkpoint" in first
    code, out, err = run_cli("train", "--outdir", run, "--resume", "--iters", "4", "--quiet")
    assert code == 0 and err == "" and not status_lines(out, "train stage 1")
    log = (run / "log.txt").read_text(encoding="utf-8")
    assert log.startswith(first)
    again = log[len(first) :]
    assert "resuming at step 3" in again and counts(status_lines(again, "train stage 1")) == [(4, 4)]
    assert [(r["step"], r.get("final", False)) for r in read_metrics(run / "metrics.jsonl")] == [
        (2, False),
        (3, True),
        (4, False),
    ]


def test_a_stopped_run_writes_a_final_row_of_what_it_accumulated(db, tmp_path):
    config = resolve(
        {
            "dataset": str(db),
            "checkpoint_dir": str(tmp_path / "run"),
            "preset": "tiny",
            "workers": 0,
            "iters": 100,
            "log_every": 50,
            "viz_every": 0,
            "batch": 2,
        }
    )
    steps, rows = [], []
    trainer = Trainer(config, Hooks(on_step=steps.append, on_log=rows.append, should_stop=lambda: len(steps) >= 3))
    try:
        result = trainer.train()
    finally:
        trainer.close()
    assert result.interrupted and result.step == 3
    written = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert written == rows and [(r["step"], r["final"]) for r in written] == [(3, True)]
    assert written[0]["kimg"] == 3 * config.batch / 1000 and result.last_row == written[0]


def test_piped_segment_and_pack_print_plain_progress_and_quiet_only_the_summary(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv(display.LOG_SECONDS, "0")
    code, out, err = run_cli(
        "segment", "synthetic", "--n", "4", "--size", "32", "--outdir", tmp_path / "prep", "-j", "1"
    )
    assert code == 0 and err == "" and ESC not in out
    lines = status_lines(out, "segment synthetic")
    assert [line.split("  ")[1] for line in lines] == [f"{k}/4 strips ({25 * k}%)" for k in range(1, 5)]
    assert all(" strips/s  elapsed 0:00:0" in line for line in lines)
    code, out, err = run_cli(
        "pack", "--data", tmp_path / "prep", "--outdir", tmp_path / "db", "--size", "32", "-j", "1"
    )
    assert code == 0 and err == ""
    assert counts(status_lines(out, "pack")) == [(k, 4) for k in range(1, 5)] and " records/s  " in out
    code, out, err = run_cli(
        "pack", "--data", tmp_path / "prep", "--outdir", tmp_path / "db2", "--size", "32", "-j", "1", "--quiet"
    )
    assert code == 0 and err == "" and not status_lines(out, "pack") and out.lstrip().startswith("gcgan pack")
    assert (tmp_path / "db2").is_dir()


def test_gaze_fit_prints_plain_progress_and_epochs(db, tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv(display.LOG_SECONDS, "0")
    fit = ["gaze", "fit", "--data", db, "--size", "16", "--epochs", "2", "--batch", "4", "--device", "cpu"]
    code, out, err = run_cli(*fit, "--out", tmp_path / "e.pt")
    assert code == 0 and ESC not in out, err
    lines = status_lines(out, "gaze fit")
    assert all(" batches/s  elapsed " in line for line in lines)
    done = counts(lines)
    assert [k for k, _ in done] == list(range(1, len(done) + 1)) and done[-1][0] == done[-1][1] >= 2  # 2 epochs
    assert sum(line.startswith("epoch ") for line in out.splitlines()) == 2
    code, out, err = run_cli(*fit, "--out", tmp_path / "q.pt", "--quiet")
    assert (
        code == 0
        and not status_lines(out, "gaze fit")
        and not any(line.startswith("epoch ") for line in out.splitlines())
    )
    assert out.lstrip().startswith("gcgan gaze fit")


def test_a_bad_gcgan_log_seconds_is_one_error_before_any_work(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv(display.LOG_SECONDS, "soon")
    code, out, err = run_cli(
        "segment", "synthetic", "--n", "2", "--size", "32", "--outdir", tmp_path / "prep", "-j", "1"
    )
    assert code == 2 and out == ""
    one_error(err, "GCGAN_LOG_SECONDS", "'soon'")
    assert not (tmp_path / "prep").exists()
