"""Option types shared by the commands, declared once."""

from __future__ import annotations

from typing import Annotated

import torch
import typer

from gcgan_cli.device import DEVICE_CHOICES, resolve_device

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
