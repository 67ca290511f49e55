"""Optional packages: which pip extra brings each, and the preflight every command runs.

A robot that only runs bundles installs plain ``panoedge`` (NumPy, OpenCV, ONNX Runtime); the
training side (``torch``, ``onnx``) and the other optional parts come as pip extras. A command
that needs one checks for it with :func:`require` before any work, so a missing package costs a
second and one line, not a traceback half an hour into a run::

    panoedge demo needs the training extras: pip install "panoedge[train]" (missing: onnx)

:data:`EXTRAS` is the one table of optional imports; the CLI also maps a ``ModuleNotFoundError``
for any module in it to the same one line (:func:`missing_extra_error`), as a net for code paths
a preflight did not foresee.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from panoedge.errors import PanoedgeError


@dataclass(frozen=True)
class Extra:
    """A pip extra of panoedge: its name, what it is for, and the import names it provides."""

    name: str
    purpose: str
    modules: tuple[str, ...]


EXTRAS: dict[str, Extra] = {e.name: e for e in (
    Extra("train", "the training extras", ("torch", "onnx", "onnxslim")),
    Extra("hf", "the Hugging Face extras", ("transformers",)),
    Extra("live", "the live extras", ("zmq",)),
    Extra("tensorrt", "the TensorRT extras", ("tensorrt",)),
    Extra("sign", "the signing extras", ("cryptography",)),
)}
"""Every optional extra (pyproject.toml's ``[project.optional-dependencies]`` minus ``dev``/``all``)."""

MODULE_EXTRA: dict[str, str] = {m: e.name for e in EXTRAS.values() for m in e.modules}
"""Import name -> the extra that installs it (also the CUDA bindings, which several extras carry)."""
MODULE_EXTRA.update({"cuda": "tensorrt", "pycuda": "tensorrt", "jtop": "jetson"})
_PIP_NAME = {"zmq": "pyzmq", "cuda": "cuda-python", "jtop": "jetson-stats"}


class MissingExtraError(PanoedgeError):
    """An optional package a command needs is not installed."""

    exit_code = 4


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported here, without importing it (``find_spec``)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken parent package, or sys.modules[module] is None
        return False


def pip_name(module: str) -> str:
    """The PyPI name of the package that provides import name ``module``."""
    return _PIP_NAME.get(module, module)


def require(what: str, extra: str, modules: tuple[str, ...] | list[str] | None = None) -> None:
    """Raise :class:`MissingExtraError` unless every module of ``extra`` (or ``modules``) is installed.

    ``what`` names the command or feature for the message (``"panoedge demo"``).
    """
    e = EXTRAS[extra]
    missing = [m for m in (modules or e.modules) if not is_installed(m)]
    if missing:
        raise MissingExtraError(f"{what} needs {e.purpose}: pip install \"panoedge[{extra}]\" "
                                f"(missing: {', '.join(pip_name(m) for m in missing)})")


def missing_extra_error(exc: ModuleNotFoundError, what: str = "this command") -> MissingExtraError | None:
    """The one-line error for ``exc`` when it is about an optional package; None for anything else (a bug)."""
    root = (exc.name or "").split(".")[0]
    extra = MODULE_EXTRA.get(root)
    if extra is None:
        return None
    if extra in EXTRAS:
        return MissingExtraError(f"{what} needs {EXTRAS[extra].purpose}: pip install \"panoedge[{extra}]\" "
                                 f"(missing: {pip_name(root)})")
    return MissingExtraError(f"{what} needs {pip_name(root)}: pip install \"panoedge[{extra}]\"")
