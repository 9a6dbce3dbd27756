"""What an evaluation prints and draws: error statistics, a histogram of the angular error beside
predicted-vs-true scatters of pitch and yaw (the usual check for a sign or axis mix-up), and for a
generator's consistency a heatmap of the error over a gaze grid and sweep sheets with arrows."""

from __future__ import annotations

import cv2
import numpy as np

from gcgan_cli.core.visualize import draw_gaze_arrow
from gcgan_cli.data.contact_sheet import GAP, tile
from gcgan_cli.data.masks import colorize

PANEL = 280
MARGIN = 34
HEAT_CELL = 64  # px per heatmap cell
SWEEP_CELL = 128  # least px per sweep image, so both arrows read
CAPTION = 18  # px per text line above a sweep sheet
CONDITIONING_RGB = (0, 200, 0)
ESTIMATE_RGB = (230, 0, 0)


def error_stats(errors: np.ndarray) -> dict:
    return {"count": int(len(errors)), "mean": float(np.mean(errors)), "median": float(np.median(errors)),
            "std": float(np.std(errors)), "p90": float(np.percentile(errors, 90))}


def axis_error_stats(predicted: np.ndarray, true: np.ndarray) -> dict:
    """error_stats of |predicted - true| in degrees per axis: a sign flip or a squashed range shows
    on one axis where the angular error mixes both."""
    errors = np.degrees(np.abs(np.asarray(predicted, np.float64) - np.asarray(true, np.float64)))
    return {"pitch_error_deg": error_stats(errors[:, 0]), "yaw_error_deg": error_stats(errors[:, 1])}


def _text(image: np.ndarray, text: str, origin: tuple[int, int], ink: tuple[int, int, int] = (0, 0, 0)) -> None:
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.4, ink, 1, cv2.LINE_AA)


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


def grid_plot(pitch: list[float], yaw: list[float], error_deg: list[list[float]]) -> np.ndarray:
    """RGB heatmap of error_deg [pitch][yaw], rows pitch, columns yaw, centres given in
    radians and labelled in degrees; each cell annotated, colour from 0 (dark) to the largest error."""
    errors = np.asarray(error_deg, np.float64)
    rows, cols = errors.shape
    left, top = 76, 52
    image = np.full((top + rows * HEAT_CELL + GAP, max(left + cols * HEAT_CELL + GAP, 400), 3), 255, np.uint8)
    _text(image, "mean angular error (deg); rows pitch, columns yaw", (GAP, 14))
    _text(image, "pitch\\yaw", (GAP, top - 12))
    scaled = np.clip(np.nan_to_num(errors) / max(float(np.nanmax(errors)), 1e-6) * 255, 0, 255).astype(np.uint8)
    colours = cv2.applyColorMap(scaled, cv2.COLORMAP_VIRIDIS)[..., ::-1]  # BGR -> RGB
    for j, value in enumerate(yaw):
        _text(image, f"{np.degrees(value):+.1f}", (left + j * HEAT_CELL + 10, top - 12))
    for i, value in enumerate(pitch):
        y = top + i * HEAT_CELL
        _text(image, f"{np.degrees(value):+.1f}", (GAP, y + HEAT_CELL // 2 + 4))
        for j in range(cols):
            x = left + j * HEAT_CELL
            cv2.rectangle(image, (x, y), (x + HEAT_CELL - 1, y + HEAT_CELL - 1), tuple(int(v) for v in colours[i, j]), -1)
            ink = (0, 0, 0) if scaled[i, j] > 150 else (255, 255, 255)  # viridis is light at its top end
            _text(image, f"{errors[i, j]:.1f}", (x + 12, y + HEAT_CELL // 2 + 4), ink)
    return image


def sweep_cell(image: np.ndarray, mask: np.ndarray, conditioning: list[float], estimate: list[float]) -> np.ndarray:
    """The image, enlarged (nearest) to at least SWEEP_CELL px, with the conditioning gaze (green)
    and the estimator's reading (red) drawn from its centre, beside its coloured mask."""
    scale = -(-SWEEP_CELL // min(image.shape[:2]))
    image, mask = (np.repeat(np.repeat(a, scale, axis=0), scale, axis=1) for a in (image, mask))
    shown = draw_gaze_arrow(image, *conditioning, colour=CONDITIONING_RGB)
    return np.concatenate([draw_gaze_arrow(shown, *estimate, colour=ESTIMATE_RGB), colorize(mask)], axis=1)


def sweep_sheet(cells: list[np.ndarray], gazes: list[list[float]], title: str) -> np.ndarray:
    """Cells row-major, one column per gaze in `gazes` [C] (pitch, yaw radians), under a title line
    and a caption per column with its gaze in degrees."""
    body = tile(cells, len(gazes))
    width = cells[0].shape[1]
    header = np.full((2 * CAPTION + GAP, body.shape[1], 3), 255, np.uint8)
    _text(header, f"{title}; green: conditioning gaze, red: estimate", (GAP, CAPTION - 5))
    for c, (pitch, yaw) in enumerate(gazes):
        _text(header, f"pitch {np.degrees(pitch):+.0f} yaw {np.degrees(yaw):+.0f}", (GAP + c * (width + GAP), 2 * CAPTION - 2))
    return np.concatenate([header, body], axis=0)
