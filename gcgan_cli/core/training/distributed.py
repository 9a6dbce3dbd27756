"""torch.distributed for training: the torchrun environment, a control channel, and the data order.

A process started by `torchrun` (or `gcgan train --nproc N`, which runs torch.distributed.run)
reads RANK, LOCAL_RANK and WORLD_SIZE from its environment; without them it is a world of one
and nothing here talks to anyone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


@dataclass
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1
    control: object | None = None  # a gloo group for stop votes (CPU tensors, no device sync)

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_environment() -> World:
    """The world torchrun describes in the environment (RANK, LOCAL_RANK, WORLD_SIZE)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    return World(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), size)


def initialise(world: World, device: torch.device) -> World:
    """Join the process group: NCCL between GPUs, gloo on CPU; plus a gloo group for control."""
    if world.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
        world.control = dist.new_group(backend="gloo") if backend != "gloo" else dist.group.WORLD
    return world


def shutdown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def any_rank(world: World, flag: bool) -> bool:
    """True on every rank when `flag` is true on any: one tiny CPU all-reduce, no GPU sync."""
    if not world.distributed:
        return flag
    vote = torch.tensor([int(flag)])
    dist.all_reduce(vote, op=dist.ReduceOp.MAX, group=world.control)
    return bool(vote.item())


def mean_over_ranks(world: World, values: torch.Tensor) -> torch.Tensor:
    """All-reduced mean of a tensor (every rank gets it)."""
    if world.distributed:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values /= world.size
    return values


def gather_objects(world: World, value: object) -> list[object]:
    """Every rank's `value` (plain data, e.g. RNG states), in rank order."""
    if not world.distributed:
        return [value]
    gathered: list[object] = [None] * world.size
    dist.all_gather_object(gathered, value, group=world.control)
    return gathered


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier(group=world.control)


class StreamSampler(Sampler[int]):
    """An endless, seeded stream of dataset indices: epoch e is a permutation drawn from
    (seed, e). Step i's global batch is stream[i*B*W : (i+1)*B*W] and rank r takes its
    r-th slice of B. So the data order is a function of the step alone: a run resumed at
    `start` global samples sees exactly what an unbroken run would have, and nothing is seen
    twice or skipped when the number of processes changes."""

    def __init__(self, length: int, batch: int, world: World, seed: int, start: int = 0):
        if length < 1:
            raise ValueError("the dataset is empty")
        self.length, self.batch, self.rank, self.size, self.seed, self.start = (
            length,
            batch,
            world.rank,
            world.size,
            seed,
            start,
        )
        self._epoch, self._order = -1, None

    def _at(self, position: int) -> int:
        epoch, offset = divmod(position, self.length)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._order = epoch, torch.randperm(self.length, generator=generator).tolist()
        return self._order[offset]

    def __iter__(self) -> Iterator[int]:
        step_size = self.batch * self.size
        position = self.start + self.rank * self.batch
        while True:
            for j in range(self.batch):
                yield self._at(position + j)
            position += step_size
