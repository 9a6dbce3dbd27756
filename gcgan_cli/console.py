"""The one rich console of the CLI (stdout) and its error twin (stderr)."""

from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
