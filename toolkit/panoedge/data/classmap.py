"""Class maps: a teacher's classes onto the student's (many-to-one, or ``ignore``).

File format (YAML, human-edited)::

    schema: panoedge.classmap/1
    target_family: outdoor                  # which student class list the targets come from
    target: [road, ...]                     # optional: the target classes, in order, where the
                                            # family is not one of the synthetic world's
    source: [road, sidewalk, ...]           # optional: the teacher label set the map is for
    map:                                    # source class -> target class, or ignore
      road: road
      rider: person
      train: ignore                         # unlisted source classes are ignored too

Names compare case-insensitively with runs of whitespace collapsed (ADE20K's ``"bed "`` is
``bed``). Shipped maps live in ``classmaps/`` and load by name: ``cityscapes19_to_outdoor``,
``ade20k150_to_indoor``, ``ade20k150_to_outdoor``, ``nyu40_to_indoor``, ``mpcat40_to_indoor``,
``stanford13_to_indoor``. Torch-free (datasets read through class maps too);
:func:`panoedge.models.teachers.classmap.apply_class_map` applies one to probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from panoedge.errors import ConfigError, DataError, UsageError, unknown_name
from panoedge.safe_load import check_keys

SCHEMA = "panoedge.classmap/1"
IGNORE = "ignore"
CLASSMAP_DIR = Path(__file__).resolve().parents[1] / "models" / "teachers" / "classmaps"
KEYS = ("schema", "target_family", "target", "source", "map")


def normalise_name(name: str) -> str:
    """A class name for comparison: lower case, whitespace runs collapsed, ends stripped."""
    return " ".join(str(name).split()).lower()


def shipped_class_maps() -> dict[str, Path]:
    """The class maps that ship with panoedge, by name (file stem)."""
    return {p.stem: p for p in sorted(CLASSMAP_DIR.glob("*.yaml"))}


@dataclass(frozen=True)
class ClassMap:
    """A validated map from ``source`` classes (teacher) to ``target`` classes (student).

    ``index[s]`` is the target index of source class ``s``, or ``-1`` where it is ignored.
    """

    source: tuple[str, ...]
    target: tuple[str, ...]
    index: tuple[int, ...]
    path: Path | None = None
    target_family: str | None = None

    @classmethod
    def by_name(cls, source_classes, target_classes) -> "ClassMap":
        """Map each source class to the target class of the same (normalised) name; the rest ignored."""
        source, target = _names(source_classes, "source"), _names(target_classes, "target")
        where = {normalise_name(t): i for i, t in enumerate(target)}
        return cls(source, target, tuple(where.get(normalise_name(s), -1) for s in source))

    def matrix(self, device=None, dtype=None):
        """``(Ks, Kt)`` 0/1 torch matrix: row ``s`` has a 1 in column ``index[s]`` (all zero if ignored)."""
        import torch

        dtype = dtype or torch.float32
        m = torch.zeros(len(self.source), len(self.target), dtype=dtype, device=device)
        for s, t in enumerate(self.index):
            if t >= 0:
                m[s, t] = 1
        return m

    def label_lut(self) -> np.ndarray:
        """``(Ks,)`` uint8 lookup for hard labels: target id per source id, 255 where ignored."""
        return np.array([t if t >= 0 else 255 for t in self.index], dtype=np.uint8)

    def describe(self) -> dict[str, list[str]]:
        """Target class -> the source classes that feed it (plus ``"ignore"``), for reports."""
        out: dict[str, list[str]] = {t: [] for t in self.target}
        out[IGNORE] = []
        for s, t in zip(self.source, self.index):
            out[self.target[t] if t >= 0 else IGNORE].append(s)
        return out


def _names(classes, what: str) -> tuple[str, ...]:
    names = tuple(str(c) for c in classes)
    norm = [normalise_name(n) for n in names]
    dup = sorted({n for n in norm if norm.count(n) > 1})
    if not names or dup:
        raise UsageError(f"{what} classes: need a non-empty list of distinct names"
                         + (f" (repeated: {', '.join(dup)})" if dup else ""))
    return names


def _resolve(path_or_name: str | Path) -> Path:
    path = Path(path_or_name).expanduser()
    if path.is_file():
        return path
    shipped = shipped_class_maps()
    if str(path_or_name) in shipped:
        return shipped[str(path_or_name)]
    if path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        raise DataError(f"{path}: no such class-map file")
    raise unknown_name("class map", str(path_or_name), shipped)


def _short(names, n: int = 12) -> str:
    names = list(names)
    return ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "")


def _read(path: Path) -> dict:
    """A class-map file through the safe loader (size and alias limits, no NaN, duplicate keys refused)."""
    from panoedge.safe_load import load_file

    doc = load_file(path, expect=None)
    if not isinstance(doc, dict):
        raise ConfigError(path, "(top level)", "expected a mapping with schema, target_family and map")
    return doc


def _check_declared_source(doc: dict, source: tuple[str, ...], path: Path) -> None:
    """The map's optional ``source`` list must name exactly the teacher's classes."""
    declared = doc["source"]
    if not isinstance(declared, list) or not all(isinstance(s, str) for s in declared):
        raise ConfigError(path, "source", "expected a list of class names (strings)")
    src_norm = {normalise_name(s) for s in source}
    declared_norm = {normalise_name(s) for s in declared}
    extra, missing = declared_norm - src_norm, src_norm - declared_norm
    if extra or missing:
        raise ConfigError(path, "source", f"the map is for {len(declared)} classes that differ from the "
                          f"teacher's {len(source)}: not the teacher's: {_short(sorted(extra)) or '-'}; "
                          f"the teacher's, not in the list: {_short(sorted(missing)) or '-'}")


def _map_index(mapping: dict, source: tuple[str, ...], target: tuple[str, ...], path: Path) -> tuple[int, ...]:
    """``index[s]``: the target index of source class ``s`` under ``mapping``, ``-1`` where ignored."""
    src_norm = {normalise_name(s): i for i, s in enumerate(source)}
    tgt_norm = {normalise_name(t): i for i, t in enumerate(target)}
    index, seen = [-1] * len(source), set()
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise ConfigError(path, f"map.{key}", "class names are strings; quote names YAML reads otherwise")
        k = normalise_name(key)
        if k not in src_norm:
            raise ConfigError(path, f"map.{key}", f"no source class named {key!r}; source classes: {_short(source)}")
        if k in seen:
            raise ConfigError(path, f"map.{key}", "listed twice")
        seen.add(k)
        if not isinstance(value, str):
            raise ConfigError(path, f"map.{key}", f"{value!r}: expected a target class name or {IGNORE!r}")
        v = normalise_name(value)
        if v == IGNORE:
            continue
        if v not in tgt_norm:
            raise ConfigError(path, f"map.{key}", f"target class {value!r} does not exist; "
                              f"target classes: {', '.join(target)} (or {IGNORE})")
        index[src_norm[k]] = tgt_norm[v]
    return tuple(index)


def load_class_map(path_or_name: str | Path, source_classes, target_classes) -> ClassMap:
    """Load a class-map file (or a shipped map by name) and validate it against both class lists.

    ``source_classes`` are the teacher's class names in channel order, ``target_classes`` the
    student's. Raises ``ConfigError(file, key, problem)`` for a bad field: a map key that is
    not a source class, a target that is not a target class (nor ``ignore``), a ``source``
    list that differs from the teacher's classes; ``DataError`` for a missing or non-YAML file.
    """
    source, target = _names(source_classes, "source"), _names(target_classes, "target")
    path = _resolve(path_or_name)
    doc = _read(path)
    check_keys(doc, KEYS, path)
    if doc.get("schema") != SCHEMA:
        raise ConfigError(path, "schema", f"{doc.get('schema')!r}: expected {SCHEMA!r}")
    family = doc.get("target_family")
    if not isinstance(family, str) or not family:
        raise ConfigError(path, "target_family", f"{family!r}: expected the student's class family, e.g. indoor")
    if doc.get("source") is not None:
        _check_declared_source(doc, source, path)
    mapping = doc.get("map")
    if not isinstance(mapping, dict) or not mapping:
        raise ConfigError(path, "map", "expected a mapping of source class -> target class (or ignore)")
    index = _map_index(mapping, source=source, target=target, path=path)
    return ClassMap(source=source, target=target, index=index, path=path, target_family=family)


def map_target_classes(path_or_name: str | Path) -> tuple[str, ...]:
    """The student classes a class map maps onto: its ``target`` list, else the synthetic
    world's class list of its ``target_family`` (``indoor``/``outdoor``). Lets a student's
    classes come from the class map alone (no dataset ``meta.json``)."""
    from panoedge.synth.world import FAMILIES, class_names

    path = _resolve(path_or_name)
    doc = _read(path)
    target = doc.get("target")
    if target is not None:
        if not isinstance(target, list) or not all(isinstance(t, str) for t in target):
            raise ConfigError(path, "target", "expected a list of class names (strings)")
        return _names(target, "target")
    family = doc.get("target_family")
    if family not in FAMILIES:
        raise ConfigError(path, "target_family", f"{family!r}: without a target list, one of {', '.join(FAMILIES)}")
    return tuple(class_names(family))
