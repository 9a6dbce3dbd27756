"""--device resolution: the one place device strings become torch.device."""

import pytest
import torch

from gcgan_cli.device import place, place_images, resolve_device
from gcgan_cli.errors import UsageError


def test_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    assert resolve_device(" AUTO ") == expected


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "cpu:1", "auto:0", "cuda:-1", "", "mps:0"])
def test_malformed_values_name_the_option(spec):
    with pytest.raises(UsageError, match="--device .* is not valid"):
        resolve_device(spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu():
    with pytest.raises(UsageError, match="no CUDA GPU"):
        resolve_device("cuda")


@pytest.mark.cuda
def test_cuda_indices():
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(UsageError, match="only"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_mps_where_torch_reports_it(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("MPS") == torch.device("mps")


def test_mps_refused_in_one_line_where_torch_has_none(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(
        UsageError, match=r"^--device mps: torch .* sees no Apple MPS GPU on this machine; use --device cpu"
    ):
        resolve_device("mps")


def test_auto_never_picks_mps(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    expected = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    assert resolve_device("auto") == expected


def test_batches_take_the_layout_of_the_networks_on_the_cpu():
    """place() and place_images() agree, so a network's first convolution reads a batch without a copy."""
    cpu = torch.device("cpu")
    conv = place(torch.nn.Conv2d(3, 4, 3), cpu)
    batch = place_images(torch.rand(2, 3, 8, 8), cpu)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert batch.is_contiguous(memory_format=torch.channels_last) and not batch.is_contiguous()
    assert conv(batch).is_contiguous(memory_format=torch.channels_last)
