"""Independent jobs over the CPU cores, in order: one ``concurrent.futures`` pool with spawn.

Used where work splits into pieces that are deterministic on their own (synthetic panoramas,
shards of teacher views), so results equal a single process's. Spawn gives each worker a clean
interpreter, whatever threads the caller (torch, OpenCV) has started. Imports nothing heavy.

Spawned workers import the caller's main module again, which re-runs a script that has no
``if __name__ == "__main__":`` guard (and cannot work from a notebook or stdin at all). So worker
processes are used only once the entry point says its main module is safe to import:
``panoedge``'s CLI does (:func:`allow_processes`); library callers get one process unless they call
it too.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor


_ALLOWED = False


def allow_processes(allowed: bool = True) -> None:
    """Let :func:`map_ordered` start worker processes (call from a guarded entry point)."""
    global _ALLOWED
    _ALLOWED = bool(allowed)


def usable_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by ``OMP_NUM_THREADS`` when that is set
    (the caller's thread budget, e.g. two jobs sharing a machine at one thread each)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    budget = os.environ.get("OMP_NUM_THREADS", "")
    return min(cores, int(budget)) if budget.isdigit() and int(budget) > 0 else cores


def map_ordered(fn: Callable, items: Iterable, workers: int) -> Iterator:
    """``fn(item)`` for each item, in order: in this process when ``workers <= 1``, else in that
    many spawned processes if :func:`allow_processes` was called (``fn`` and the items must then
    be picklable: a module-level function or a ``functools.partial`` of one)."""
    items = list(items)
    if workers <= 1 or len(items) <= 1 or not _ALLOWED:
        yield from map(fn, items)
        return
    with ProcessPoolExecutor(min(workers, len(items)), mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(fn, items)
