"""Shared test setup: GPU-only tests skip without CUDA; builds go to a temp cache; `run_cli` runs the CLI in-process."""

import pytest
import torch

from gcgan_cli import cli


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
