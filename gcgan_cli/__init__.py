"""gcgan: gaze-labelled face data from few labels (GC-GAN + FP-GAN), as one command."""

from importlib import metadata

try:
    __version__ = metadata.version("gcgan")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"
