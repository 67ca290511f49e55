"""Typed reports: what a library call that reports returns.

A command's numbers travel as a frozen dataclass defined next to the code that produces them, not as a
string-keyed dict. Each has

- ``SCHEMA`` (class attribute): the ``schema`` value of its JSON form (``panoedge.quantize/1``...);
- ``to_dict()``: the JSON object, keys in field order (``schema`` first), the form written by ``--json``
  and into artifacts; nested :class:`Record` parts, paths, tuples and NumPy scalars become plain JSON;
- ``format()``: the human text the CLI prints.

The CLI is then parse -> call -> ``print(result.format())`` -> ``write(result.to_dict())``; it never digs
into nested keys. A result re-read from disk (a cached stage) comes back through the defining module's
``from_dict``, the one place that knows its keys.

Field metadata tunes the JSON form without a hand-written ``to_dict``: ``key`` renames a field,
``omit_none`` leaves it out when it is ``None``, ``json=False`` keeps it out of the JSON entirely
(an in-memory handle such as an array or an open object).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

__all__ = ["Record", "Result", "fmt_or_na", "json_field", "plain"]


def json_field(*, key: str | None = None, omit_none: bool = False, json: bool = True, **kwargs) -> Any:
    """A dataclass field with JSON-form metadata (see the module docstring); other ``dataclasses.field``
    arguments (``default``, ``default_factory``) pass through."""
    meta = {"json": json, "omit_none": omit_none}
    if key is not None:
        meta["key"] = key
    return dataclasses.field(metadata=meta, **kwargs)


def plain(value: Any) -> Any:
    """``value`` as plain JSON data: records through their ``to_dict()``, mappings and sequences element
    by element, paths as strings, NumPy scalars and arrays as Python numbers and lists."""
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and not isinstance(value, type):
        return to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    item = getattr(value, "item", None)  # NumPy scalar or 0-d array, without importing NumPy here
    if callable(item) and getattr(value, "shape", None) == ():
        return item()
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and hasattr(value, "shape"):
        return tolist()
    return value


@dataclasses.dataclass(frozen=True)
class Record:
    """A typed part of a report; ``to_dict()`` gives its JSON object, keys in field order."""

    def to_dict(self) -> dict:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if not f.metadata.get("json", True):
                continue
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none", False):
                continue
            out[f.metadata.get("key", f.name)] = plain(value)
        return out


@dataclasses.dataclass(frozen=True)
class Result(Record, abc.ABC):
    """A whole report: a :class:`Record` with a ``SCHEMA`` and a human ``format()`` (abstract: a
    result type without one cannot be made, so every command has its text)."""

    SCHEMA: ClassVar[str] = ""

    def to_dict(self) -> dict:
        body = super().to_dict()
        return {"schema": self.SCHEMA, **body} if self.SCHEMA else body

    @abc.abstractmethod
    def format(self) -> str:
        """The text a person reads (what the CLI prints)."""


def fmt_or_na(value: float | None, spec: str = ".1f") -> str:
    """``value`` formatted with ``spec``, or ``"n/a"`` for a figure that was not measured."""
    return "n/a" if value is None else format(value, spec)
