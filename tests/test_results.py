"""The typed-result base: JSON form from the fields, and every result type has its human text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from panoedge.results import Record, Result, fmt_or_na, json_field


@dataclass(frozen=True)
class _Part(Record):
    value: float
    note: str | None = json_field(omit_none=True, default=None)


@dataclass(frozen=True)
class _Report(Result):
    SCHEMA = "panoedge.test/1"
    path: Path
    parts: tuple[_Part, ...]
    size: tuple[int, int] = json_field(key="hw", default=(2, 4))
    handle: object = json_field(json=False, default=None)

    def format(self) -> str:
        return f"{len(self.parts)} parts"


def test_to_dict_is_plain_json_in_field_order_with_the_schema_first():
    rep = _Report(path=Path("/x/y"), parts=(_Part(np.float32(0.5)), _Part(1.0, note="n")), handle=object())
    assert rep.to_dict() == {"schema": "panoedge.test/1", "path": "/x/y",
                             "parts": [{"value": 0.5}, {"value": 1.0, "note": "n"}], "hw": [2, 4]}
    assert list(rep.to_dict()) == ["schema", "path", "parts", "hw"]
    assert type(rep.to_dict()["parts"][0]["value"]) is float


def test_a_result_type_without_format_cannot_be_made():
    @dataclass(frozen=True)
    class NoText(Result):
        n: int

    with pytest.raises(TypeError, match="format"):
        NoText(n=1)


def test_every_result_type_of_the_package_has_its_text():
    import importlib
    import pkgutil

    import panoedge

    for mod in pkgutil.walk_packages(panoedge.__path__, "panoedge."):
        if mod.name.startswith("panoedge.cli"):
            continue
        try:
            importlib.import_module(mod.name)
        except ImportError:  # an optional package (tensorrt, zmq...) absent here
            continue
    seen, missing = [], []
    stack = list(Result.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("panoedge."):
            seen.append(cls)
            if getattr(cls, "__abstractmethods__", None):
                missing.append(f"{cls.__module__}.{cls.__name__}")
    assert len(seen) >= 30, [c.__name__ for c in seen]  # the walk found the package's result types
    assert not missing, missing


def test_missing_figures_read_n_a():
    assert fmt_or_na(None) == "n/a" and fmt_or_na(2.345) == "2.3" and fmt_or_na(7, "d") == "7"


def test_a_broken_cached_report_is_one_error_naming_the_file(tmp_path):
    from panoedge.deploy.quantize import QuantizeResult
    from panoedge.errors import ConfigError

    path = tmp_path / "quantize.json"
    for text, problem in [('{"schema": "panoedge.quantize/1"', "not valid JSON"),
                          ('{"schema": "panoedge.quantize/1", "model": "m"}', "config: missing"),
                          ('{"schema": "panoedge.eval/1"}', "schema: expected 'panoedge.quantize/1'")]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=problem) as e:
            QuantizeResult.load(path)
        assert str(path) in str(e.value)
