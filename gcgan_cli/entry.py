"""The `gcgan` console script. `gcgan --version` answers without loading the CLI (typer, numpy,
OpenCV: a few tenths of a second); everything else runs the CLI."""

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from gcgan_cli import __version__

        print(f"gcgan {__version__}")
        sys.exit(0)
    from gcgan_cli.cli import main as run

    run()
