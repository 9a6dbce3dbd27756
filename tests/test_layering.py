"""Data flows one way: cli -> commands -> core -> data / cuda_ops. An import walk keeps it so."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports_of(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def offenders(folder, banned):
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in imports_of(path):
            if any(name == b or name.startswith(b + ".") for b in banned):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


def test_cuda_ops_is_independent_of_the_application():
    assert offenders("cuda_ops", ["gcgan_cli", "typer", "rich"]) == []


def test_core_has_no_ui():
    banned = ["typer", "rich", "gcgan_cli.cli", "gcgan_cli.commands", "gcgan_cli.console"]
    assert offenders("gcgan_cli/core", banned) == []


def test_data_has_no_ui_no_core_and_no_torch():
    """Dataset code runs in worker processes: it must stay cheap to import."""
    banned = [
        "typer",
        "rich",
        "torch",
        "cuda_ops",
        "gcgan_cli.cli",
        "gcgan_cli.commands",
        "gcgan_cli.console",
        "gcgan_cli.core",
    ]
    assert offenders("gcgan_cli/data", banned) == []


def test_workers_import_no_torch():
    """What segment and pack workers import (these core modules and the data package) stays free of torch."""
    for module in ("pool", "segment", "pack"):
        assert not any(
            n == "torch" or n.startswith("torch.") for n in imports_of(ROOT / f"gcgan_cli/core/{module}.py")
        ), module


def test_errors_is_a_leaf():
    assert not any(
        name.startswith(("gcgan_cli", "cuda_ops", "torch")) for name in imports_of(ROOT / "gcgan_cli/errors.py")
    )


def test_the_walk_sees_imports():
    """Guard against a walk that finds nothing: the CLI does import typer."""
    assert "typer" in imports_of(ROOT / "gcgan_cli/cli.py")
