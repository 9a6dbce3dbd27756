"""The one rich console of the CLI (stdout) and its error twin (stderr).

Off a terminal (a file, a pipe, a scheduler's log) rich would wrap at 80 columns; there the console
is as wide as a log line can be, so a line stays one line and a table keeps whole paths.
"""

from rich.console import Console, ConsoleDimensions

UNWRAPPED = 10_000  # columns off a terminal


class _Console(Console):
    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self.is_terminal or self._width is not None:  # a terminal's width, or COLUMNS / an explicit width
            return size
        return ConsoleDimensions(UNWRAPPED, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)


console = _Console(highlight=False)
err_console = _Console(stderr=True, highlight=False)
