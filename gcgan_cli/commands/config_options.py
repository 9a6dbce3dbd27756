"""Typer options built from a config dataclass's fields (`core.options.option`): one option per field, its
type from the field's annotation, its help and panel from the field's metadata, the default shown from the
dataclass. The options default to None, so only flags given override a TOML file or a stored config."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from gcgan_cli.commands.helptext import defaults_help
from gcgan_cli.core.model.config import option_flag


def _value_type(annotation: object) -> type:
    """int for `int | None`, and so on."""
    kinds = [kind for kind in typing.get_args(annotation) if kind is not type(None)] or [annotation]
    return kinds[0]


def config_parameters(schema: type, derived: dict[str, str]) -> list[inspect.Parameter]:
    """Keyword-only parameters, one per field of `schema` that has option metadata, in field order."""
    helped = defaults_help(schema(), derived)
    hints = typing.get_type_hints(schema)
    parameters = []
    for spec in dataclasses.fields(schema):
        if "help" not in spec.metadata:
            continue
        meta, kind = spec.metadata, _value_type(hints[spec.name])
        flags = tuple(meta["flags"])
        if kind is bool:
            flags = (f"--{option_flag(spec.name)}/--no-{option_flag(spec.name)}",)
        info = typer.Option(*flags, help=helped(spec.name, meta["help"]), rich_help_panel=meta["panel"])
        value_type = Path if meta["path"] else kind
        option = inspect.Parameter(
            spec.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[value_type | None, info]
        )
        parameters.append(option)
    return parameters


def with_config_options(schema: type, derived: dict[str, str] | None = None) -> Callable:
    """Give a command the options of `schema`'s fields besides its own; the command takes them as **given."""

    def decorate(command: Callable) -> Callable:
        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in inspect.signature(command, eval_str=True).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        command.__signature__ = inspect.Signature([*config_parameters(schema, derived or {}), *own])
        return command

    return decorate
