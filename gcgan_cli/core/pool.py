"""Data work spread over spawned worker processes, results in input order.

Spawned, not forked: a fork would copy FaceMesh threads, HDF5 state or torch's thread pool
mid-flight. Workers ignore Ctrl-C (the parent stops the pool), send stderr to devnull (their
results carry every error), run OpenCV single-threaded (parallelism comes from processes) and
die with the parent (a `kill -9` of gcgan leaves no orphan waiting for work).

A worker that dies (the out-of-memory killer, a crash) ends the map with WorkerDied naming the
items it held, instead of waiting for a result that never comes.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any

import cv2

from gcgan_cli.errors import WorkerDied

BATCH = 8  # work items per message to a worker
LOOK_AHEAD = 2  # batches in flight per worker: keeps each busy while bounding memory
POLL_S = 1.0  # how often the parent checks its workers while it waits for a result
NAMED_ITEMS = 8  # items a WorkerDied message lists
_PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)

_taken_by = None  # in a worker: the parent's array of which pid took which batch


def default_workers() -> int:
    """Every core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def useful_workers(requested: int, items: int, batch: int = BATCH) -> int:
    """Worker processes only pay off beyond a batch each; 1 means this process."""
    return max(1, min(requested, -(-items // batch))) if requested > 1 else 1


def item_label(item: Any) -> str:
    """How a WorkerDied message names a work item: its fields joined (paths, row numbers)."""
    return ", ".join(map(str, item)) if isinstance(item, tuple) else str(item)


def map_in_order(
    func: Callable, items: Sequence, workers: int, batch: int = BATCH, label: Callable[[Any], str] = item_label
) -> Iterator:
    """Yield `func(item)` for every item, in order; in `workers` processes when more than one.

    `func` must be picklable (a module-level function, or a partial of one over picklable
    settings); it runs in a fresh interpreter, so it should import only what it needs. Raises
    WorkerDied, naming items with `label`, when a worker process ends without its result.
    """
    if workers <= 1:
        for item in items:
            yield func(item)
        return
    batches = [items[i : i + batch] for i in range(0, len(items), batch)]
    context = multiprocessing.get_context("spawn")
    taken_by = context.RawArray("q", len(batches))  # pid of the worker that started each batch, 0 before
    executor = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(taken_by, os.getpid())
    )
    work = partial(_apply_all, func)
    pending: collections.deque[tuple[int, Future]] = collections.deque()
    try:
        # The first `workers` submissions each start a process (none is idle yet), so the
        # main module is hidden from all of them.
        with _main_module_hidden():
            for index in range(min(len(batches), LOOK_AHEAD * workers)):
                pending.append((index, executor.submit(work, index, batches[index])))
        processes = dict(executor._processes)  # the executor offers no public handle on its workers
        following = len(pending)
        while pending:
            try:
                outcomes = _result(pending[0][1], processes)
                if following < len(batches):
                    pending.append((following, executor.submit(work, following, batches[following])))
                    following += 1
            except BrokenProcessPool:
                break
            pending.popleft()
            yield from outcomes
    except BaseException:  # Ctrl-C, SIGTERM, or the consumer stopping early
        _stop(executor)
        raise
    if pending:
        codes = _stop(executor)
        raise _died(batches, [index for index, _ in pending], taken_by, codes, label)
    executor.shutdown()


def _result(future: Future, processes: dict) -> list:
    """The future's result; BrokenProcessPool as soon as a worker is gone, even when the executor
    has not noticed (its reader waits forever for the rest of a result a dying worker was sending)."""
    while True:
        try:
            return future.result(timeout=POLL_S)
        except FutureTimeout:
            if any(process.exitcode is not None for process in processes.values()):
                raise BrokenProcessPool("a worker process ended") from None


def _stop(executor: ProcessPoolExecutor) -> dict[int, int | None]:
    """End the workers now and the executor with them; each worker's exit code by pid.

    Terminated, not waited for: they ignore Ctrl-C and a batch can take seconds. Closing this
    process's end of the result pipe turns a result cut off by a dying worker into EOF for the
    executor's reader thread, so that shutting down cannot hang.
    """
    processes = dict(executor._processes or {})
    for process in processes.values():
        process.terminate()
    if executor._result_queue is not None:
        executor._result_queue._writer.close()
    executor.shutdown(wait=True, cancel_futures=True)
    return {pid: process.exitcode for pid, process in processes.items()}


def _died(batches: list, unfinished: list[int], taken_by, codes: dict[int, int | None], label) -> WorkerDied:
    """WorkerDied naming what the dead worker held (nothing when it died between batches): the
    unfinished batch of a worker that did not end by our SIGTERM, or, when no such worker is
    found (it was sent SIGTERM too), every unfinished batch a worker had taken."""
    dead = {pid for pid, code in codes.items() if code != -signal.SIGTERM}
    held = [i for i in unfinished if taken_by[i] in dead] if dead else [i for i in unfinished if taken_by[i]]
    names = [label(item) for i in held for item in batches[i]]
    more = f" (and {len(names) - NAMED_ITEMS} more)" if len(names) > NAMED_ITEMS else ""
    where = f" while working on {'; '.join(names[:NAMED_ITEMS])}{more}" if names else ""
    return WorkerDied(
        f"a worker process died (killed? out of memory?){where}; run again with fewer --workers; finished work is kept"
    )


def _init_worker(taken_by, parent: int) -> None:
    global _taken_by
    _taken_by = taken_by
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(AttributeError, OSError):  # Linux only: die with the parent
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before prctl
        os._exit(1)
    # mediapipe's graph threads print per-image C++ warnings at any time; results say what failed.
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
    cv2.setNumThreads(1)


def _apply_all(func: Callable, index: int, items: Sequence) -> list:
    _taken_by[index] = os.getpid()
    return [func(item) for item in items]


@contextlib.contextmanager
def _main_module_hidden():
    """Start workers without re-running the parent's `__main__`.

    A spawned worker normally imports the parent's main module first; for the `gcgan` script
    that is the whole CLI with torch (about 4 s per worker). The workers need none of it: their
    functions live in importable modules.
    """
    main = sys.modules["__main__"]
    saved = {key: main.__dict__[key] for key in ("__file__", "__spec__") if key in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)
