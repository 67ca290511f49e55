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
    """A loaded model on one backend. Subclasses set ``backend``, ``inputs``, ``outputs`` and ``_infer``."""

    backend: str = ""
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check ``feed`` against :attr:`inputs`, run, and return every output by name."""
        check_feed(feed, self.inputs, self.backend)
        return self._infer(feed)

    @abstractmethod
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the backend on a checked feed."""

    def describe(self) -> str:
        return (f"{self.backend}: {', '.join(s.describe() for s in self.inputs)} -> "
                f"{', '.join(s.describe() for s in self.outputs)}")
