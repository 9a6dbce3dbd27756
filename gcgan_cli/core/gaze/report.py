"""What an evaluation prints and draws: error statistics, a histogram of the angular error beside
predicted-vs-true scatters of pitch and yaw (the usual check for a sign or axis mix-up), and for a
generator's consistency a heatmap of the error over a gaze grid and sweep sheets with arrows.

The plots are matplotlib figures (axes with ticks, labels in degrees, a y = x line, a colour bar)
where matplotlib is installed; it is optional, and without it a plainer drawing of the same
panels (end ticks, axis titles) stands in. Either way they come back as RGB arrays."""

from __future__ import annotations

import cv2
import numpy as np

from gcgan_cli.core.visualize import draw_gaze_arrow
from gcgan_cli.data.contact_sheet import GAP, tile
from gcgan_cli.data.masks import colorize

DPI = 100
EVAL_INCHES = (13.5, 4.3)  # the matplotlib eval figure: three panels side by side
HIST_BINS = 28
ERROR_TOP = 99  # percentile: the histogram's range ends here, larger errors fall in its last bin
ANNOTATE_CELLS = 144  # grid cells up to which each is labelled with its error
GRID_INCHES = (16.0, 12.0)  # the largest grid figure, whatever the grid
PANEL = 280  # px of a hand-drawn plot area
LEFT, RIGHT, TOP, BOTTOM = 60, 16, 30, 44  # px around it: tick labels and the y title left, the x title below
TICK = 4  # px of a tick mark
HEAT_CELL = 64  # px per heatmap cell
HEAT_LEFT, HEAT_TOP = 96, 70  # px left of and above the hand-drawn heatmap: titles and tick labels
SCALE_BAR = 14  # px height of its colour bar
SWEEP_CELL = 128  # least px per sweep image, so both arrows read
CAPTION = 18  # px per text line above a sweep sheet
CONDITIONING_RGB = (0, 200, 0)
ESTIMATE_RGB = (230, 0, 0)
INK = (0, 0, 0)
FONT, FONT_SCALE = cv2.FONT_HERSHEY_SIMPLEX, 0.4


def error_stats(errors: np.ndarray) -> dict:
    return {
        "count": int(len(errors)),
        "mean": float(np.mean(errors)),
        "median": float(np.median(errors)),
        "std": float(np.std(errors)),
        "p90": float(np.percentile(errors, 90)),
    }


def axis_error_stats(predicted: np.ndarray, true: np.ndarray) -> dict:
    """error_stats of |predicted - true| in degrees per axis: a sign flip or a squashed range shows
    on one axis where the angular error mixes both."""
    errors = np.degrees(np.abs(np.asarray(predicted, np.float64) - np.asarray(true, np.float64)))
    return {"pitch_error_deg": error_stats(errors[:, 0]), "yaw_error_deg": error_stats(errors[:, 1])}


def _figure(inches: tuple[float, float]):
    """An empty matplotlib Figure on an Agg canvas (no pyplot: no global backend or state), or None
    where matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    figure = Figure(figsize=inches, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _pixels(figure) -> np.ndarray:
    """RGB [H, W, 3] uint8 of a figure drawn on its Agg canvas."""
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def _error_top(errors: np.ndarray) -> float:
    return max(float(np.percentile(errors, ERROR_TOP)), 1e-3)


def _degrees_range(predicted: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(predicted, true) in degrees and the range both share, never empty."""
    predicted, true = np.degrees(predicted), np.degrees(true)
    low, high = float(min(predicted.min(), true.min())), float(max(predicted.max(), true.max()))
    return predicted, true, low, max(high, low + 1e-3)


