"""Stream URIs (``scheme://rest?key=value``) and the registries of sources and sinks by scheme.

Sources and sinks register themselves under their URI schemes, the way students register in
:mod:`panoedge.models.registry`::

    @register_source("v4l2", "gst")
    class CvSource(Source): ...

    @register_sink("web")
    class WebSink(Sink): ...

:func:`create` builds the one registered for a URI's scheme; an unknown scheme fails listing the
valid ones. The registries fill as the modules that define sources and sinks are imported:
:func:`panoedge.live.sources.open_source` and :func:`panoedge.live.sinks.open_sink` import the
built-in ones. A leaf: imports nothing else of ``live``.
"""

from __future__ import annotations

from typing import Callable
from urllib.parse import parse_qsl

from panoedge.errors import UsageError, unknown_name

__all__ = ["SINKS", "SOURCES", "check_params", "create", "param_bool", "param_float", "register_sink",
           "register_source", "split_uri"]

SOURCES: dict[str, Callable] = {}
"""URI scheme -> source class or factory ``fn(uri) -> Source`` (filled by :func:`register_source`)."""
SINKS: dict[str, Callable] = {}
"""URI scheme -> sink class or factory ``fn(uri) -> Sink`` (filled by :func:`register_sink`)."""


def _register(table: dict[str, Callable], kind: str, schemes: tuple[str, ...]):
    if not schemes:
        raise TypeError(f"register_{kind} needs at least one scheme")

    def decorate(make: Callable) -> Callable:
        for scheme in schemes:
            if scheme in table and table[scheme] is not make:
                raise RuntimeError(f"{kind} scheme {scheme}:// registered twice")
            table[scheme] = make
        return make

    return decorate


def register_source(*schemes: str):
    """Decorator: the class (or factory ``fn(uri)``) that opens ``scheme://`` sources."""
    return _register(SOURCES, "source", schemes)


def register_sink(*schemes: str):
    """Decorator: the class (or factory ``fn(uri)``) that opens ``scheme://`` sinks."""
    return _register(SINKS, "sink", schemes)


def create(table: dict[str, Callable], kind: str, uri: str):
    """``table[scheme](uri)`` for ``uri``'s scheme; an unknown one is a ``UsageError`` naming the valid ones
    (``kind``: ``source`` or ``sink``, for the message)."""
    scheme, _, _ = split_uri(uri)
    if scheme not in table:
        raise unknown_name(f"{kind} scheme", f"{scheme}://", [f"{s}://" for s in table])
    return table[scheme](uri)


def split_uri(uri: str) -> tuple[str, str, dict[str, str]]:
    """``"scheme://rest?a=1"`` -> ``("scheme", "rest", {"a": "1"})``; a bare path is ``file``.

    ``gst://`` keeps everything after the scheme verbatim (pipelines contain ``?``-free but
    ``=``-rich syntax), so it takes no query.
    """
    uri = str(uri)
    if "://" not in uri:
        return "file", uri, {}
    scheme, rest = uri.split("://", 1)
    scheme = scheme.lower()
    if scheme == "gst":
        return scheme, rest, {}
    path, _, query = rest.partition("?")
    return scheme, path, dict(parse_qsl(query, keep_blank_values=True))


def check_params(uri: str, params: dict[str, str], allowed: tuple[str, ...]) -> None:
    """``UsageError`` naming the URI and the valid keys for any unknown query key."""
    bad = sorted(set(params) - set(allowed))
    if bad:
        raise UsageError(f"{uri}: unknown option(s) {', '.join(bad)}; valid: {', '.join(allowed) or 'none'}")


def param_float(uri: str, params: dict, key: str, default: float, lo: float = 0.0, hi: float = 1e4) -> float:
    """A numeric query option within ``[lo, hi]``."""
    if key not in params:
        return float(default)
    try:
        v = float(params[key])
    except ValueError:
        raise UsageError(f"{uri}: {key}={params[key]!r} is not a number") from None
    if not lo <= v <= hi:
        raise UsageError(f"{uri}: {key}={v:g} is outside [{lo:g}, {hi:g}]")
    return v


def param_bool(uri: str, params: dict, key: str, default: bool) -> bool:
    if key not in params:
        return default
    v = params[key].lower()
    if v in ("1", "true", "yes", "on", ""):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"{uri}: {key}={params[key]!r}: expected 1/0, true/false")
