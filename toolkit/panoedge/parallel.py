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

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

PR_SET_PDEATHSIG = 1
"""``prctl`` option from ``<linux/prctl.h>``: the signal a process gets when its parent dies."""


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


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: ask Linux to SIGKILL this worker when its parent dies (``prctl``
    ``PR_SET_PDEATHSIG``), so a killed ``panoedge`` never leaves workers rendering on; exit at once
    if the parent is already gone. Elsewhere (no prctl) the parent's cleanup has to do."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        os._exit(1)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's workers now (Python 3.14 has ``terminate_workers``; before it, the processes)."""
    if hasattr(pool, "terminate_workers"):
        pool.terminate_workers()
        return
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            proc.terminate()  # the pool's manager thread then fails what was pending, and exits


@contextlib.contextmanager
def process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A spawn ``ProcessPoolExecutor`` whose workers die with this process (see :func:`_die_with_parent`)
    and are terminated, not waited for, when the block ends by an error, Ctrl-C or SIGTERM."""
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_die_with_parent, initargs=(os.getpid(),))
    try:
        yield pool
    except BaseException:
        _terminate(pool)
        raise
    finally:
        pool.shutdown(wait=True)


def map_ordered(fn: Callable, items: Iterable, workers: int) -> Iterator:
    """``fn(item)`` for each item, in order: in this process when ``workers <= 1``, else in that
    many spawned processes if :func:`allow_processes` was called (``fn`` and the items must then
    be picklable: a module-level function or a ``functools.partial`` of one). Workers die with
    this process (:func:`process_pool`)."""
    items = list(items)
    if workers <= 1 or len(items) <= 1 or not _ALLOWED:
        yield from map(fn, items)
        return
    with process_pool(min(workers, len(items))) as pool:
        yield from pool_map(pool, fn, items)


def pool_map(pool: ProcessPoolExecutor, fn: Callable, items: Iterable) -> Iterator:
    """``pool.map`` without its cancel-on-close: when the caller stops early, :func:`process_pool`
    terminates the workers and the pool fails the pending futures itself (cancelling them first
    makes Python 3.11's pool manager thread die on an ``InvalidStateError``)."""
    futures = [pool.submit(fn, item) for item in items]
    for f in futures:
        yield f.result()
