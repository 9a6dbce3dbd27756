"""The GC-GAN networks: configuration, generator, discriminators.

The networks are imported on first use (PEP 562), so the config (a torch-free dataclass) can be read without
torch: `gcgan train --help` shows the presets' defaults.
"""

import importlib

from gcgan_cli.core.model.config import PRESETS, ModelConfig, preset

__all__ = ["PRESETS", "Discriminator", "Generator", "GeneratorOutput", "ModelConfig", "preset"]
_NETWORKS = {"Discriminator": "discriminator", "Generator": "generator", "GeneratorOutput": "generator"}


def __getattr__(name: str):
    if name in _NETWORKS:
        return getattr(importlib.import_module(f"{__name__}.{_NETWORKS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