def eval_figure(predicted: np.ndarray, true: np.ndarray, errors: np.ndarray):
    """The eval plot as a matplotlib Figure (None without matplotlib): the angular error histogram
    (errors above the 99th percentile in the last bin), then predicted vs true pitch and yaw in
    degrees with the y = x line a perfect estimator would lie on."""
    figure = _figure(EVAL_INCHES)
    if figure is None:
        return None
    histogram, *scatters = figure.subplots(1, 3)
    top = _error_top(errors)
    histogram.hist(np.clip(errors, 0, top), bins=HIST_BINS, range=(0, top), color="#4673c8")
    for value, name, style in ((np.mean(errors), "mean", "--"), (np.median(errors), "median", ":")):
        histogram.axvline(value, color="black", linestyle=style, linewidth=1, label=f"{name} {value:.2f} deg")
    histogram.set(
        title=f"angular error, {len(errors)} samples",
        ylabel="samples",
        xlim=(0, top),
        xlabel=f"angular error (deg, clipped at the {ERROR_TOP}th percentile)",
    )
    histogram.legend()
    for axes, axis, name in ((scatters[0], 0, "pitch"), (scatters[1], 1, "yaw")):
        shown, truth, low, high = _degrees_range(predicted[:, axis], true[:, axis])
        pad = 0.05 * (high - low)
        axes.plot([low - pad, high + pad], [low - pad, high + pad], color="0.6", linewidth=1, label="y = x")
        axes.scatter(truth, shown, s=9, alpha=0.6, color="#c83c28", edgecolors="none")
        axes.set(
            title=f"{name}: mean |error| {np.mean(np.abs(shown - truth)):.2f} deg",
            xlabel=f"true {name} (deg)",
            ylabel=f"predicted {name} (deg)",
            xlim=(low - pad, high + pad),
            ylim=(low - pad, high + pad),
            aspect="equal",
        )
        axes.legend(loc="upper left")
    return figure


def grid_figure(pitch: list[float], yaw: list[float], error_deg: list[list[float]]):
    """The consistency grid as a matplotlib Figure (None without matplotlib): error_deg
    [pitch][yaw] as a heatmap, rows pitch and columns yaw in the order the table prints them,
    ticks at the cell centres in degrees, each cell labelled where they are few, and a colour
    bar from 0 to the largest error."""
    errors = np.asarray(error_deg, np.float64)
    rows, cols = errors.shape
    inches = (max(5.5, 2.2 + 0.7 * cols), max(4.0, 1.4 + 0.55 * rows))
    figure = _figure((min(inches[0], GRID_INCHES[0]), min(inches[1], GRID_INCHES[1])))
    if figure is None:
        return None
    axes = figure.subplots()
    top = _heat_top(errors)
    image = axes.imshow(errors, cmap="viridis", vmin=0, vmax=top, aspect="auto")
    axes.set_xticks(range(cols), [f"{np.degrees(v):+.1f}" for v in yaw])
    axes.set_yticks(range(rows), [f"{np.degrees(v):+.1f}" for v in pitch])
    axes.set(
        title="mean angular error per conditioning gaze",
        xlabel="conditioning yaw (deg)",
        ylabel="conditioning pitch (deg)",
    )
    if rows * cols <= ANNOTATE_CELLS:
        for (i, j), value in np.ndenumerate(errors):
            ink = "black" if value > 0.6 * top else "white"  # viridis is light at its top end
            axes.text(j, i, f"{value:.1f}", ha="center", va="center", color=ink, fontsize=8)
    figure.colorbar(image, ax=axes, label="mean angular error (deg)")
    return figure


def _heat_top(errors: np.ndarray) -> float:
    """The colour scale's top: the largest error (NaN cells aside), never 0."""
    return max(float(np.nanmax(errors)) if np.isfinite(errors).any() else 0.0, 1e-6)


def _viridis(levels: np.ndarray) -> np.ndarray:
    """RGB of uint8 levels [H, W] on the viridis scale."""
    return cv2.applyColorMap(levels, cv2.COLORMAP_VIRIDIS)[..., ::-1]  # BGR -> RGB


