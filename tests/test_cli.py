"""The `gcgan` command: help, version, doctor, and one-line errors for user mistakes."""

import json
import subprocess
import sys

import pytest
import torch

import gcgan_cli
from gcgan_cli import cli
from gcgan_cli.core import environment
from gcgan_cli.errors import UsageError


def run_cli(capsys, *args):
    code = cli.run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_explains_the_pipeline(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    order = [out.index(word) for word in ("segment", "pack", "inception", "train", "sample", "interpolate")]
    assert order == sorted(order), "the pipeline is listed in order"
    assert "transfer" in out and "gaze" in out and "doctor" in out and "GCGAN_DEBUG" in out


def test_version(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.strip() == f"gcgan {gcgan_cli.__version__}"


def test_the_version_answers_without_importing_torch():
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gcgan_cli", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == f"gcgan {gcgan_cli.__version__}"
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines() if "|" in line}
    assert "gcgan_cli" in imported and not imported & {"torch", "cv2", "typer", "numpy"}


HELP_WALK = """
import json, sys
import typer.main
from gcgan_cli import cli

def walk(command, path):
    yield path
    for name, sub in getattr(command, "commands", {}).items():  # a group's subcommands
        yield from walk(sub, [*path, name])

first = "import gcgan_cli.cli" if "torch" in sys.modules else None
codes = {}
for args in [[*path, "--help"] for path in walk(typer.main.get_command(cli.app), [])] + [["--version"]]:
    codes[" ".join(args)] = cli.run(args)
    if first is None and "torch" in sys.modules:
        first = " ".join(args)
print(json.dumps({"codes": codes, "torch_first": first, "torch": "torch" in sys.modules}))
"""


def test_help_of_every_command_imports_no_torch():
    """`gcgan --help`, every command's and subcommand's --help and --version answer without torch (a second
    or more to import); the commands are listed from the app, so a new one is covered too."""
    done = subprocess.run([sys.executable, "-c", HELP_WALK], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert {"--help", "train --help", "gaze fit --help", "transfer eval --help", "--version"} <= set(result["codes"])
    assert {args: code for args, code in result["codes"].items() if code != 0} == {}
    assert not result["torch"], f"torch was imported by: {result['torch_first']}"


def test_doctor_reports_and_exits_zero(capsys):
    code, out, _ = run_cli(capsys, "doctor", "--device", "cpu")
    assert code == 0
    for part in ("Python", "torch", "ops (reference)", "mediapipe", "FID Inception", "disk"):
        assert part in out
    assert "core OK" in out


def test_doctor_fails_when_the_core_is_broken(capsys, monkeypatch):
    monkeypatch.setattr("gcgan_cli.core.ops_check.reference_vectors", lambda: ["upfirdn2d blur[0,0]=9.0≠0.3125"])
    code, out, _ = run_cli(capsys, "doctor", "--device", "cpu")
    assert code == 1 and "core broken" in out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["doctor", "--device", "gpu7"], "--device 'gpu7' is not valid"),
        (["doctor", "--bogus"], "No such option: --bogus"),
        (["segmnt"], "No such command 'segmnt'"),
    ],
)
def test_user_mistakes_are_one_line_exit_2(capsys, args, needle):
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert "Traceback" not in err + out


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_a_missing_gpu_is_a_user_mistake(capsys):
    code, _, err = run_cli(capsys, "doctor", "--device", "cuda:0")
    assert code == 2 and "no CUDA GPU" in err and len(err.strip().splitlines()) == 1


