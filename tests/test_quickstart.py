"""`gcgan quickstart` at the tests' tiny scale: every step runs and leaves its number, the page links only files
that exist, a re-run skips what is finished, and a folder of something else is refused in one line."""

import contextlib
import io
import json
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from gcgan_cli import cli
from gcgan_cli.core import quickstart as qs

TINY = ["--minutes", "0.3", "--scale", "tiny", "--device", "cpu"]


def quickstart(outdir: Path, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.run(["quickstart", "--outdir", str(outdir), *TINY, *extra])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One quiet tiny run: (its folder, exit code, stdout, wall seconds)."""
    outdir = tmp_path_factory.mktemp("quickstart") / "run"
    begun = time.monotonic()
    code, out = quickstart(outdir, "--quiet")
    return outdir, code, out, time.monotonic() - begun


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


@pytest.mark.slow
def test_the_page_shows_every_step_and_links_only_files_that_exist(finished):
    outdir, _, _, _ = finished
    page = (outdir / qs.PAGE).read_text()
    parser = Links()
    parser.feed(page)
    files = [unquote(link) for link in parser.links if not link.startswith("#")]
    missing = [link for link in files if not (outdir / link).exists()]
    assert files and not missing
    assert not any(link.startswith(("/", "http:", "https:", "file:")) for link in files)  # relative, no server
    assert "<script" not in page
    shown = {unquote(src) for src in parser.images}
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
def test_a_step_without_its_marker_runs_again_with_the_ones_after_it(finished):
    outdir, _, _, _ = finished
    (outdir / qs.STEPS_DIR / "gaze.json").unlink()
    before = files_and_times(outdir)
    code, out = quickstart(outdir)
    assert code == 0, out
    after = files_and_times(outdir)
    assert "$ gcgan gaze fit" in out and "$ gcgan transfer fit --outdir" in out  # the interrupted fit resumes
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
