"""Option types shared by the commands, declared once."""

from __future__ import annotations

from typing import Annotated

import torch
import typer

from gcgan_cli.device import DEVICE_CHOICES, resolve_device
from gcgan_cli.errors import UsageError

# resolve_device raises gcgan's UsageError, which the CLI prints as one line (exit 2).
DeviceOpt = Annotated[
    torch.device,
    typer.Option(
        "--device",
        parser=str,
        callback=resolve_device,
        metavar="DEVICE",
        help=f"Where to compute: {DEVICE_CHOICES} (auto = first GPU if any, else CPU).",
    ),
]


def parse_gaze(text: str) -> tuple[float, float]:
    """`--gaze PITCH,YAW` (radians) -> (pitch, yaw); a malformed value is a one-line UsageError."""
    try:
        pitch, yaw = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--gaze {text!r}: expected PITCH,YAW in radians, e.g. --gaze -0.1,0.25") from None
    return pitch, yaw
