"""One safe loader for every YAML, JSON and TOML file panoedge reads (rigs, configs, target
profiles, sidecars, manifests, ``meta.json``...), and the strict field checks configs share.

A robot reads files it does not control, so every read here is bounded before it is parsed:

- size: at most :data:`MAX_BYTES` (``$PANOEDGE_MAX_CONFIG_BYTES``) bytes are read;
- YAML: plain data only (``SafeLoader``: no tags that build objects), at most
  :data:`MAX_ALIASES` aliases, :data:`MAX_DEPTH` levels and :data:`MAX_NODES` nodes once every
  alias is expanded (a "billion laughs" file fails in milliseconds), no recursive aliases,
  no duplicate keys;
- JSON: no ``NaN``/``Infinity``, no duplicate keys, bounded nesting;
- every format: no non-finite float anywhere (TOML and YAML spell them ``nan``/``.inf``).

Every problem is a :class:`~panoedge.errors.ConfigError` naming the file and the key.
:func:`check_keys` rejects unknown keys naming the nearest valid one; :func:`check_fields`
type-checks a mapping against a dataclass (booleans only ``true``/``false``, integers never
booleans, numbers finite). Imports nothing heavy (no torch, no numpy).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import types
import typing
from pathlib import Path

from panoedge.errors import ConfigError

MAX_BYTES = 4 << 20
"""Largest config/manifest file read, in bytes (a rig is ~1 KB, a manifest ~10 KB; 4 MiB leaves
room for hand-written class maps). Override with ``$PANOEDGE_MAX_CONFIG_BYTES``."""
MAX_ALIASES = 128
"""YAML aliases allowed in one file: real configs use a handful; bombs use thousands."""
MAX_NODES = 200_000
"""YAML nodes after expanding every alias: bounds the memory and time a file can make us spend."""
MAX_DEPTH = 64
"""Nesting levels in YAML or JSON (deeper documents are attacks on the parser's recursion)."""
ENV_MAX_BYTES = "PANOEDGE_MAX_CONFIG_BYTES"


def max_bytes() -> int:
    """:data:`MAX_BYTES`, or ``$PANOEDGE_MAX_CONFIG_BYTES`` when set to a positive integer."""
    env = os.environ.get(ENV_MAX_BYTES, "")
    return int(env) if env.isdigit() and int(env) > 0 else MAX_BYTES


def read_text(path: str | Path, limit: int | None = None) -> str:
    """The UTF-8 text of ``path``, refused when larger than ``limit`` bytes (or not a regular file)."""
    path = Path(path)
    limit = max_bytes() if limit is None else limit
    if not path.is_file():
        raise ConfigError(path, "(file)", "no such file" if not path.exists() else "not a regular file")
    with open(path, "rb") as f:
        blob = f.read(limit + 1)
    if len(blob) > limit:
        raise ConfigError(path, "(file)", f"larger than {limit} bytes; refusing to parse it (${ENV_MAX_BYTES} raises the limit)")
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(path, "(file)", f"not UTF-8 text ({e.reason} at byte {e.start})") from None


# -- YAML ------------------------------------------------------------------------------------

def _yaml_loader():
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        """``SafeLoader`` that counts aliases and depth while composing."""

        def __init__(self, stream):
            super().__init__(stream)
            self.n_aliases, self.depth = 0, 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                self.n_aliases += 1
                if self.n_aliases > MAX_ALIASES:
                    raise _Limit(f"more than {MAX_ALIASES} aliases (a 'billion laughs' file?)")
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise _Limit(f"nested deeper than {MAX_DEPTH} levels")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen = set()
                for key_node, _ in node.value:
                    key = getattr(key_node, "value", None)
                    if isinstance(key_node, yaml.ScalarNode):
                        if key in seen:
                            raise _Limit(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
                        seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return BoundedLoader


class _Limit(Exception):
    pass


def _expanded_nodes(root) -> int:
    """Nodes in the document once every alias is expanded (shared nodes counted each time)."""
    import yaml

    memo: dict[int, int] = {}
    active: set[int] = set()

    def size(node) -> int:
        key = id(node)
        if key in memo:
            return memo[key]
        if key in active:
            raise _Limit("a recursive alias (a node that contains itself)")
        active.add(key)
        if isinstance(node, yaml.SequenceNode):
            n = 1 + sum(size(c) for c in node.value)
        elif isinstance(node, yaml.MappingNode):
            n = 1 + sum(size(k) + size(v) for k, v in node.value)
        else:
            n = 1
        active.discard(key)
        memo[key] = n
        if n > MAX_NODES:
            raise _Limit(f"more than {MAX_NODES} values once its aliases are expanded (a 'billion laughs' file?)")
        return n

    return size(root)


def loads_yaml(text: str, source: str | Path | None = None):
    """Plain data from YAML text, within the limits above (errors name ``source``)."""
    import yaml

    loader = _yaml_loader()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_nodes(node)
        data = loader.construct_document(node)
    except _Limit as e:
        raise ConfigError(source, "(file)", f"refused: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(source, "(file)", f"not valid YAML: {' '.join(str(e).split())}") from None
    except RecursionError:
        raise ConfigError(source, "(file)", f"refused: nested deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()
    check_finite(data, source)
    return data


# -- JSON and TOML ---------------------------------------------------------------------------

def _no_constant(name: str):
    raise _Limit(f"{name} is not JSON (write null for a missing number)")


def _pairs(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise _Limit(f"duplicate key {k!r}")
        out[k] = v
    return out


def loads_json(text: str | bytes, source: str | Path | None = None):
    """Strict JSON (no NaN/Infinity, no duplicate keys, bounded nesting); errors name ``source``."""
    if len(text) > max_bytes():
        raise ConfigError(source, "(file)", f"larger than {max_bytes()} bytes; refusing to parse it")
    try:
        data = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_pairs)
    except _Limit as e:
        raise ConfigError(source, "(file)", f"refused: {e}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(source, "(file)", f"not valid JSON: {e}") from None
    except RecursionError:
        raise ConfigError(source, "(file)", "refused: nested too deeply") from None
    _check_depth(data, source)
    check_finite(data, source)
    return data


def loads_toml(text: str, source: str | Path | None = None):
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, "(file)", f"not valid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(source, "(file)", "refused: nested too deeply") from None
    _check_depth(data, source)
    check_finite(data, source)
    return data


def load_file(path: str | Path, expect: type | None = dict):
    """A YAML (``.yaml``/``.yml``), JSON (``.json``) or TOML (``.toml``) file, read within the limits.

    ``expect`` (default ``dict``) is the type the top level must have; an empty YAML file is ``{}``.
    """
    path = Path(path)
    text = read_text(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = loads_json(text, path)
    elif suffix == ".toml":
        data = loads_toml(text, path)
    else:
        data = loads_yaml(text, path)
    if data is None and expect is dict:
        data = {}
    if expect is not None and not isinstance(data, expect):
        raise ConfigError(path, "(top level)", f"expected a {'mapping of keys' if expect is dict else expect.__name__}, "
                          f"got {type(data).__name__}")
    return data


def load_json(path: str | Path, expect: type | None = dict):
    """:func:`load_file` for a JSON file whatever its extension (manifests, ``meta.json``...)."""
    path = Path(path)
    data = loads_json(read_text(path), path)
    if expect is not None and not isinstance(data, expect):
        raise ConfigError(path, "(top level)", f"expected a {'JSON object' if expect is dict else expect.__name__}, "
                          f"got {type(data).__name__}")
    return data


def load_report(path: str | Path, from_dict, schema: str | None = None):
    """A typed report read back from ``path`` (a cached stage, a finished run): the JSON through
    :func:`load_json`, its ``schema`` checked, then ``from_dict(data)``. A report with missing or
    mistyped parts (an older version, a hand edit, a truncated write) is one
    :class:`~panoedge.errors.ConfigError` naming the file and the part, not a traceback."""
    path = Path(path)
    data = load_json(path)
    if schema is not None and data.get("schema") != schema:
        raise ConfigError(path, "schema", f"expected {schema!r}, got {data.get('schema')!r}")
    try:
        return from_dict(data)
    except KeyError as e:
        raise ConfigError(path, str(e.args[0]) if e.args else "?", "missing (not a complete report)") from None
    except (TypeError, ValueError, AttributeError, IndexError) as e:
        raise ConfigError(path, "(report)", f"malformed: {type(e).__name__}: {e}") from None


def _check_depth(data, source, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise ConfigError(source, "(file)", f"refused: nested deeper than {MAX_DEPTH} levels")
    if isinstance(data, dict):
        for v in data.values():
            _check_depth(v, source, depth + 1)
    elif isinstance(data, list):
        for v in data:
            _check_depth(v, source, depth + 1)


def check_finite(data, source=None, where: str = "") -> None:
    """Refuse NaN and infinities anywhere in ``data`` (naming the key)."""
    if isinstance(data, float) and not math.isfinite(data):
        raise ConfigError(source, where or "(value)", f"{data} is not a finite number")
    if isinstance(data, dict):
        for k, v in data.items():
            check_finite(v, source, f"{where}.{k}" if where else str(k))
    elif isinstance(data, (list, tuple)):
        for i, v in enumerate(data):
            check_finite(v, source, f"{where}[{i}]")


# -- strict fields ---------------------------------------------------------------------------

def nearest(name: str, valid) -> str | None:
    """The valid name closest to ``name`` (difflib), or ``None`` when nothing is close."""
    hits = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.6)
    return hits[0] if hits else None


def check_keys(data: dict, valid, source=None, where: str = "") -> None:
    """Refuse keys of ``data`` not in ``valid``, naming the nearest valid key."""
    valid = list(valid)
    for key in data:
        if key not in valid:
            near = nearest(key, valid)
            hint = f"did you mean {near!r}?" if near else f"valid keys: {', '.join(map(str, valid))}"
            raise ConfigError(source, f"{where}{key}", f"unknown key; {hint}")


def strict_bool(value, source=None, key: str = "") -> bool:
    """``value`` if it is a real boolean (YAML ``true``/``false``); anything else is refused."""
    if not isinstance(value, bool):
        raise ConfigError(source, key, f"{value!r}: expected true or false")
    return value


def check_value(value, tp, source=None, key: str = ""):
    """``value`` checked against the type annotation ``tp`` (``bool``, ``int``, ``float``, ``str``,
    ``tuple[...]``, ``X | None``, ``dict``); lists become tuples. Refuses anything else."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in (a for a in args if a is not type(None)):
            try:
                return check_value(value, a, source, key)
            except ConfigError as e:
                errors.append(e.problem)
        raise ConfigError(source, key, errors[0] if len(errors) == 1 else f"{value!r}: expected {_name(tp)}")
    if tp is bool:
        return strict_bool(value, source, key)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(source, key, f"{value!r}: expected an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(source, key, f"{value!r}: expected a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(source, key, f"{value!r}: expected a string")
        return value
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(source, key, f"{value!r}: expected a mapping")
        return value
    if tp is tuple or origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(source, key, f"{value!r}: expected a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(check_value(v, args[0], source, f"{key}[{i}]") for i, v in enumerate(value))
        if args and len(value) != len(args):
            raise ConfigError(source, key, f"{value!r}: expected {len(args)} values")
        return tuple(check_value(v, a, source, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args))) \
            if args else tuple(value)
    raise TypeError(f"check_value: unsupported annotation {tp!r}")  # a bug in the caller, not bad input


def _name(tp) -> str:
    return " or ".join("null" if a is type(None) else getattr(a, "__name__", str(a)) for a in typing.get_args(tp))


def check_fields(data: dict, cls, source=None, where: str = "", lenient: dict | None = None) -> dict:
    """``data`` checked against dataclass ``cls``: unknown keys refused (nearest name given), each
    value checked against its field's annotation (:func:`check_value`). ``lenient`` maps field
    names to annotations that replace the declared one (e.g. a size that may also be ``"HxW"``)."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    check_keys(data, names, source, where)
    lenient = lenient or {}
    return {k: check_value(v, lenient.get(k, hints[k]), source, f"{where}{k}") for k, v in data.items()}
