"""The GC-GAN networks: configuration, generator, discriminators."""

from gcgan_cli.core.model.config import PRESETS, ModelConfig, preset
from gcgan_cli.core.model.discriminator import Discriminator
from gcgan_cli.core.model.generator import Generator, GeneratorOutput

__all__ = ["PRESETS", "Discriminator", "Generator", "GeneratorOutput", "ModelConfig", "preset"]
