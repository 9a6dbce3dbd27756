"""Config fields that are also command-line options, so a default, a type and a help text live in one place."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def option(default: Any, panel: str, help: str, *flags: str, path: bool = False) -> Any:
    """A dataclass field with its option's help text, help panel and flags (none given: --name-with-dashes;
    a bool gets --name/--no-name); `path`: the value names a file or folder."""
    return field(default=default, metadata={"help": help, "panel": panel, "flags": flags, "path": path})
