"""Shared test setup: GPU-only tests skip without CUDA; `one_thread`; `run_cli` runs the CLI in-process; a FID
weights file with random weights; for the fault tests, a mounted tmpfs and another process holding
a writer lock."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from gcgan_cli import cli
from gcgan_cli.core.metrics import inception_weights
from gcgan_cli.core.metrics.inception import FidInception


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_thread():
    """One CPU thread, so the sums run in one order; the caller's setting comes back after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def run_cli(capsys):
    """Run the CLI in this process: (exit code, stdout, stderr)."""

    def run(*args):
        code = cli.run([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def variance_keeping(model: nn.Module) -> nn.Module:
    """Random weights that keep activations alive through 90 layers (torch's default shrinks
    them to ~0, which would make every statistic trivially equal)."""
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return model.eval()


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory):
    """A FID Inception weights file in the release's layout, with random weights (the real ones
    cannot be downloaded here)."""
    path = tmp_path_factory.mktemp("weights") / inception_weights.WEIGHTS_FILE
    state = variance_keeping(FidInception()).state_dict()
    state["fc.weight"], state["fc.bias"] = torch.randn(1008, 2048), torch.zeros(1008)  # as in the release
    torch.save(state, path)
    return path


@pytest.fixture
def tmpfs(tmp_path):
    """tmpfs(options, name=None) -> a fresh folder under tmp_path (`name`, or mntN) with a tmpfs
    mounted on it (`mount -o OPTIONS`; we run as root); the test is skipped where mounting fails.
    Every mount is undone at teardown, the last first."""
    mounted = []

    def mount(options: str, name: str | None = None) -> Path:
        folder = tmp_path / (name or f"mnt{len(mounted)}")
        folder.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)


HOLD_LOCK = """
import sys
from pathlib import Path
from gcgan_cli.outputs import writer_lock
with writer_lock(Path(sys.argv[1]), sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def lock_holder():
    """hold(folder, command="test") -> another process holding `folder`'s writer lock as
    `gcgan COMMAND` until its stdin closes (at teardown, or when the test kills it)."""
    holders = []

    def hold(folder, command: str = "test") -> subprocess.Popen:
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(folder), command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        holders.append(holder)
        assert holder.stdout.readline().strip() == "held", f"the lock holder ended (exit {holder.wait()})"
        return holder

    yield hold
    for holder in reversed(holders):
        holder.stdin.close()
        try:
            holder.wait(timeout=10)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()
        holder.stdout.close()
