"""Cut-short image files are recognised; whole ones, with or without bytes after their end, are not."""

import cv2
import numpy as np
import pytest

from gcgan_cli.data.image_files import cut_short
from gcgan_cli.data.png import encode_png


def _noise(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "encode",
    [
        lambda image: encode_png(image),
        lambda image: cv2.imencode(".png", image)[1].tobytes(),
        lambda image: cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes(),
        lambda image: cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes(),
    ],
    ids=["png-ours", "png-opencv", "jpeg", "jpeg-progressive"],
)
def test_whole_files_pass_and_every_cut_is_caught(encode):
    data = encode(_noise())
    assert not cut_short(data)
    assert not cut_short(data + b"\x00\xff" * 8 + b"trailer")  # bytes some cameras append after the end
    for fraction in (0.3, 0.6, 0.9, 0.99):
        assert cut_short(data[: int(len(data) * fraction)]), fraction


def test_other_bytes_are_not_called_cut():
    assert not cut_short(b"")
    assert not cut_short(b"BM" + bytes(100))
