"""Loss terms since the last log, kept on the device: the host waits for them once per log, not
once per step."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


class LossWindow:
    def __init__(self):
        self.values: dict[str, list[torch.Tensor]] = {}

    def add(self, values: dict[str, torch.Tensor]) -> None:
        for key, value in values.items():
            self.values.setdefault(key, []).append(value.detach().float())

    def means(self, reduce: Callable[[torch.Tensor], torch.Tensor] = lambda t: t) -> dict[str, float]:
        """Each term's mean over the window (`reduce` may average the stacked means over ranks)."""
        keys = sorted(self.values)
        if not keys:
            return {}
        means = torch.stack([torch.stack(self.values[k]).mean() for k in keys])
        return dict(zip(keys, reduce(means).cpu().tolist()))

    def clear(self) -> None:
        self.values.clear()


def nonfinite(values: dict[str, float]) -> list[str]:
    return sorted(k for k, v in values.items() if not math.isfinite(v))
