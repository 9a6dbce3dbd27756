"""Data work spread over spawned worker processes, results in input order.

Spawned, not forked: a fork would copy FaceMesh threads, HDF5 state or torch's thread pool
mid-flight. Workers ignore Ctrl-C (the parent stops the pool), send stderr to devnull (their
results carry every error) and run OpenCV single-threaded (parallelism comes from processes).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from functools import partial

import cv2

BATCH = 8  # work items per message to a worker


def default_workers() -> int:
    """Every core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def useful_workers(requested: int, items: int, batch: int = BATCH) -> int:
    """Worker processes only pay off beyond a batch each; 1 means this process."""
    return max(1, min(requested, -(-items // batch))) if requested > 1 else 1


def map_in_order(func: Callable, items: Sequence, workers: int, batch: int = BATCH) -> Iterator:
    """Yield `func(item)` for every item, in order; in `workers` processes when more than one.

    `func` must be picklable (a module-level function, or a partial of one over picklable
    settings); it runs in a fresh interpreter, so it should import only what it needs.
    """
    if workers <= 1:
        for item in items:
            yield func(item)
        return
    batches = [items[i : i + batch] for i in range(0, len(items), batch)]
    context = multiprocessing.get_context("spawn")
    with _main_module_hidden():
        pool = context.Pool(workers, initializer=_init_worker)
    with pool:
        for outcomes in pool.imap(partial(_apply_all, func), batches):
            yield from outcomes


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # mediapipe's graph threads print per-image C++ warnings at any time; results say what failed.
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
    cv2.setNumThreads(1)


def _apply_all(func: Callable, items: Sequence) -> list:
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
