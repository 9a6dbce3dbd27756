"""GC-GAN training: options, losses, the loop, distributed helpers, the run folder."""
