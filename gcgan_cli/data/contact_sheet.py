"""A grid of strips, each beside its mask overlay: what a person checks a dataset with; and the
grid layout itself, shared with the generator's sample grids."""

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
    tiles = [
        np.concatenate(
            [rgb[top:bottom], np.full((bottom - top, GAP, 3), 255, np.uint8), overlay(rgb, mask)[top:bottom]], axis=1
        )
        for rgb, mask in pairs
    ]
    return tile(tiles, columns)


def tile(tiles: list[np.ndarray], columns: int, gap: int = GAP) -> np.ndarray:
    """Equal-sized RGB tiles in a white-separated grid, `columns` wide."""
    height, width = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * (height + gap) + gap, columns * (width + gap) + gap, 3), 255, np.uint8)
    for i, image in enumerate(tiles):
        y, x = gap + (i // columns) * (height + gap), gap + (i % columns) * (width + gap)
        sheet[y : y + height, x : x + width] = image
    return sheet
