"""Gaze angles: (pitch, yaw) in radians, ETH-XGaze's convention, which FP-GAN shares
(no minus signs, unlike several other gaze codebases):

    vector = (cos p sin y, sin p, cos p cos y)        pitch = asin(v_y / |v|), yaw = atan2(v_x, v_z)

The angular error between two gazes is the angle between their unit vectors, in degrees.
"""

from __future__ import annotations

import numpy as np


def to_vector(pitch_yaw: np.ndarray) -> np.ndarray:
    """[..., 2] (pitch, yaw) -> [..., 3] unit vectors."""
    pitch_yaw = np.asarray(pitch_yaw, dtype=np.float64)
    pitch, yaw = pitch_yaw[..., 0], pitch_yaw[..., 1]
    return np.stack([np.cos(pitch) * np.sin(yaw), np.sin(pitch), np.cos(pitch) * np.cos(yaw)], axis=-1)


def to_pitch_yaw(vector: np.ndarray) -> np.ndarray:
    """[..., 3] vectors (any length > 0) -> [..., 2] (pitch, yaw)."""
    vector = np.asarray(vector, dtype=np.float64)
    norm = np.linalg.norm(vector, axis=-1)
    return np.stack(
        [np.arcsin(np.clip(vector[..., 1] / norm, -1, 1)), np.arctan2(vector[..., 0], vector[..., 2])], axis=-1
    )


def angular_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Degrees between gazes a and b, [..., 2] each (float64; the cosine is clipped to [-1, 1])."""
    cosine = np.sum(to_vector(a) * to_vector(b), axis=-1)
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def unity_look_vec(x: float, y: float, z: float) -> tuple[float, float]:
    """UnityEyes' `look_vec` -> (pitch, yaw): pitch = asin(y/|v|), yaw = atan2(-x, -z) (the camera
    looks along -z there: z < 0 in every real UnityEyes sample, where this equals the FP-GAN original's
    atan2(-x, z) folded by pi). A zero or non-finite vector has no direction: ValueError."""
    norm = float(np.sqrt(x * x + y * y + z * z))
    if not (np.isfinite(norm) and norm > 0):
        raise ValueError(f"({x}, {y}, {z}) has no direction")
    return float(np.arcsin(y / norm)), float(np.arctan2(-x, -z))
