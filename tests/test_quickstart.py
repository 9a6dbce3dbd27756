"""`gcgan quickstart` at the tests' tiny scale: every step runs and leaves its number, the page links only files
that exist, a re-run skips what is finished, and a folder of something else is refused in one line. The pretrained
generator is skipped with its reason where it is missing or does not fit (the shipped one is 64 px), and stands
beside stage 1 where it fits (stage 1's own export)."""

import contextlib
import io
import json
import os
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from gcgan_cli import cli
from gcgan_cli.core import quickstart as qs
from gcgan_cli.core.folders import CARD

TINY = ["--minutes", "0.3", "--scale", "tiny", "--device", "cpu"]


def quickstart(outdir: Path, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.run(["quickstart", "--outdir", str(outdir), *TINY, *extra])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One quiet tiny run: (its folder, exit code, stdout, wall seconds)."""
    root = tmp_path_factory.mktemp("quickstart")
    outdir = root / "run"
    begun = time.monotonic()
    code, out = quickstart(outdir, "--quiet", "--pretrained", str(root / "absent"))
    return outdir, code, out, time.monotonic() - begun


@pytest.fixture(scope="module")
def pretrained(finished) -> Path:
    """A `gcgan export` the tiny scale can show beside its stage 1 (the shipped one is 64 px): stage 1's own."""
    outdir = finished[0]
    model = outdir.parent / "model"
    assert cli.run(["export", "--network", str(qs.newest_checkpoint(outdir / "stage1")), "--outdir", str(model)]) == 0
    return model


def results(outdir: Path) -> dict[str, dict]:
    return {name: json.loads((outdir / qs.STEPS_DIR / f"{name}.json").read_text()) for name, _, _ in qs.STEPS}


def files_and_times(outdir: Path) -> dict[str, int]:
    """Every file's modification time, but the log (a re-run appends to it)."""
    return {
        str(p.relative_to(outdir)): p.stat().st_mtime_ns for p in outdir.rglob("*") if p.is_file() and p.name != qs.LOG
    }


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.images = [], []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src"):
                self.links.append(value)
            if tag == "img" and name == "src":
                self.images.append(value)


@pytest.mark.slow
def test_every_step_runs_and_reports_its_number(finished):
    outdir, code, out, _ = finished
    assert code == 0, out
    steps = results(outdir)
    assert list(steps) == [name for name, _, _ in qs.STEPS]
    for name, result in steps.items():
        if name == "pretrained":  # no folder given: skipped (shown in test_the_pretrained_generator_stands_beside...)
            assert result["headline"].startswith("skipped: ") and not result["commands"]
            continue
        assert result["headline"] and result["wrote"], name
        for path in result["wrote"]:
            assert (outdir / path).exists(), (name, path)
        if name != "page":
            assert result["commands"] and all(line.startswith("gcgan ") for line in result["commands"]), name
    assert int(steps["stage1"]["headline"].split()[0].replace(",", "")) >= qs.SCALES["tiny"].probe
    consistency = json.loads((outdir / "gaze/consistency_stage1.json").read_text())
    assert consistency["error_deg"]["mean"] > 0 and consistency["estimator_validation_error_deg"] is not None
    report = json.loads((outdir / "transfer/eval.json").read_text())
    assert report["gaze"]["raw_s"]["mean"] > 0 and report["gaze"]["translated"]["mean"] > 0
    # --quiet: no step lines or subcommand output on stdout, only the summary; the log has the commands
    assert "$ gcgan" not in out and "gcgan quickstart:" in out
    for _, title, _ in qs.STEPS:
        assert title in out
    log = (outdir / qs.LOG).read_text()
    assert "$ gcgan train --data" in log and "$ gcgan transfer eval" in log


def linked(outdir: Path) -> tuple[str, set[str]]:
    """The page, and the images it shows; every file it links exists in `outdir`, by a relative link."""
    page = (outdir / qs.PAGE).read_text()
    parser = Links()
    parser.feed(page)
    files = [unquote(link) for link in parser.links if not link.startswith("#")]
    missing = [link for link in files if not (outdir / link).exists()]
    assert files and not missing
    assert not any(link.startswith(("/", "http:", "https:", "file:")) for link in files)  # relative, no server
    return page, {unquote(src) for src in parser.images}


@pytest.mark.slow
def test_the_page_shows_every_step_and_links_only_files_that_exist(finished):
    outdir, _, _, _ = finished
    page, shown = linked(outdir)
    assert "<script" not in page
    for name, result in results(outdir).items():
        for path, _ in result["pictures"]:
            assert path in shown and (outdir / path).stat().st_size > 0, (name, path)
        for line in result["commands"]:
            assert line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in page, line
    assert any(src.endswith(".gif") for src in shown) and sum(src.endswith(".png") for src in shown) >= 8


@pytest.mark.slow
def test_a_rerun_skips_finished_steps_and_touches_nothing(finished):
    outdir, _, _, first_seconds = finished
    before = files_and_times(outdir)
    begun = time.monotonic()
    code, out = quickstart(outdir)
    assert code == 0, out
    assert time.monotonic() - begun < min(5.0, first_seconds / 2)
    assert out.count("already done") == len(qs.STEPS) and "$ gcgan" not in out
    assert "every step is finished" in out
    assert files_and_times(outdir) == before


@pytest.mark.slow
def test_without_the_pretrained_folder_the_part_is_skipped_with_its_reason(finished):
    outdir, _, out, _ = finished
    why = f"no pretrained generator at {outdir.parent / 'absent'}"
    assert f"skipped: {why}" in out  # the summary table's row, under --quiet
    step = results(outdir)["pretrained"]
    assert step["numbers"] == {qs.NOT_SHOWN: why} and not step["pictures"] and not step["wrote"]
    page, _ = linked(outdir)
    assert f"not shown beside them: {why}" in page and '<table class="side">' not in page


@pytest.mark.slow
def test_a_step_without_its_marker_runs_again_with_the_ones_after_it(finished):
    outdir, _, _, _ = finished
    (outdir / qs.STEPS_DIR / "gaze.json").unlink()
    before = files_and_times(outdir)
    code, out = quickstart(outdir)
    assert code == 0, out
    after = files_and_times(outdir)
    assert "$ gcgan gaze fit" in out and "$ gcgan transfer fit --outdir" in out  # the interrupted fit resumes
    assert "draws 64 px, this run 32 px" in out  # the pretrained step again: the shipped generator does not fit
    for earlier in ("stage1", "stage2", "samples"):
        assert f"{earlier}: already done" in out
    unchanged = [
        path
        for path in before
        if path.startswith(("data/", "stage1/", "stage2/", "samples/", "anim/")) and not path.endswith("metrics.jsonl")
    ]  # gaze consistency adds its row to the run's metrics
    assert unchanged and all(after[path] == before[path] for path in unchanged)
    for rerun in ("gaze/judge.pt", "transfer/eval.json", qs.PAGE):
        assert after[rerun] > before[rerun], rerun


@pytest.mark.slow
def test_the_pretrained_generator_stands_beside_stage_1(finished, pretrained):
    outdir, _, _, _ = finished
    (outdir / qs.STEPS_DIR / "pretrained.json").unlink()
    code, out = quickstart(outdir, "--pretrained", str(pretrained))
    assert code == 0, out
    assert "transfer: already done" in out and f"$ gcgan sample --network {pretrained}" in out
    step = results(outdir)["pretrained"]
    assert step["headline"] in out  # the summary table's row
    ours = json.loads((outdir / "gaze/consistency_stage1.json").read_text())
    theirs = json.loads((outdir / "gaze/consistency_pretrained.json").read_text())
    assert theirs["n"] == qs.SCALES["tiny"].consistency_n
    assert theirs["error_deg"] == ours["error_deg"]  # stage 1 exported: the same images before the same judge
    assert (outdir / "pretrained" / CARD).read_bytes() == (pretrained / CARD).read_bytes()
    left, right = step["pictures"][0::2], step["pictures"][1::2]  # rows of (this run, pretrained)
    assert len(left) == len(right) == 4 and step["columns"][0].startswith("this run: stage 1, ")
    assert all(a.startswith(("samples/stage1", "gaze/stage1")) for a, _ in left)
    assert all(b.startswith(("samples/pretrained", "gaze/pretrained")) for b, _ in right)
    page, shown = linked(outdir)
    steps = qs.checkpoint_steps(outdir / "stage1")[-1]
    assert '<table class="side">' in page and f"pretrained: {steps:,} steps (a documented run" in page
    assert {path for path, _ in step["pictures"]} <= shown and '">the pretrained section</a> shows' in page
    assert "not shown" not in page


def test_the_shipped_generator_is_a_small_export_that_sample_reads(tmp_path, run_cli):
    files = [path for path in qs.PRETRAINED.iterdir() if path.is_file()]
    assert sum(path.stat().st_size for path in files) <= 10 * 2**20 and (qs.PRETRAINED / CARD).is_file()
    code, _, err = run_cli(
        "sample", "--network", qs.PRETRAINED, "--outdir", tmp_path / "s", "--n", "2", "--device", "cpu"
    )
    assert code == 0 and (tmp_path / "s" / "contact_sheet.png").is_file(), err
    classes = json.loads((qs.PRETRAINED / "config.json").read_text())["model"]["class_names"]
    run = tmp_path / "run"
    run.mkdir()
    for size, names, why in (
        (64, classes, ""),
        (32, classes, "draws 64 px, this run 32 px"),
        (64, classes[:-1], f"draws the classes {', '.join(classes)}; this run {', '.join(classes[:-1])}"),
    ):
        (run / "config.json").write_text(json.dumps({"model": {"size": size, "class_names": names}}))
        model, said = qs.fitting_export(qs.PRETRAINED, run)
        assert (model is None) == bool(why) and said.endswith(why), (size, said)


def test_a_folder_of_something_else_is_refused_in_one_line(tmp_path, run_cli):
    (tmp_path / "notes.txt").write_text("mine")
    code, out, err = run_cli("quickstart", "--outdir", tmp_path, *TINY)
    assert code == 2 and "not a quickstart folder" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing written

    code, _, err = run_cli("quickstart", "--outdir", tmp_path / "notes.txt", *TINY)
    assert code == 2 and "a file is in the way" in err and len(err.strip().splitlines()) == 1


def test_a_quickstart_folder_of_another_scale_is_refused(tmp_path, run_cli):
    (tmp_path / qs.MARKER).write_text(json.dumps({"format": qs.FORMAT, "scale": "gpu"}))
    code, _, err = run_cli("quickstart", "--outdir", tmp_path, *TINY)
    assert code == 2 and "scale 'gpu'" in err and len(err.strip().splitlines()) == 1


def test_the_time_box_is_split_over_the_steps_left(tmp_path):
    full = qs.plan(tmp_path, 12)
    assert [name for name, _, _ in full] == [name for name, _, _ in qs.STEPS]
    assert sum(seconds for _, _, seconds in full) == pytest.approx(720)
    (tmp_path / qs.STEPS_DIR).mkdir()
    (tmp_path / qs.STEPS_DIR / "data.json").write_text("{}")
    left = qs.plan(tmp_path, 12)
    assert "data" not in [name for name, _, _ in left] and sum(s for _, _, s in left) == pytest.approx(720)


def test_the_cpu_threads_are_the_cores_other_work_leaves_free(tmp_path, monkeypatch):
    cores = len(os.sched_getaffinity(0))
    assert qs.cpu_threads(3) == 3  # asked for
    assert qs.cpu_threads(0, busy=cores - 0.8) == 1 and qs.cpu_threads(0, busy=0.2) == cores
    assert qs.cpu_threads(0, busy=cores + 5) == 1  # at least one
    assert 0.0 <= qs.busy_cores(cores, seconds=0.05) <= cores
    monkeypatch.setattr(os, "getloadavg", lambda: (1.5, 1.0, 1.0))
    assert qs.busy_cores(cores, seconds=0.0, stat=tmp_path / "absent") == 1.5  # no /proc/stat: the load average
