"""Parameters per block of a network, for the line `gcgan train` prints when it starts."""

from __future__ import annotations

from torch import nn


def parameter_summary(network: nn.Module) -> list[tuple[str, int, int]]:
    """(block, parameters, trainable ones) for each child of `network`, a ModuleList's members one by one."""
    rows = []
    for name, child in network.named_children():
        members = child.named_children() if isinstance(child, nn.ModuleList) else [("", child)]
        for index, block in members:
            params = list(block.parameters())
            if params:
                label = f"{name}.{index}" if index else name
                rows.append((label, sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)))
    return rows


def format_summary(rows: list[tuple[str, int, int]]) -> str:
    """`style 33,024, local_nets.0 35,382 (frozen), ...`: frozen or partly trained blocks say so."""

    def one(name: str, total: int, trainable: int) -> str:
        state = "" if trainable == total else " (frozen)" if trainable == 0 else f" ({trainable:,} trained)"
        return f"{name} {total:,}{state}"

    return ", ".join(one(*row) for row in rows)
