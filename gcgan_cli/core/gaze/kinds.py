"""What gaze estimators and gaze sources come in, torch-free, so that `gcgan gaze --help` can list them.

The estimator architectures with the inputs each reads (`estimator.build` refuses other pairs), and the kinds
of gaze source with how each is recognised on disk, first match wins (`sources.open_source` opens it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gcgan_cli.data import translated_set
from gcgan_cli.data.pack_inputs import SAMPLES

ARCH_INPUTS = {"small": ("face", "eye"), "resnet18": ("face",), "gazenet": ("eye",), "gazenet-slim": ("eye",)}
ARCHS = tuple(ARCH_INPUTS)
INPUTS = ("face", "eye")


@dataclass(frozen=True)
class Kind:
    name: str
    detect: Callable[[Path], bool]


KINDS = (
    Kind("db", lambda p: p.is_dir() and (p / "data.mdb").is_file()),
    Kind("samples", lambda p: p.is_dir() and (p / SAMPLES).is_file()),
    Kind("mpii", lambda p: p.is_file() and p.suffix in (".h5", ".hdf5")),
    Kind("translated", translated_set.is_translated_set),  # before unityeyes: it holds a .json too
    Kind("unityeyes", lambda p: p.is_dir() and any(p.glob("*.json"))),
)
