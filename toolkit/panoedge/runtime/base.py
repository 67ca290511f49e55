"""One inference contract over every backend, in Polygraphy's style.

A :class:`Runner` declares its inputs and outputs as :class:`TensorSpec` s and its ``infer``
checks a feed's names, shapes and dtypes against them *before* calling the backend, so a wrong
input fails with a sentence instead of a backend's stack trace. Dynamic dimensions are ``None``
in a spec and accept any size.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from panoedge.errors import UsageError


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor: ``shape`` with ``None`` for dynamic dimensions, NumPy ``dtype``."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype

    def describe(self) -> str:
        dims = "x".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} {np.dtype(self.dtype).name}[{dims}]"

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": np.dtype(self.dtype).name}


def check_feed(feed: dict[str, np.ndarray], specs: list[TensorSpec], backend: str) -> None:
    """Raise ``UsageError`` unless ``feed`` holds exactly ``specs``' names with fitting shapes and dtypes."""
    names = {s.name for s in specs}
    missing, extra = sorted(names - set(feed)), sorted(set(feed) - names)
    if missing or extra:
        raise UsageError(f"{backend}: inputs {sorted(feed)} do not match the model's "
                         f"{[s.describe() for s in specs]} (missing {missing}, unexpected {extra})")
    for s in specs:
        a = feed[s.name]
        if not isinstance(a, np.ndarray):
            raise UsageError(f"{backend}: input {s.name!r} is a {type(a).__name__}, expected a NumPy array")
        if a.dtype != s.dtype:
            raise UsageError(f"{backend}: input {s.name!r} has dtype {a.dtype}, the model takes {s.describe()}")
        if a.ndim != len(s.shape) or any(d is not None and d != n for d, n in zip(s.shape, a.shape)):
            raise UsageError(f"{backend}: input {s.name!r} has shape {tuple(a.shape)}, the model takes {s.describe()}")


class Runner(ABC):
    """A loaded model on one backend. Subclasses set ``backend``, ``inputs``, ``outputs`` and ``_infer``.

    A runner owns what its backend holds (a session, device buffers, a model): use it as a context
    manager, or call :meth:`close`, so those are released when the caller is done, not when the
    garbage collector gets to it. ``close`` is idempotent; a closed runner refuses ``infer``.
    """

    backend: str = ""
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    closed: bool = False

    def close(self) -> None:
        """Release the backend's resources (subclasses free theirs in :meth:`_release`); idempotent."""
        if not self.closed:
            self._release()
            self.closed = True

    def _release(self) -> None:
        """Free what the backend holds; the default has nothing to free."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check ``feed`` against :attr:`inputs`, run, and return every output by name."""
        if self.closed:
            raise UsageError(f"{self.backend}: the runner is closed")
        check_feed(feed, self.inputs, self.backend)
        return self._infer(feed)

    @abstractmethod
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the backend on a checked feed."""

    def describe(self) -> str:
        return (f"{self.backend}: {', '.join(s.describe() for s in self.inputs)} -> "
                f"{', '.join(s.describe() for s in self.outputs)}")
