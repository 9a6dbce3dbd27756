"""Option types and checks shared by the commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gcgan_cli.core.metrics.inception_weights import WEIGHTS_ENV
from gcgan_cli.data.gaze_values import check_pair
from gcgan_cli.device import DEVICE_CHOICES, resolve_device
from gcgan_cli.errors import UsageError

# resolve_device raises gcgan's UsageError, which the CLI prints as one line (exit 2).
# Typed object, not torch.device: the declaration must not import torch (resolve_device does, when called).
DeviceOpt = Annotated[
    object,
    typer.Option(
        "--device",
        parser=str,
        callback=lambda spec: resolve_device(spec),  # typer reads a callback's annotations; this has none
        metavar="DEVICE",
        help=f"Where to compute: {DEVICE_CHOICES} (auto = first GPU if any, else CPU).",
    ),
]

InceptionWeightsOpt = Annotated[
    Path | None,
    typer.Option(
        "--inception-weights",
        help=f"The FID Inception weights file (else ${WEIGHTS_ENV}, else the torch hub cache, downloaded there "
        "when online).",
    ),
]

AllowExtrapolationOpt = Annotated[
    bool,
    typer.Option(
        "--allow-extrapolation",
        help="Accept gazes more than 0.1 rad beyond the checkpoint's training label set on an axis "
        "(the generator never saw them; what it draws there is not that gaze).",
    ),
]


def parse_gaze(text: str) -> tuple[float, float]:
    """`--gaze PITCH,YAW` (radians) -> (pitch, yaw), finite and within the range an eye can look;
    anything else is a one-line UsageError."""
    try:
        pitch, yaw = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--gaze {text!r}: expected PITCH,YAW in radians, e.g. --gaze -0.1,0.25") from None
    return check_pair(pitch, yaw, f"--gaze {text}", UsageError)
