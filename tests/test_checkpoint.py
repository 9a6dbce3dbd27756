"""Checkpoint core: atomic plain-dict save, safe load, clear errors, RNG round trip."""

import argparse
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gcgan_cli import checkpoint
from gcgan_cli.errors import CheckpointError


def _touch(path):
    """What a malicious pickle would run on load; the test checks it never does."""
    Path(path).write_text("executed")
    return "payload"


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (_touch, (self.marker,))


def training_payload():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.LeakyReLU(0.2), nn.Linear(8, 2))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, betas=(0.0, 0.99))
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    return {
        "models": {"G": model.state_dict()},
        "optimizers": {"G": opt.state_dict()},
        "config": {"size": 32, "classes": ["bg", "skin"], "lr": 2e-3, "residual_refine": True},
        "step": 1234,
        "mean_path_length": torch.tensor(0.5),
        "rng": checkpoint.capture_rng_state(),
    }


def test_round_trip_restores_everything(tmp_path):
    payload = training_payload()
    path = checkpoint.save_checkpoint(tmp_path / "run" / "ckpt.pt", payload)
    loaded = checkpoint.load_checkpoint(path, required=["models", "step", "config"])
    assert loaded["format"] == checkpoint.FORMAT_NAME
    assert loaded["format_version"] == checkpoint.FORMAT_VERSION
    assert loaded["step"] == 1234 and loaded["config"] == payload["config"]
    for key, value in payload["models"]["G"].items():
        torch.testing.assert_close(loaded["models"]["G"][key], value, rtol=0, atol=0)
    model = nn.Sequential(nn.Linear(4, 8), nn.LeakyReLU(0.2), nn.Linear(8, 2))
    model.load_state_dict(loaded["models"]["G"])
    opt = torch.optim.Adam(model.parameters())
    opt.load_state_dict(loaded["optimizers"]["G"])
    assert opt.param_groups[0]["betas"] == (0.0, 0.99)
    assert [p.name for p in tmp_path.joinpath("run").iterdir()] == ["ckpt.pt"], "no temp files left"


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = checkpoint.save_checkpoint(tmp_path / "ckpt.pt", {"step": 1})

    def crash(obj, handle):
        handle.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert checkpoint.load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_truncated_file_gives_a_clear_error(tmp_path):
    path = checkpoint.save_checkpoint(tmp_path / "ckpt.pt", training_payload())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"ckpt\.pt is truncated or corrupt"):
        checkpoint.load_checkpoint(path)


def test_pickled_object_is_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": checkpoint.FORMAT_NAME, "format_version": 1, "x": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="refused"):
        checkpoint.load_checkpoint(path)
    assert not marker.exists()
    # The file really is armed: an unsafe load would have run the payload.
    torch.load(path, weights_only=False)
    assert marker.read_text() == "executed"


@pytest.mark.parametrize(
    "content,match",
    [
        ({"weights": torch.ones(2)}, "not a gcgan checkpoint"),
        ([1, 2, 3], "not a gcgan checkpoint"),
        ({"format": checkpoint.FORMAT_NAME, "format_version": 99}, "format version 99"),
    ],
)
def test_foreign_or_other_version_files(tmp_path, content, match):
    path = tmp_path / "other.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=match):
        checkpoint.load_checkpoint(path)


def test_garbage_and_missing_files(tmp_path):
    garbage = tmp_path / "noise.pt"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match="noise.pt"):
        checkpoint.load_checkpoint(garbage)
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load_checkpoint(tmp_path / "absent.pt")


def test_required_keys_are_named(tmp_path):
    path = checkpoint.save_checkpoint(tmp_path / "c.pt", {"step": 3})
    with pytest.raises(CheckpointError, match="lacks required entries: models, config"):
        checkpoint.load_checkpoint(path, required=["step", "models", "config"])


def test_save_refuses_what_could_not_be_loaded_safely(tmp_path):
    with pytest.raises(TypeError, match=r"checkpoint\['args'\] is a Namespace"):
        checkpoint.save_checkpoint(tmp_path / "c.pt", {"args": argparse.Namespace(size=256)})
    with pytest.raises(TypeError, match="not JSON-able"):
        checkpoint.save_checkpoint(tmp_path / "c.pt", {"config": {"size": torch.tensor(1)}})
    assert not any(tmp_path.iterdir())


def test_load_maps_to_the_requested_device(tmp_path):
    path = checkpoint.save_checkpoint(tmp_path / "c.pt", {"w": torch.ones(3)})
    assert checkpoint.load_checkpoint(path, map_location=torch.device("cpu"))["w"].device.type == "cpu"


def test_rng_state_survives_a_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.standard_normal()  # leave a cached Gaussian behind
    path = checkpoint.save_checkpoint(tmp_path / "c.pt", {"rng": checkpoint.capture_rng_state()})
    expected = (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3).tolist())
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    checkpoint.restore_rng_state(checkpoint.load_checkpoint(path)["rng"])
    assert (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3).tolist()) == expected
