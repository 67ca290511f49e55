"""The student registry, in timm's ``@register_model`` / ``create_model`` style.

A factory is a function ``fn(num_classes, **kw) -> nn.Module`` decorated with
:func:`register_student`; its name with ``_`` turned into ``-`` is the student's name
(``pano_small`` -> ``"pano-small"``) and the first line of its docstring its description.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from panoedge.errors import unknown_name


@dataclass(frozen=True)
class StudentEntry:
    """One registered student: its factory, a one-line description and its nominal size."""

    name: str
    factory: Callable[..., nn.Module]
    description: str
    nominal_params: int


_STUDENTS: dict[str, StudentEntry] = {}


def register_student(*, nominal_params: int, name: str | None = None):
    """Decorator registering a student factory under ``name`` (default: derived from the function).

    ``nominal_params`` is the advertised parameter count (the registry's tests hold each
    student to within 30% of it). Registering a name twice is a programming error.
    """

    def decorate(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__.replace("_", "-")
        if key in _STUDENTS:
            raise RuntimeError(f"student {key!r} registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        _STUDENTS[key] = StudentEntry(key, fn, doc[0] if doc else "", int(nominal_params))
        return fn

    return decorate


def list_students() -> list[str]:
    """Names of every registered student, sorted."""
    return sorted(_STUDENTS)


def get_student_entry(name: str) -> StudentEntry:
    """The registry entry for ``name``; unknown names raise ``UsageError`` listing valid ones."""
    try:
        return _STUDENTS[name]
    except KeyError:
        raise unknown_name("student", name, _STUDENTS) from None


def create_student(name: str, num_classes: int, **kw) -> nn.Module:
    """Build the student ``name`` with ``num_classes`` segmentation classes.

    Keyword arguments go to the network's constructor (see
    :class:`panoedge.models.students.PanoStudent`: ``heads``, ``max_depth_m``, ``min_depth_m``,
    ``latitude``, ``mean``, ``std``). The model comes back in training mode on the CPU.
    """
    return get_student_entry(name).factory(num_classes, **kw)
