"""Bad input and faults in `gcgan train` and its checkpoints: a damaged or edited checkpoint, a
wrong-typed or out-of-range option, a second writer, a full disk and an unwritable output folder
each end in one `error:` line (exit 2) that names the file or option, with nothing half-written.

A kill -9 of train and the re-run after it are covered by test_train.py
(test_kill_9_never_leaves_a_broken_checkpoint_and_the_run_resumes)."""

import copy
import json
import re
import shutil
import subprocess
import zipfile

import numpy as np
import pytest
import torch
from faults import files_of, one_error, packed, synthetic_prep

from gcgan_cli import checkpoint, cli, outputs
from gcgan_cli.checkpoint import load_checkpoint
from gcgan_cli.core.training.trainer import Trainer
from gcgan_cli.data import gaze_db
from gcgan_cli.errors import DiskFullError, UsageError

# Slow: every test but the last reads `data`, which trains a stage-1 run.
pytestmark = [pytest.mark.faults, pytest.mark.slow]

TINY = ["--preset", "tiny", "--workers", "0", "--batch", "4", "--viz-every", "0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A labelled and an unlabelled 16-record DB at 32 px, and a 2-step tiny stage-1 run."""
    root = tmp_path_factory.mktemp("faults_train")
    synthetic_prep(root / "prep")
    for name, extra in (("db", []), ("dbu", ["--unlabelled"])):
        packed(root / "prep", root / name, 32, *extra)
    assert cli.run(["train", "--data", str(root / "db"), "--outdir", str(root / "stage1"), *TINY, "--iters", "2"]) == 0
    return root


def stage1_checkpoint(data):
    return data / "stage1" / "checkpoints" / "0000002.pt"


def copy_run(data, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(data / "stage1", run)
    return run


# --- damaged checkpoints ---


def damage(source, kind, path):
    data = source.read_bytes()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "half":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    else:  # a zip whose first tensor record is missing
        with zipfile.ZipFile(source) as zin, zipfile.ZipFile(path, "w") as zout:
            for info in zin.infolist():
                if not info.filename.endswith("/data/0"):
                    zout.writestr(info, zin.read(info))
    return path


DAMAGE = {
    "empty": "is empty (0 bytes)",
    "half": "is truncated or corrupt",
    "random": "is truncated or corrupt",
    "missing-member": "is truncated or corrupt",
}


@pytest.mark.parametrize("command", ["train", "sample", "gaze-eval"])
@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_a_damaged_checkpoint_is_one_line_naming_it(data, tmp_path, run_cli, kind, command):
    bad = damage(stage1_checkpoint(data), kind, tmp_path / "bad.pt")
    before = sorted(p.name for p in tmp_path.iterdir())
    if command == "train":
        code, _, err = run_cli(
            "train",
            "--stage",
            "2",
            "--data",
            data / "dbu",
            "--network",
            bad,
            "--outdir",
            tmp_path / "run",
            "--workers",
            "0",
            "--iters",
            "1",
        )
        assert not (tmp_path / "run").exists()
    elif command == "sample":
        code, _, err = run_cli("sample", "--network", bad, "--outdir", tmp_path / "out", "--n", "1")
        assert sorted(p.name for p in tmp_path.iterdir()) == before
    else:
        code, _, err = run_cli("gaze", "eval", "--model", bad, "--data", data / "db")
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # no plot beside the model
    assert code == 2, err
    one_error(err, bad, DAMAGE[kind])


def test_resume_from_a_damaged_latest_checkpoint_names_it_and_changes_nothing(data, tmp_path, run_cli):
    run = copy_run(data, tmp_path)
    latest = run / "checkpoints" / "0000002.pt"
    shutil.copy(latest, run / "checkpoints" / "0000001.pt")
    damage(stage1_checkpoint(data), "half", latest)
    before = files_of(run)
    code, _, err = run_cli("train", "--resume", "--outdir", run, "--iters", "3")
    assert code == 2, err
    one_error(err, latest, "truncated or corrupt", "to resume from 0000001.pt, move 0000002.pt out of")
    assert files_of(run) == before


# --- edited checkpoint configs ---


def _set(key, value):
    return lambda config: config["model"].__setitem__(key, value)


EDITS = {
    "wrong-type": (_set("size", "eight"), "size = 'eight' must be an integer"),
    "wrong-list": (_set("class_names", ["background", 1]), "must be a list of strings"),
    "unknown-key": (_set("colour", 3), "unknown field(s) colour"),
    "missing-key": (lambda config: config["model"].pop("style_dim"), "missing field(s) style_dim"),
    "no-model": (lambda config: config.pop("model"), "no 'model' entry"),
    "weights-misfit": (_set("style_dim", 64), "do not fit its model config"),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edited_checkpoint_config_names_the_file_and_the_key(data, tmp_path, run_cli, edit):
    change, expected = EDITS[edit]
    record = torch.load(stage1_checkpoint(data), weights_only=True)
    record["config"] = copy.deepcopy(record["config"])
    change(record["config"])
    edited = tmp_path / "edited.pt"
    torch.save(record, edited)
    code, _, err = run_cli(
        "train",
        "--stage",
        "2",
        "--data",
        data / "dbu",
        "--network",
        edited,
        "--outdir",
        tmp_path / "run",
        "--workers",
        "0",
        "--iters",
        "1",
    )
    assert code == 2, err
    one_error(err, f"checkpoint {edited}", expected)
    assert not (tmp_path / "run").exists()


# --- option values ---


@pytest.mark.parametrize(
    "line,expected",
    [
        ('batch = "eight"', "batch = 'eight' must be an integer"),
        ("batch = true", "batch = True must be an integer"),
        ("size = 32.0", "size = 32.0 must be an integer"),
        ('lr = "fast"', "lr = 'fast' must be a number"),
        ("mirror = 1", "mirror = 1 must be true or false"),
        ('precision = ["fp32"]', "must be a string"),
    ],
)
def test_a_wrong_typed_toml_value_names_the_file_and_the_key(data, tmp_path, run_cli, line, expected):
    toml = tmp_path / "run.toml"
    toml.write_text(f'dataset = "{data / "db"}"\n{line}\n')
    code, _, err = run_cli("train", "--config", toml, "--outdir", tmp_path / "run", *TINY, "--iters", "1")
    assert code == 2, err
    one_error(err, "run.toml", expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.toml"]


def test_an_int_in_toml_is_taken_for_a_float(data, tmp_path, run_cli):
    toml = tmp_path / "run.toml"
    toml.write_text("lr = 1\nmixing = 0\n")
    code, out, err = run_cli(
        "train", "--config", toml, "--data", data / "db", "--outdir", tmp_path / "run", "--dry-run"
    )
    assert code == 0, err
    resolved = json.loads(out)
    assert resolved["lr"] == 1 and resolved["mixing"] == 0


def test_a_wrong_typed_config_json_on_resume_names_the_file_and_the_key(data, tmp_path, run_cli):
    run = copy_run(data, tmp_path)
    stored = json.loads((run / "config.json").read_text())
    stored["train"]["batch"] = "eight"
    (run / "config.json").write_text(json.dumps(stored))
    before = files_of(run)
    code, _, err = run_cli("train", "--resume", "--outdir", run, "--iters", "3")
    assert code == 2, err
    one_error(err, run / "config.json", "batch = 'eight' must be an integer")
    assert files_of(run) == before


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--size", "0"], "--size 0: must be a power of two >= 32"),
        (["--size", "48"], "--size 48: must be a power of two"),
        (["--size", "16"], "--size 16: must be a power of two >= 32"),
        (["--seg-dim", "0"], "--seg-dim 0: must be >= 2"),
        (["--seg-dim", "1"], "--seg-dim 1: must be >= 2"),
        (["--batch", "0"], "--batch 0: must be >= 1"),
        (["--iters", "0"], "--iters 0: must be >= 1"),
        (["--lr", "0"], "--lr 0.0: must be a finite number > 0"),
        (["--lambda-mask", "-1"], "--lambda-mask -1.0: must be a finite number >= 0"),
        (["--r1-seg", "nan"], "--r1-seg nan: must be a finite number >= 0"),
        (["--mixing", "1.5"], "--mixing 1.5: must be in [0, 1]"),
        (["--unbroken-fraction", "-0.1"], "--unbroken-fraction -0.1: must be in [0, 1]"),
        (["--save-every", "-1"], "--save-every -1: must be >= 0"),
        (["--preset", "huge"], "--preset huge: choose one of"),
    ],
)
def test_an_out_of_range_option_is_refused_before_anything_is_written(data, tmp_path, run_cli, args, expected):
    code, _, err = run_cli("train", "--data", data / "db", "--outdir", tmp_path / "run", *TINY, "--iters", "1", *args)
    assert code == 2, err
    one_error(err, expected)
    assert list(tmp_path.iterdir()) == []


def test_an_unbroken_class_the_model_lacks_is_refused_before_the_run_folder_exists(data, tmp_path, run_cli):
    code, _, err = run_cli(
        "train",
        "--stage",
        "2",
        "--data",
        data / "dbu",
        "--network",
        stage1_checkpoint(data),
        "--outdir",
        tmp_path / "run",
        "--workers",
        "0",
        "--iters",
        "1",
        "--unbroken-class",
        "pupil",
    )
    assert code == 2, err
    one_error(err, "--unbroken-class pupil", "iris")
    assert not (tmp_path / "run").exists()


def test_a_label_set_of_another_count_is_refused(data, tmp_path, run_cli):
    db = tmp_path / "db"
    shutil.copytree(data / "db", db)
    labels = np.load(db / gaze_db.LABELS_FILE)
    assert len(labels) == 16
    np.save(db / gaze_db.LABELS_FILE, labels[:10])
    code, _, err = run_cli("train", "--data", db, "--outdir", tmp_path / "run", *TINY, "--iters", "1")
    assert code == 2, err
    one_error(err, db / gaze_db.LABELS_FILE, "10", "16")
    assert not (tmp_path / "run").exists()


# --- output folder, second writer, full disk ---


def test_a_checkpoint_dir_that_is_a_file_is_refused(data, tmp_path, run_cli):
    blocker = tmp_path / "taken"
    blocker.write_text("mine")
    for target in (blocker, blocker / "run"):
        code, _, err = run_cli("train", "--data", data / "db", "--outdir", target, *TINY, "--iters", "1")
        assert code == 2, err
        one_error(err, f"--outdir {target}", "a file", "give a folder path")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"] and blocker.read_text() == "mine"


def test_a_read_only_checkpoint_dir_is_refused_before_any_work(data, tmpfs, run_cli):
    place = tmpfs("ro,size=1m")
    code, _, err = run_cli("train", "--data", data / "db", "--outdir", place / "run", *TINY, "--iters", "1")
    assert code == 2, err
    one_error(err, "--outdir", place, "cannot write there")
    assert list(place.iterdir()) == []


def test_a_second_writer_stops_at_once(data, tmp_path, run_cli, lock_holder):
    run = tmp_path / "run"
    holder = lock_holder(run, "train")
    code, _, err = run_cli("train", "--data", data / "db", "--outdir", run, *TINY, "--iters", "1")
    assert code == 2, err
    one_error(err, "another gcgan is writing", run, f"pid {holder.pid}")
    assert not run.exists()


def test_train_holds_the_lock_until_its_last_checkpoint(data, tmp_path, run_cli, monkeypatch):
    run, probes = tmp_path / "run", []
    save = Trainer.save

    def probed_save(self):
        try:
            with outputs.writer_lock(run, "probe"):
                probes.append("free")
        except UsageError as exc:
            probes.append(str(exc))
        return save(self)

    monkeypatch.setattr(Trainer, "save", probed_save)
    code, _, err = run_cli("train", "--data", data / "db", "--outdir", run, *TINY, "--iters", "2", "--save-every", "1")
    assert code == 0, err
    assert len(probes) == 2 and all("another gcgan is writing" in p and "gcgan train, pid" in p for p in probes), probes


def test_a_full_disk_keeps_the_last_checkpoint_and_resume_continues(data, tmpfs, run_cli):
    """1.6 MB holds one tiny checkpoint (about 1.1 MB) but not two."""
    run = tmpfs("size=1600k")
    code, _, err = run_cli("train", "--data", data / "db", "--outdir", run, *TINY, "--iters", "2", "--save-every", "1")
    assert code == 2, err
    one_error(err, f"disk full at {run / 'checkpoints'}", "run the same command again")
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["0000001.pt"]  # the temp file is gone
    assert load_checkpoint(run / "checkpoints" / "0000001.pt")["step"] == 1
    subprocess.run(["mount", "-o", "remount,size=4m", str(run)], check=True)
    code, _, err = run_cli("train", "--resume", "--outdir", run)
    assert code == 0, err
    assert load_checkpoint(run / "checkpoints" / "0000002.pt")["step"] == 2


def test_a_full_disk_while_writing_a_sample_grid_leaves_no_part_of_it(data, tmpfs, run_cli):
    """16 KB holds the run's config.json but not a sample grid."""
    run = tmpfs("size=16k")
    code, _, err = run_cli("train", "--data", data / "db", "--outdir", run, *TINY, "--iters", "1", "--viz-every", "1")
    assert code == 2, err
    one_error(err, f"disk full at {run / 'samples'}")
    assert list((run / "samples").iterdir()) == []


def test_an_opaque_torch_save_error_on_a_full_disk_is_a_disk_full_error(tmp_path, monkeypatch):
    """torch.save reports a full disk as `unexpected pos`, without an errno: little free space decides."""
    path = checkpoint.save_checkpoint(tmp_path / "ckpt.pt", {"step": 1, "w": torch.ones(1000)})
    before = path.read_bytes()

    def full(record, handle):
        handle.write(b"part of a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:778] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(outputs, "free_bytes", lambda path: 4096)
    with pytest.raises(DiskFullError, match=re.escape(f"disk full at {tmp_path}")):
        checkpoint.save_checkpoint(path, {"step": 2, "w": torch.ones(1000)})
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"] and path.read_bytes() == before
    monkeypatch.setattr(outputs, "free_bytes", lambda path: 1 << 40)  # plenty of space: the error is not hidden
    with pytest.raises(RuntimeError, match="unexpected pos"):
        checkpoint.save_checkpoint(path, {"step": 2})