def _text(image: np.ndarray, text: str, origin: tuple[int, int], ink: tuple[int, int, int] = INK) -> None:
    cv2.putText(image, text, origin, FONT, FONT_SCALE, ink, 1, cv2.LINE_AA)


def _text_width(text: str) -> int:
    return cv2.getTextSize(text, FONT, FONT_SCALE, 1)[0][0]


def _vertical_text(image: np.ndarray, text: str, x: int, centre_y: int) -> None:
    """`text` reading bottom to top, its baseline at column x + 12, centred on row centre_y."""
    strip = np.full((16, _text_width(text) + 4, 3), 255, np.uint8)
    _text(strip, text, (2, 12))
    strip = np.rot90(strip)[: image.shape[0]]  # a quarter turn anticlockwise, cut to the image's height
    y = min(max(centre_y - strip.shape[0] // 2, 0), image.shape[0] - strip.shape[0])
    place = image[y : y + strip.shape[0], x : x + strip.shape[1]]
    place[...] = np.minimum(place, strip)


def _axes_panel(
    title: str,
    xlabel: str,
    ylabel: str,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    y_format: str = "{:.1f}",
) -> np.ndarray:
    """A white panel with a PANEL x PANEL frame, its title above, tick marks and labels at both
    ends of each axis, the x title below and the y title up its left side."""
    panel = np.full((TOP + PANEL + BOTTOM, LEFT + PANEL + RIGHT, 3), 255, np.uint8)
    cv2.rectangle(panel, (LEFT, TOP), (LEFT + PANEL, TOP + PANEL), INK, 1)
    _text(panel, title, (LEFT, TOP - 10))
    for x, value in ((LEFT, x_range[0]), (LEFT + PANEL, x_range[1])):
        label = f"{value:.1f}"
        cv2.line(panel, (x, TOP + PANEL), (x, TOP + PANEL + TICK), INK, 1)
        left = min(max(x - _text_width(label) // 2, 0), panel.shape[1] - _text_width(label))
        _text(panel, label, (left, TOP + PANEL + 17))
    for y, value in ((TOP + PANEL, y_range[0]), (TOP, y_range[1])):
        label = y_format.format(value)
        cv2.line(panel, (LEFT - TICK, y), (LEFT, y), INK, 1)
        _text(panel, label, (LEFT - TICK - 3 - _text_width(label), y + 4))
    _text(panel, xlabel, (LEFT + (PANEL - _text_width(xlabel)) // 2, TOP + PANEL + 36))
    _vertical_text(panel, ylabel, 2, TOP + PANEL // 2)
    return panel


def _histogram(errors: np.ndarray) -> np.ndarray:
    top = _error_top(errors)
    counts, _ = np.histogram(np.clip(errors, 0, top), bins=HIST_BINS, range=(0, top))
    most = max(int(counts.max()), 1)
    panel = _axes_panel(
        f"angular error, mean {errors.mean():.2f} deg",
        f"angular error (deg, top: {ERROR_TOP}th pct)",
        "samples",
        (0.0, top),
        (0, most),
        "{:d}",
    )
    width = PANEL / len(counts)
    for i, count in enumerate(counts):
        height = int(round(PANEL * count / most))
        x = LEFT + int(i * width)
        cv2.rectangle(panel, (x + 1, TOP + PANEL - height), (x + int(width) - 1, TOP + PANEL - 1), (70, 110, 200), -1)
    return panel


def _scatter(predicted: np.ndarray, true: np.ndarray, name: str) -> np.ndarray:
    predicted, true, low, high = _degrees_range(predicted, true)
    panel = _axes_panel(
        f"{name}: predicted vs true, grey y = x",
        f"true {name} (deg)",
        f"predicted {name} (deg)",
        (low, high),
        (low, high),
    )
    to_px = lambda v: (v - low) / (high - low) * PANEL  # noqa: E731
    cv2.line(panel, (LEFT, TOP + PANEL), (LEFT + PANEL, TOP), (160, 160, 160), 1, cv2.LINE_AA)  # y = x
    for t, p in zip(true, predicted):
        cv2.circle(panel, (int(LEFT + to_px(t)), int(TOP + PANEL - to_px(p))), 2, (200, 60, 40), -1, cv2.LINE_AA)
    return panel


def plot(predicted: np.ndarray, true: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """RGB [H, W, 3]: error histogram | pitch scatter | yaw scatter (eval_figure, else drawn by hand)."""
    figure = eval_figure(predicted, true, errors)
    if figure is not None:
        return _pixels(figure)
    return np.concatenate(
        [
            _histogram(errors),
            _scatter(predicted[:, 0], true[:, 0], "pitch"),
            _scatter(predicted[:, 1], true[:, 1], "yaw"),
        ],
        axis=1,
    )


def grid_plot(pitch: list[float], yaw: list[float], error_deg: list[list[float]]) -> np.ndarray:
    """RGB heatmap of error_deg [pitch][yaw] (grid_figure, else drawn by hand): rows pitch, columns
    yaw, centres given in radians and labelled in degrees; colour from 0 (dark) to the largest
    error, with a colour bar."""
    figure = grid_figure(pitch, yaw, error_deg)
    if figure is not None:
        return _pixels(figure)
    errors = np.asarray(error_deg, np.float64)
    rows, cols = errors.shape
    top = _heat_top(errors)
    bar_y = HEAT_TOP + rows * HEAT_CELL + 12
    image = np.full((bar_y + SCALE_BAR + 24, max(HEAT_LEFT + cols * HEAT_CELL + GAP, 420), 3), 255, np.uint8)
    _text(image, "mean angular error (deg) per conditioning gaze", (GAP, 14))
    _text(image, "conditioning yaw (deg)", (HEAT_LEFT, 36))
    _vertical_text(image, "conditioning pitch (deg)", 2, HEAT_TOP + rows * HEAT_CELL // 2)
    scaled = np.clip(np.nan_to_num(errors) / top * 255, 0, 255).astype(np.uint8)
    colours = _viridis(scaled)
    for j, value in enumerate(yaw):
        _text(image, f"{np.degrees(value):+.1f}", (HEAT_LEFT + j * HEAT_CELL + 10, HEAT_TOP - 8))
    for i, value in enumerate(pitch):
        y = HEAT_TOP + i * HEAT_CELL
        _text(image, f"{np.degrees(value):+.1f}", (HEAT_LEFT - 46, y + HEAT_CELL // 2 + 4))
        for j in range(cols):
            x = HEAT_LEFT + j * HEAT_CELL
            colour = tuple(int(v) for v in colours[i, j])
            cv2.rectangle(image, (x, y), (x + HEAT_CELL - 1, y + HEAT_CELL - 1), colour, -1)
            ink = INK if scaled[i, j] > 150 else (255, 255, 255)  # viridis is light at its top end
            _text(image, f"{errors[i, j]:.1f}", (x + 12, y + HEAT_CELL // 2 + 4), ink)
    width = cols * HEAT_CELL
    ramp = np.linspace(0, 255, width).astype(np.uint8)[None].repeat(SCALE_BAR, axis=0)
    image[bar_y : bar_y + SCALE_BAR, HEAT_LEFT : HEAT_LEFT + width] = _viridis(ramp)
    _text(image, "0", (HEAT_LEFT, bar_y + SCALE_BAR + 14))
    _text(image, f"{top:.1f} deg", (HEAT_LEFT + width - _text_width(f"{top:.1f} deg"), bar_y + SCALE_BAR + 14))
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
        _text(
            header,
            f"pitch {np.degrees(pitch):+.0f} yaw {np.degrees(yaw):+.0f}",
            (GAP + c * (width + GAP), 2 * CAPTION - 2),
        )
    return np.concatenate([header, body], axis=0)
