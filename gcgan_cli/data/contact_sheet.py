"""A grid of strips, each beside its mask overlay: what a person checks a dataset with."""

from __future__ import annotations

import numpy as np

from gcgan_cli.data.eye_crop import band_rows
from gcgan_cli.data.masks import overlay

GAP = 4


def contact_sheet(pairs: list[tuple[np.ndarray, np.ndarray]], columns: int = 2) -> np.ndarray:
    """RGB image of (strip, mask) pairs laid out `columns` wide; black bands cropped away."""
    if not pairs:
        raise ValueError("no strips to show")
    size = pairs[0][0].shape[0]
    top, bottom = band_rows(size)
    tiles = [np.concatenate([rgb[top:bottom], np.full((bottom - top, GAP, 3), 255, np.uint8),
                             overlay(rgb, mask)[top:bottom]], axis=1) for rgb, mask in pairs]
    height, width = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * (height + GAP) + GAP, columns * (width + GAP) + GAP, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        y, x = GAP + (i // columns) * (height + GAP), GAP + (i % columns) * (width + GAP)
        sheet[y : y + height, x : x + width] = tile
    return sheet
