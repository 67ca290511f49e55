"""Ctrl-C and SIGTERM for long jobs: finish the current step, save, then stop.

:func:`deferred_interrupt` turns the first SIGINT/SIGTERM into a flag the loop checks at a step
boundary (where a checkpoint is consistent: it saves, then raises
:class:`~panoedge.errors.Interrupted` saying how to resume); a second signal interrupts at once.
Only the main thread can own signal handlers: elsewhere the block runs with the defaults.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Set by the first stop signal; ``signum`` says which."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""


@contextmanager
def deferred_interrupt() -> Iterator[StopRequest]:
    """Within the block the first SIGINT/SIGTERM only sets ``stop.requested``; a second one raises
    ``KeyboardInterrupt`` immediately. The previous handlers come back on exit."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.requested:
            raise KeyboardInterrupt
        stop.signum = signum

    old = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def terminate_as_interrupt() -> None:
    """From now on SIGTERM (how service managers and ``kill`` stop a process) raises
    ``KeyboardInterrupt`` like Ctrl-C, so ``finally`` blocks run: worker pools are terminated and
    half-written outputs removed. For entry points (the CLI) only; call from the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
