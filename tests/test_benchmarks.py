"""The benchmarks' baselines must keep doing the extra work they stand for as the trainer changes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from gcgan_cli.core.model.discriminator import Discriminator
from gcgan_cli.core.training.config import resolve
from gcgan_cli.core.training.trainer import Trainer

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def benchmark(name: str):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def one_iteration(trainer: Trainer, monkeypatch) -> tuple[int, int]:
    """(D forward passes, host reads of a tensor) in one iteration at a step with no lazy regulariser."""
    counts = {"d": 0, "item": 0}
    forward, item = Discriminator.forward, torch.Tensor.item

    def counted_forward(self, *args, **kwargs):
        counts["d"] += 1
        return forward(self, *args, **kwargs)

    def counted_item(self):
        counts["item"] += 1
        return item(self)

    trainer.step = 1
    with monkeypatch.context() as patch:
        patch.setattr(Discriminator, "forward", counted_forward)
        patch.setattr(torch.Tensor, "item", counted_item)
        trainer.iteration()
    return counts["d"], counts["item"]


@pytest.mark.slow
def test_the_reference_style_loop_adds_its_wasted_d_pass_and_a_sync_per_loss(tmp_path, monkeypatch, one_thread):
    train = benchmark("train")
    db = train.make_db(tmp_path, 32)
    options = dict(preset="tiny", size=32, dataset=str(db), batch=4, iters=10, log_every=10**6, viz_every=0)
    options.update(save_every=0, fid_every=0, device="cpu", workers=0, precision="fp32")
    ours = one_iteration(Trainer(resolve({**options, "checkpoint_dir": str(tmp_path / "a")})), monkeypatch)
    reference = one_iteration(
        train.ReferenceStyle(resolve({**options, "checkpoint_dir": str(tmp_path / "b")})), monkeypatch
    )
    assert reference[0] == ours[0] + 1  # D(real, wrong gaze), dropped
    assert ours[1] == 0 and reference[1] >= 6  # every logged value of the D and G phases, every step
