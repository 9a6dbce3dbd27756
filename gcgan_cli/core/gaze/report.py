"""What an evaluation prints and draws: error statistics, and a histogram of the angular error
beside predicted-vs-true scatters of pitch and yaw (the usual check for a sign or axis mix-up)."""

from __future__ import annotations

import cv2
import numpy as np

PANEL = 280
MARGIN = 34


def error_stats(errors: np.ndarray) -> dict:
    return {"count": int(len(errors)), "mean": float(np.mean(errors)), "median": float(np.median(errors)),
            "std": float(np.std(errors)), "p90": float(np.percentile(errors, 90))}


def _panel(title: str) -> np.ndarray:
    panel = np.full((PANEL + 2 * MARGIN, PANEL + 2 * MARGIN, 3), 255, np.uint8)
    cv2.rectangle(panel, (MARGIN, MARGIN), (MARGIN + PANEL, MARGIN + PANEL), (0, 0, 0), 1)
    cv2.putText(panel, title, (MARGIN, MARGIN - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return panel


def _histogram(errors: np.ndarray) -> np.ndarray:
    top = max(float(np.percentile(errors, 99)), 1e-3)
    counts, _ = np.histogram(np.clip(errors, 0, top), bins=28, range=(0, top))
    panel = _panel(f"error 0-{top:.1f} deg, mean {errors.mean():.2f}")
    width = PANEL / len(counts)
    for i, count in enumerate(counts):
        height = int(round(PANEL * count / max(counts.max(), 1)))
        x = MARGIN + int(i * width)
        cv2.rectangle(panel, (x, MARGIN + PANEL - height), (x + int(width) - 1, MARGIN + PANEL), (70, 110, 200), -1)
    return panel


def _scatter(predicted: np.ndarray, true: np.ndarray, name: str) -> np.ndarray:
    predicted, true = np.degrees(predicted), np.degrees(true)
    low, high = float(min(predicted.min(), true.min())), float(max(predicted.max(), true.max()))
    span = max(high - low, 1e-3)
    panel = _panel(f"{name}: pred (y) vs true (x), {low:.0f}..{high:.0f} deg")
    to_px = lambda v: MARGIN + (v - low) / span * PANEL  # noqa: E731
    cv2.line(panel, (MARGIN, MARGIN + PANEL), (MARGIN + PANEL, MARGIN), (160, 160, 160), 1, cv2.LINE_AA)  # y = x
    for t, p in zip(true, predicted):
        cv2.circle(panel, (int(to_px(t)), int(2 * MARGIN + PANEL - to_px(p))), 2, (200, 60, 40), -1, cv2.LINE_AA)
    return panel


def plot(predicted: np.ndarray, true: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """RGB [H, W, 3]: error histogram | pitch scatter | yaw scatter."""
    return np.concatenate([_histogram(errors), _scatter(predicted[:, 0], true[:, 0], "pitch"),
                           _scatter(predicted[:, 1], true[:, 1], "yaw")], axis=1)
