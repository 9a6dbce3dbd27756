"""`gcgan export` (a checkpoint's G_ema as safetensors + config.json + model card), export folders read
wherever a checkpoint is (the same samples, byte for byte), damaged exports refused in one line,
`gcgan unpack` (a DB back to a PREP_DIR that packs into the same records), and checkpoint hygiene:
one atomic write, file modes from the umask, a bounded --keep."""

import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from faults import edited, files_of, one_error, packed, synthetic_prep

from gcgan_cli import checkpoint, cli
from gcgan_cli.core.synthesis import load_generator
from gcgan_cli.core.training.config import TrainConfig
from gcgan_cli.core.training.run_dir import RunDir
from gcgan_cli.data import gaze_db
from gcgan_cli.data.atomic import write_atomic
from gcgan_cli.errors import UsageError

CPU = ("--device", "cpu")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny DB, a 4-step checkpoint, its export, and a 1-epoch face estimator."""
    root = tmp_path_factory.mktemp("export")
    packed(synthetic_prep(root / "prep"), root / "db")
    for args in (
        [
            "train",
            "--data",
            root / "db",
            "--outdir",
            root / "run",
            "--preset",
            "tiny",
            "--workers",
            "0",
            "--iters",
            "4",
            "--viz-every",
            "0",
            *CPU,
        ],
        ["gaze", "fit", "--data", root / "db", "--out", root / "est.pt", "--epochs", "1", "--size", "16", *CPU],
    ):
        assert cli.run([str(a) for a in args]) == 0, args
    ckpt = root / "run" / "checkpoints" / "0000004.pt"
    assert cli.run(["export", "--network", str(ckpt), "--outdir", str(root / "model")]) == 0
    return {"root": root, "db": root / "db", "ckpt": ckpt, "model": root / "model", "est": root / "est.pt"}


def rows_of(folder):
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]


# --- export ---


@pytest.mark.slow
def test_export_writes_the_weights_the_config_and_a_model_card(world):
    model, record = world["model"], checkpoint.load_checkpoint(world["ckpt"])
    assert sorted(p.name for p in model.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    tensors = safetensors.torch.load_file(model / "model.safetensors")
    labels = tensors.pop("gaze_labels")
    assert torch.equal(labels, record["gaze_labels"].float())
    assert tensors.keys() == record["g_ema"].keys()
    assert all(torch.equal(tensors[name], value) for name, value in record["g_ema"].items())
    config = json.loads((model / "config.json").read_text())
    ckpt_sha = hashlib.sha256(world["ckpt"].read_bytes()).hexdigest()
    assert config["model"] == record["config"]["model"] and config["step"] == 4 and config["stage"] == 1
    assert config["kimg"] == 4 * 4 / 1000  # 4 steps x batch 4 on one process
    assert config["weights_sha256"] == hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest()
    assert config["source"] == {
        "checkpoint": str(world["ckpt"].resolve()),
        "sha256": ckpt_sha,
        "gcgan_version": record["gcgan_version"],
    }
    assert config["training_data"]["path"] == str(world["db"].resolve())
    assert config["metrics"] == {}  # the run measured nothing
    assert config["gaze_labels"]["count"] == len(labels) == 16
    assert config["gaze_labels"]["pitch"] == [float(labels[:, 0].min()), float(labels[:, 0].max())]
    if (ROOT / ".git").exists():
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        assert config["exported_by"]["git_revision"] == head.strip()
    card = (model / "README.md").read_text()
    for text in (
        "| steps | 4 (stage 1) |",
        "| kimg | 0.016 ",
        "| FID | not measured |",
        "| KID | not measured |",
        "| gaze consistency (deg) | not measured |",
        ckpt_sha,
        config["exported_by"]["git_revision"],
        "kind, count and inputs_sha256 not recorded",
        str(world["db"].resolve()),
    ):
        assert text in card, text


@pytest.mark.slow
def test_the_card_reports_what_the_run_measured_at_the_checkpoint_step(world, tmp_path, run_cli):
    run = tmp_path / "run"
    shutil.copytree(world["ckpt"].parent.parent, run)
    with open(run / "metrics.jsonl", "a") as handle:
        for row in (
            {"step": 2, "fid500": 999.0},
            {"step": 4, "fid500": 123.456, "kid500": 0.01234, "d": 0.5},
            {"step": 4, "gaze_consistency_deg": 7.25, "fidelity": 1.0},
        ):
            handle.write(json.dumps(row) + "\n")
    code, out, err = run_cli("export", "--network", run / "checkpoints" / "0000004.pt", "--outdir", tmp_path / "m")
    assert code == 0, err
    assert json.loads((tmp_path / "m" / "config.json").read_text())["metrics"] == {
        "fid500": 123.456,
        "kid500": 0.01234,
        "gaze_consistency_deg": 7.25,
    }
    card = (tmp_path / "m" / "README.md").read_text()
    for text in (
        "| FID | fid500 123.5 |",
        "| KID | kid500 0.01234 |",
        "| gaze consistency (deg) | gaze_consistency_deg 7.25 |",
    ):
        assert text in card, text
    assert "999" not in card and "fid500 123.5, kid500 0.01234, gaze_consistency_deg 7.25" in out


@pytest.mark.slow
def test_export_refuses_other_checkpoints_and_existing_folders(world, tmp_path, run_cli):
    estimator = world["est"]
    code, _, err = run_cli("export", "--network", estimator, "--outdir", tmp_path / "m")
    one_error(err, str(estimator), "not a `gcgan train` checkpoint", "gcgan-gaze-estimator")
    code, _, err = run_cli("export", "--network", tmp_path / "missing.pt", "--outdir", tmp_path / "m")
    one_error(err, "missing.pt does not exist")
    code, _, err = run_cli("export", "--network", world["model"], "--outdir", tmp_path / "m")
    one_error(err, "is an export already")
    assert code == 2 and not (tmp_path / "m").exists()
    code, _, err = run_cli("export", "--network", world["ckpt"], "--outdir", world["model"])
    one_error(err, "already holds an export", "--overwrite")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, _, err = run_cli("export", "--network", world["ckpt"], "--outdir", other, "--overwrite")
    one_error(err, "not a gcgan export", "refusing to replace")
    code, _, err = run_cli("export", "--network", world["ckpt"], "--outdir", world["ckpt"].parent, "--overwrite")
    one_error(err, "holds --network")
    again = tmp_path / "again"
    shutil.copytree(world["model"], again)
    (again / "README.md").write_text("stale")
    assert run_cli("export", "--network", world["ckpt"], "--outdir", again, "--overwrite")[0] == 0
    assert files_of(again) == files_of(world["model"])  # the same export again, whole
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [".again.lock"]  # no temp folder


# --- an export wherever a checkpoint goes ---


@pytest.mark.slow
def test_an_export_loads_the_same_generator(world):
    cpu = torch.device("cpu")
    from_ckpt = load_generator(world["ckpt"], cpu)
    for path in (world["model"], world["model"] / "model.safetensors"):
        loaded = load_generator(path, cpu)
        assert loaded.config == from_ckpt.config and loaded.step == 4
        assert torch.equal(loaded.gaze_labels, from_ckpt.gaze_labels)
        assert loaded.gaze_loss_model is None and from_ckpt.gaze_loss_model is None
        assert loaded.sha256 == hashlib.sha256((world["model"] / "model.safetensors").read_bytes()).hexdigest()
        state, expected = loaded.generator.state_dict(), from_ckpt.generator.state_dict()
        assert state.keys() == expected.keys() and all(torch.equal(state[k], expected[k]) for k in state)
    with pytest.raises(UsageError, match="holds G_ema only"):
        load_generator(world["model"], cpu, ema=False)


@pytest.mark.slow
def test_samples_from_the_checkpoint_and_its_export_are_byte_identical(world, tmp_path, run_cli):
    for name, network in (
        ("ckpt", world["ckpt"]),
        ("export", world["model"]),
        ("weights", world["model"] / "model.safetensors"),
    ):
        code, _, err = run_cli(
            "sample",
            "--network",
            network,
            "--outdir",
            tmp_path / name,
            "--n",
            "5",
            "--batch",
            "2",
            "--save-latent",
            *CPU,
        )
        assert code == 0, err
    reference = files_of(tmp_path / "ckpt")
    assert len(reference) == 5 * 4 + 3  # image, mask, colour mask, latent; contact sheet, metadata, manifest
    for name in ("export", "weights"):
        files = files_of(tmp_path / name)
        assert files.keys() == reference.keys()
        assert {k: v for k, v in files.items() if k != "samples.jsonl"} == {
            k: v for k, v in reference.items() if k != "samples.jsonl"
        }
        source = {"checkpoint", "checkpoint_sha256"}
        assert [{k: v for k, v in row.items() if k not in source} for row in rows_of(tmp_path / name)] == [
            {k: v for k, v in row.items() if k not in source} for row in rows_of(tmp_path / "ckpt")
        ]
        assert {row["checkpoint_sha256"] for row in rows_of(tmp_path / name)} == {
            load_generator(world["model"], torch.device("cpu")).sha256
        }


@pytest.mark.slow
def test_interpolate_and_gaze_consistency_take_an_export(world, tmp_path, run_cli):
    latent = tmp_path / "latent.npy"
    np.save(latent, np.random.default_rng(0).standard_normal((13, 32)).astype(np.float32))
    for name, network in (("ckpt", world["ckpt"]), ("export", world["model"])):
        code, _, err = run_cli(
            "interpolate",
            "--network",
            network,
            "--latent",
            latent,
            "--outdir",
            tmp_path / name,
            "--component",
            "iris",
            "--frames",
            "3",
            "--keyframes",
            "2",
            "--gaze",
            "0,0",
            *CPU,
        )
        assert code == 0, err
    assert files_of(tmp_path / "export") == files_of(tmp_path / "ckpt")
    results = []
    for network in (world["ckpt"], world["model"]):
        code, out, err = run_cli(
            "gaze", "consistency", "--network", network, "--model", world["est"], "--n", "4", "--json", *CPU
        )
        assert code == 0, err
        results.append({k: v for k, v in json.loads(out).items() if k != "checkpoint"})
    assert "recorded" in results[0] and "recorded" not in results[1]  # the checkpoint's run keeps the measure
    del results[0]["recorded"]
    assert results[0] == results[1]


@pytest.mark.slow
def test_the_gaze_loss_model_survives_the_export_and_is_still_refused_as_a_judge(world, tmp_path, run_cli):
    record = checkpoint.load_checkpoint(world["ckpt"])
    own = tmp_path / "run" / "checkpoints" / "0000004.pt"
    checkpoint.save_checkpoint(
        own, {**record, "gaze_loss_model": {"path": str(world["est"]), "sha256": checkpoint.file_sha256(world["est"])}}
    )
    assert run_cli("export", "--network", own, "--outdir", tmp_path / "m")[0] == 0
    assert "gaze loss model | `" in (tmp_path / "m" / "README.md").read_text()
    code, _, err = run_cli(
        "gaze", "consistency", "--network", tmp_path / "m", "--model", world["est"], "--n", "2", *CPU
    )
    one_error(err, "was in this generator's training loss (gaze loss)")


def _rewrite_weights(folder, change):
    """Apply `change(tensors)` to the export's weights, keep its metadata, and record the new sha256
    in config.json: a file that passes the hash check but not the load."""
    path = folder / "model.safetensors"
    with safetensors.safe_open(str(path), framework="pt") as handle:
        metadata, tensors = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}
    change(tensors)
    path.write_bytes(safetensors.torch.save(tensors, metadata=metadata))
    config = json.loads((folder / "config.json").read_text())
    config["weights_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / "config.json").write_text(json.dumps(config))


def _edit_config(folder, change):
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


def _first_weight(tensors):
    name = next(k for k in tensors if k != "gaze_labels")
    tensors[name] = torch.zeros(3, 3)


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage, file, words",
    [
        (lambda f: (f / "model.safetensors").unlink(), "model.safetensors", ("does not exist", "not a whole")),
        (lambda f: (f / "config.json").unlink(), "config.json", ("does not exist",)),
        (lambda f: (f / "config.json").write_text("{cut"), "config.json", ("not valid JSON",)),
        (
            lambda f: _edit_config(f, lambda c: c["model"].update(gaze_mean=[0.5, 0.5])),
            "config.json",
            ("differs from the one", "edited?"),
        ),
        (lambda f: _edit_config(f, lambda c: c["model"].update(size="32")), "config.json", ("size = '32'", "integer")),
        (lambda f: _edit_config(f, lambda c: c.update(format_version=9)), "config.json", ("format version 9",)),
        (lambda f: _edit_config(f, lambda c: c.update(step="4")), "config.json", ("step '4' is not an integer",)),
        (
            lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:-100]),
            "model.safetensors",
            ("sha256 differs", "changed or damaged"),
        ),
        (lambda f: _rewrite_weights(f, _first_weight), "model.safetensors", ("do not fit", "size mismatch")),
        (
            lambda f: _rewrite_weights(f, lambda t: t.pop("gaze_labels")),
            "model.safetensors",
            ("no gaze_labels tensor",),
        ),
    ],
)
def test_a_damaged_export_is_one_line_naming_the_file(world, tmp_path, run_cli, damage, file, words):
    folder = tmp_path / "model"
    shutil.copytree(world["model"], folder)
    damage(folder)
    code, out, err = run_cli("sample", "--network", folder, "--outdir", tmp_path / "out", "--n", "1", *CPU)
    assert code == 2 and out == ""
    one_error(err, str(folder / file), *words)
    assert not (tmp_path / "out").exists()


# --- unpack ---


def records_of(db):
    """(name, image bytes, mask bytes, gaze) of every record, in order."""
    meta = gaze_db.read_meta(db)
    with gaze_db.reader(db).begin() as txn:
        records = [gaze_db.read_record(txn, i, db) for i in range(meta.count)]
    return meta, [(r.name, r.image_png, r.mask_png, r.gaze) for r in records]


@pytest.mark.slow
@pytest.mark.parametrize("unlabelled", [False, True])
def test_unpack_then_pack_rebuilds_the_same_records(world, tmp_path, run_cli, unlabelled):
    db = world["db"] if not unlabelled else packed(world["root"] / "prep", tmp_path / "udb", 32, "--unlabelled")
    code, out, err = run_cli("unpack", "--data", db, "--outdir", tmp_path / "prep")
    assert code == 0, err
    meta, records = records_of(db)
    manifest = [json.loads(line) for line in (tmp_path / "prep" / "manifest.jsonl").read_text().splitlines()]
    assert [(row["name"], row["pitch"], row["yaw"]) for row in manifest] == [
        (name, *(gaze or (None, None))) for name, _, _, gaze in records
    ]
    for name, image, mask, _ in records:
        assert (tmp_path / "prep" / "rgb" / f"{name}.png").read_bytes() == image
        assert (tmp_path / "prep" / "mask" / f"{name}.png").read_bytes() == mask
    assert f"--size 32 --classes {','.join(meta.class_names)}" in out
    again = packed(tmp_path / "prep", tmp_path / "again", 32)
    meta_again, records_again = records_of(again)
    assert records_again == records and len(records) == 16
    assert (
        (meta_again.count, meta_again.size, meta_again.class_names, meta_again.labelled)
        == (meta.count, meta.size, meta.class_names, meta.labelled)
        == (16, 32, meta.class_names, not unlabelled)
    )
    if not unlabelled:
        assert (again / gaze_db.LABELS_FILE).read_bytes() == (db / gaze_db.LABELS_FILE).read_bytes()


@pytest.mark.slow
def test_unpack_refuses_in_one_line_and_leaves_nothing(world, tmp_path, run_cli):
    code, _, err = run_cli("unpack", "--data", tmp_path / "none", "--outdir", tmp_path / "out")
    one_error(err, f"{tmp_path / 'none'} does not exist")
    code, _, err = run_cli("unpack", "--data", world["db"], "--outdir", world["db"] / "prep")
    one_error(err, "overlap")
    assert code == 2 and not (tmp_path / "out").exists() and not (world["db"] / "prep").exists()
    prep = tmp_path / "prep"
    assert run_cli("unpack", "--data", world["db"], "--outdir", prep)[0] == 0
    code, _, err = run_cli("unpack", "--data", world["db"], "--outdir", prep)
    one_error(err, "already holds a PREP_DIR", "--overwrite")
    (prep / "rgb" / "extra.png").write_bytes(b"stale")
    assert run_cli("unpack", "--data", world["db"], "--outdir", prep, "--overwrite")[0] == 0
    assert not (prep / "rgb" / "extra.png").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, _, err = run_cli("unpack", "--data", world["db"], "--outdir", other, "--overwrite")
    one_error(err, "not a PREP_DIR", "refusing to replace")
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, words",
    [
        ("../escape", ("record 0's name '../escape'", "cannot be a file name")),
        (".hidden", ("cannot be a file name",)),
        ("SECOND", ("two records are named",)),
    ],
)
def test_unpack_refuses_names_that_cannot_be_files(world, tmp_path, run_cli, name, words):
    with gaze_db.reader(world["db"]).begin() as txn:
        second = gaze_db.read_name(txn, 1, world["db"])
    name = second if name == "SECOND" else name
    db = edited(world["db"], tmp_path / "db", lambda txn: txn.put(gaze_db.key("name", 0), name.encode()))
    code, _, err = run_cli("unpack", "--data", db, "--outdir", tmp_path / "out")
    one_error(err, str(db), *words)
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


# --- checkpoint hygiene ---


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_mode_of_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        files = [
            write_atomic(tmp_path / "a.bin", b"x"),
            write_atomic(tmp_path / "b.bin", b"y", durable=True),
            checkpoint.save_checkpoint(tmp_path / "c.pt", {"step": 1}),
        ]
    finally:
        os.umask(old)
    assert [stat.S_IMODE(f.stat().st_mode) for f in files] == [0o666 & ~umask] * 3


def test_durable_writes_fsync_the_file_then_its_folder(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_atomic(tmp_path / "plain.png", b"x")
    assert synced == []
    checkpoint.save_checkpoint(tmp_path / "ckpt.pt", {"step": 1})
    assert synced == ["file", "folder"]


def test_a_failed_write_keeps_the_old_file_and_no_temp_file(tmp_path):
    path = write_atomic(tmp_path / "f.json", b"old")

    def half(handle):
        handle.write(b"ne")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, half)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_keep_defaults_to_five_and_zero_keeps_every_checkpoint(tmp_path):
    assert TrainConfig().keep == 5
    run = RunDir(tmp_path)
    run.create()
    steps = [1, 2, 3, 9_999_999, 10_000_000, 10_000_001, 4, 5]
    for step in steps:
        run.checkpoint_path(step).write_bytes(b"")
    run.prune(0)
    assert len(run.checkpoint_files()) == len(steps)
    run.prune(TrainConfig().keep)
    assert [int(p.stem) for p in run.checkpoint_files()] == [4, 5, 9_999_999, 10_000_000, 10_000_001]
