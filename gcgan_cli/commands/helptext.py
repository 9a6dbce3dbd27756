"""Help texts that show a default taken from a config dataclass, so each default is written once."""

from __future__ import annotations

from collections.abc import Callable


def defaults_help(defaults: object, derived: dict[str, str] | None = None) -> Callable[[str, str], str]:
    """`helped(name, text)`: text and the default of field `name` of `defaults`. Options that default to None
    (so that only flags given override a TOML or a stored config) show what the dataclass gives, or for a
    None field what `derived` says decides it."""
    derived = derived or {}

    def helped(name: str, text: str) -> str:
        value = getattr(defaults, name)
        if value is None:
            value = derived.get(name)
        elif isinstance(value, bool):
            value = "on" if value else "off"
        elif isinstance(value, float):
            value = f"{value:.6g}"
        return f"{text} \\[default: {value}]" if value not in (None, "") else text  # \[: a bracket, not rich markup

    return helped
