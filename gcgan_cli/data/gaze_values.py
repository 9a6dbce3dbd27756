"""Gaze values where they enter gcgan: (pitch, yaw) pairs in radians, finite, within the range
an eye can look (|pitch| <= pi/2, |yaw| <= pi). Values beyond it are almost always degrees typed
where radians belong, and the message says so.
"""

from __future__ import annotations

import math

import numpy as np

from gcgan_cli.errors import DatasetError, GcganError

PITCH_LIMIT = math.pi / 2
YAW_LIMIT = math.pi
_TOLERANCE = 1e-6  # float32 rounding of a value on the limit


def check_gaze(values, where: str, error: type[GcganError] = DatasetError) -> np.ndarray:
    """`values` as float64 [N, 2] (pitch, yaw), or `error` naming `where` and the first bad row."""
    return _checked(values, where, error, rows=True)


def check_pair(pitch: float, yaw: float, where: str, error: type[GcganError] = DatasetError) -> tuple[float, float]:
    """One (pitch, yaw) checked like `check_gaze`."""
    row = _checked([[pitch, yaw]], where, error, rows=False)[0]
    return float(row[0]), float(row[1])


def _checked(values, where: str, error: type[GcganError], rows: bool) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise error(f"{where}: gaze must be numbers (pitch, yaw in radians)") from None
    if array.ndim == 1 and array.shape[0] == 2:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != 2:
        hint = (
            "; a [N, 3] array is a gaze vector: convert it to (pitch, yaw) first"
            if array.ndim == 2 and array.shape[1] == 3
            else ""
        )
        raise error(f"{where}: expected gaze as [N, 2] (pitch, yaw) in radians, got shape {list(array.shape)}{hint}")
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        count = f" ({int((~finite).sum())} such row(s)); fix or drop them" if rows else ""
        raise error(f"{where}: {_value(array, row, rows)} is not finite{count}")
    outside = (np.abs(array[:, 0]) > PITCH_LIMIT + _TOLERANCE) | (np.abs(array[:, 1]) > YAW_LIMIT + _TOLERANCE)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise error(
            f"{where}: {_value(array, row, rows)} is outside |pitch| <= pi/2, |yaw| <= pi; "
            f"values up to {np.abs(array).max():.4g} look like degrees, and gcgan reads radians "
            "(divide degrees by 57.2958)"
        )
    return array


def _value(array: np.ndarray, row: int, rows: bool) -> str:
    values = ", ".join(f"{v:g}" for v in array[row])
    return f"row {row} ({values})" if rows else f"({values})"
