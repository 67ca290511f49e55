"""Installed package versions, read without failing (a leaf: imports nothing of ours)."""

from __future__ import annotations

import importlib

__all__ = ["package_version"]


def package_version(module: str) -> str | None:
    """``module.__version__`` (or ``VERSION``), ``"unknown"`` when it has neither, ``None`` when the
    package is absent or fails to import (an optional package is reported, never raised)."""
    try:
        mod = importlib.import_module(module)
    except Exception:  # an optional package may be absent or broken: report it as absent
        return None
    return str(getattr(mod, "__version__", getattr(mod, "VERSION", "unknown")))
