"""Golden slices: a few output values of the tiny G and D at fixed seeds, recorded in fp32 on the
CPU, so that a change to the numerics (an op, an init, an optimised path) fails here even where
every shape and every test of equal forms still passes. An intended change records new values."""

import pytest
import torch

from gcgan_cli.core.model import Discriminator, Generator, preset

TINY = preset("tiny")
GAZE = torch.tensor([[0.1, -0.3], [-0.2, 0.4]])
TOLERANCE = 1e-5  # fp32; thread counts and CPU kinds move these values by < 1e-6

# Recorded with torch.manual_seed(0) before G, torch.manual_seed(1) before D, one thread.
IMAGE_ROW = [  # image[0, :, 0, :4]
    [0.03155687, 0.01914701, -0.01576225, -0.03423809],
    [0.10967904, 0.12792814, 0.13110538, 0.12235633],
    [0.01126283, 0.00405537, -0.00985367, -0.02355751],
]
SEG_ROW = [  # seg[0, :, 0, :2]
    [-0.29486308, -0.37767339],
    [-0.27040574, -0.38589302],
    [-0.15581274, -0.22818503],
    [-0.37371927, -0.49528456],
    [-0.55034721, -0.80669647],
    [-0.39377519, -0.48211837],
]
D_LOGITS = [0.20631324, 0.17752624]


@pytest.fixture(scope="module")
def inputs():
    """z [2, style_dim], then an image and a segmentation in [-1, 1] for D, from one seeded stream."""
    stream = torch.Generator().manual_seed(2)
    z = torch.randn(2, TINY.style_dim, generator=stream)
    image = torch.rand(2, 3, TINY.size, TINY.size, generator=stream) * 2 - 1
    seg = torch.rand(2, TINY.seg_dim, TINY.size, TINY.size, generator=stream) * 2 - 1
    return z, image, seg


def close(actual, expected):
    torch.testing.assert_close(actual, torch.tensor(expected), rtol=0, atol=TOLERANCE)


@torch.no_grad()
def test_tiny_generator_gives_the_recorded_values(one_thread, inputs):
    torch.manual_seed(0)
    g = Generator(TINY)
    out = g(inputs[0], GAZE, randomize_noise=False)  # the noise buffers drawn at construction
    close(out.image[0, :, 0, :4], IMAGE_ROW)
    close(out.seg[0, :, 0, :2], SEG_ROW)


@torch.no_grad()
def test_tiny_discriminator_gives_the_recorded_logits(one_thread, inputs):
    torch.manual_seed(1)
    d = Discriminator(TINY, gaze=True)
    close(d(inputs[1], inputs[2], GAZE).flatten(), D_LOGITS)