def test_gcgan_errors_become_one_line_and_debug_shows_them(capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise UsageError("--dataset /nope: no such folder")

    monkeypatch.setattr(environment, "run_checks", broken)
    code, _, err = run_cli(capsys, "doctor", "--device", "cpu")
    assert code == 2 and err.strip() == "error: --dataset /nope: no such folder"
    monkeypatch.setenv("GCGAN_DEBUG", "1")
    with pytest.raises(UsageError):
        cli.run(["doctor", "--device", "cpu"])


def test_bugs_say_how_to_get_the_traceback(capsys, monkeypatch):
    def bug(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(environment, "run_checks", bug)
    code, _, err = run_cli(capsys, "doctor", "--device", "cpu")
    assert code == 1 and "ZeroDivisionError" in err and "GCGAN_DEBUG=1" in err


@pytest.mark.slow
def test_installed_entry_point_runs():
    """The console script's target, through a fresh interpreter as a user would run it."""
    result = subprocess.run(
        [sys.executable, "-m", "gcgan_cli", "doctor", "--device", "tpu"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --device 'tpu' is not valid: use auto, cpu, cuda, cuda:N or mps"
    ]
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "gcgan"]
    assert script.value == "gcgan_cli.entry:main"


def _help(*command: str) -> str:
    """A command's --help as a terminal 200 columns wide shows it (rich wraps to the width)."""
    result = subprocess.run(
        [sys.executable, "-m", "gcgan_cli", *command, "--help"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "COLUMNS": "200"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.replace("│", " ").split())


def test_train_help_shows_the_train_config_defaults():
    from gcgan_cli.core.training.config import TrainConfig

    text = _help("train")
    defaults = TrainConfig()
    for flag, value in (
        ("--batch", defaults.batch),
        ("--iters", defaults.iters),
        ("--keep", defaults.keep),
        ("--lr", defaults.lr),
        ("--preset", defaults.preset),
        ("--swap-check", defaults.swap_check),
    ):
        after = text[text.index(f"{flag} ") :]
        assert f"[default: {value}]" in after[:400], (flag, after[:400])
    assert "[default: the preset's (ref256: 256)]" in text and "[default: 10 x (size / 256)^2]" in text
    for panel in ("Data and run", "Model", "Schedule", "Regularisation", "Gaze conditioning", "Distributed and device"):
        assert panel in text


@pytest.mark.slow
def test_bracketed_shapes_survive_rich_markup():
    assert "compact W+ [rows, style_dim] float32" in _help("sample")
    assert "(compact W+ [rows, style_dim], or a w [style_dim])" in _help("interpolate")
    assert "[default: 150000]" in _help("transfer", "fit")


def test_every_command_shows_examples_that_use_its_real_options():
    """Each example line names a registered command and only options that command has."""
    import typer.main

    from gcgan_cli.commands.examples import EXAMPLES

    root = typer.main.get_command(cli.app)
    for name, lines in EXAMPLES.items():
        command = root
        for part in name.split():
            command = command.commands[part]
        known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        assert command.epilog and "Examples" in command.epilog, name
        for line in lines:
            words = line.split()
            assert words[: 1 + len(name.split())] == ["gcgan", *name.split()], line
            assert {w for w in words if w.startswith("-")} <= known, (line, sorted(known))
    registered = {c.name for c in cli.app.registered_commands} | {g.name for g in cli.app.registered_groups}
    assert {name.split()[0] for name in EXAMPLES} == registered


@pytest.mark.parametrize("command", ["train", "transfer fit"])
def test_every_option_field_of_a_config_is_an_option_showing_the_dataclass_default(command):
    """`gcgan train`'s and `gcgan transfer fit`'s options are built from their config's fields: a new field is a
    new flag, and the default in its help is the dataclass's (written once)."""
    import dataclasses

    import typer

    from gcgan_cli.core.training.config import TrainConfig
    from gcgan_cli.core.transfer.config import TransferConfig

    schema = {"train": TrainConfig, "transfer fit": TransferConfig}[command]
    found = typer.main.get_command(cli.app)
    for part in command.split():
        found = found.commands[part]
    params = {param.name: param for param in found.params}
    fields = [f for f in dataclasses.fields(schema) if "help" in f.metadata]
    assert len(fields) > 30 and {f.name for f in fields} <= set(params)
    for spec in fields:
        assert params[spec.name].default is None, spec.name  # only flags given override a TOML or a stored config
        if isinstance(spec.default, (int, str)) and not isinstance(spec.default, bool) and spec.default != "":
            assert f"[default: {spec.default}]" in params[spec.name].help, spec.name
    if command == "train":
        assert params["ckpt"].opts == ["--network"] and params["mirror"].secondary_opts == ["--no-mirror"]
        assert "[default: 0.5]" in params["d_gaze_mismatch"].help and "[default: off]" in params["augment"].help
    else:
        assert params["net_d"].opts == ["--netD"] and params["crop_jitter"].secondary_opts == ["--no-crop-jitter"]
        assert "real_label" not in params  # a field without option metadata is set in a file only
