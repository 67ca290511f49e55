"""Inference backends by name, in timm's style: ``@register_backend("ort-cpu")`` + :func:`create_runner`.

A backend module registers a factory ``factory(path, *, backend, threads=None, **options) -> Runner``
and a probe ``available(backend) -> (usable, why not)`` that imports nothing heavy. The runtime's own
backends (``ort-cpu``, ``ort-cuda``, ``ort-trt``, ``trt``) register when :mod:`panoedge.runtime` is
imported (which importing this module does first); ``torch`` registers from :mod:`panoedge.deploy.torch_runner` (the runtime stays torch-free).
An unknown name fails listing the registered ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from panoedge.errors import unknown_name

__all__ = ["BackendEntry", "backend_available", "backend_names", "create_runner", "register_backend"]


@dataclass(frozen=True)
class BackendEntry:
    """One registered backend: how to open a runner and how to tell whether it can run here."""

    name: str
    factory: Callable
    available: Callable[[str], tuple[bool, str]]


_BACKENDS: dict[str, BackendEntry] = {}


def _always(_name: str) -> tuple[bool, str]:
    return True, ""


def register_backend(*names: str, available: Callable[[str], tuple[bool, str]] = _always) -> Callable:
    """Register the decorated factory under each of ``names`` (several names share one factory: the
    ONNX Runtime execution providers); ``available`` is its cheap usability probe."""

    def deco(factory: Callable) -> Callable:
        for name in names:
            _BACKENDS[name] = BackendEntry(name=name, factory=factory, available=available)
        return factory

    return deco


def _entry(name: str) -> BackendEntry:
    entry = _BACKENDS.get(name)
    if entry is None:
        raise unknown_name("backend", name, _BACKENDS)
    return entry


def backend_names() -> list[str]:
    """Every registered backend, in registration order."""
    return list(_BACKENDS)


def backend_available(name: str) -> tuple[bool, str]:
    """Whether backend ``name`` can run here, and why not (an unknown name is a ``UsageError``)."""
    return _entry(name).available(name)


def create_runner(name: str, path: str | Path, *, threads: int | None = None, **options):
    """A :class:`panoedge.runtime.base.Runner` for the model at ``path`` on backend ``name``; ``options``
    go to the backend's factory (``provider_options`` for ONNX Runtime, ``hw`` for torch)."""
    return _entry(name).factory(path, backend=name, threads=threads, **options)
