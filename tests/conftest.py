"""Shared test setup: GPU-only tests skip without CUDA; `run_cli` runs the CLI in-process; a FID
weights file with random weights."""

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
