"""Bounded hand-over queues between pipeline stages.

A live camera must never queue up: when a stage is slow, the frame waiting for it is replaced
by the newer one (*drop oldest*), so latency stays bounded by the queue length. A file replayed
as fast as possible must not lose frames: there the producer waits for room instead.
:class:`StageQueue` does both, keeps FIFO order, counts what it dropped, and can be closed so
consumers drain what is left and then stop.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from queue import Empty

__all__ = ["Closed", "Empty", "StageQueue"]


class Closed(Exception):
    """The queue was closed and is empty: the producer has stopped."""


class StageQueue:
    """A FIFO of at most ``maxsize`` items.

    ``drop_oldest=True``: :meth:`put` never blocks; when full, the oldest item is discarded and
    counted in :attr:`dropped`. ``drop_oldest=False``: :meth:`put` waits for room (back-pressure).
    Items are never reordered. Thread-safe for any number of producers and consumers.
    """

    def __init__(self, maxsize: int = 1, drop_oldest: bool = True, name: str = ""):
        if maxsize < 1:
            raise ValueError(f"maxsize {maxsize}: need at least 1")
        self.maxsize = int(maxsize)
        self.drop_oldest = bool(drop_oldest)
        self.name = name
        self.dropped = 0
        self._items: deque = deque()
        self._cv = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        with self._cv:
            return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item, timeout: float | None = None) -> bool:
        """Append ``item``; False if the queue is closed (or, when blocking, ``timeout`` ran out)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while not self._closed and len(self._items) >= self.maxsize:
                if self.drop_oldest:
                    self._items.popleft()
                    self.dropped += 1
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(left)
            if self._closed:
                return False
            self._items.append(item)
            self._cv.notify_all()
            return True

    def get(self, timeout: float | None = None):
        """The oldest item; raises ``queue.Empty`` after ``timeout`` s, :class:`Closed` once closed and empty."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while not self._items:
                if self._closed:
                    raise Closed(self.name)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise Empty
                self._cv.wait(left)
            item = self._items.popleft()
            self._cv.notify_all()
            return item

    def wait_for_room(self, timeout: float | None = None) -> bool:
        """Block until a put would not drop or wait (True), or the queue closes / ``timeout`` passes (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while len(self._items) >= self.maxsize and not self._closed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(left)
            return not self._closed

    def close(self) -> None:
        """No more puts; waiting consumers drain the remaining items and then get :class:`Closed`."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
