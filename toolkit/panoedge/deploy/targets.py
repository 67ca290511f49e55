"""Target profiles: what a deployment target is (GPU, DLA, TensorRT, defaults), from TOML or YAML.

Profiles are human-edited files (CONVENTIONS.md), validated on load with errors that name the
file and the key. They are searched, first match wins, in ``./targets/``, the folders of
``$PANOEDGE_TARGETS`` (``os.pathsep``-separated) and the profiles shipped with panoedge
(``panoedge/deploy/targets/``). A file's ``name`` must equal its stem.

Keys (see the shipped ``jetson-agx-orin.toml``)::

    schema = "panoedge.target/1"; name; description
    kind = "jetson" | "gpu" | "cpu"; backend = "trt" | "ort-trt" | "ort-cuda" | "ort-cpu"
    precision = "int8" | "fp16" | "fp32"; input_size = "HxW"; int8_activations = "int8" | "uint8"
    int8_engine = "dla" | "gpu"   # TensorRT INT8 plan (default: dla where gpu.dla_cores > 0, else gpu)
    model_match = [substrings of /proc/device-tree/model]   # Jetson modules
    modules = [profile names]                                # a family profile such as "jetson"
    [gpu] compute_capability = "8.7" | "detect" | "none"; dla_cores; memory_gb; min_compute_capability
    [software] jetpack; tensorrt; [software.jetpack_tensorrt] "6.0" = "8.6.2" ...
    [sources] key = "where the fact comes from"
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from panoedge.errors import ConfigError, unknown_name
from panoedge.results import Result
from panoedge.runtime.trt_select import version_key

SCHEMA = "panoedge.target/1"
KINDS = ("jetson", "gpu", "cpu")
BACKENDS = ("trt", "ort-trt", "ort-cuda", "ort-cpu")
PRECISIONS = ("int8", "fp16", "fp32")
ACTIVATIONS = ("int8", "uint8")
#: TensorRT INT8 engine plans: ``dla`` = FP32 ONNX + calibration cache on a DLA core with GPU
#: fallback (the DLA runs implicit INT8 only); ``gpu`` = the QDQ ONNX on the GPU (explicit INT8).
INT8_ENGINES = ("dla", "gpu")
SUFFIXES = (".toml", ".yaml", ".yml")
PACKAGED = Path(__file__).resolve().parent / "targets"


@dataclass(frozen=True)
class Target:
    """A validated target profile (see the module docstring for the file format)."""

    name: str
    description: str
    kind: str
    backend: str
    precision: str
    input_hw: tuple[int, int]
    int8_activations: str
    compute_capability: str
    dla_cores: int
    int8_engine: str = "gpu"
    memory_gb: tuple[float, ...] = ()
    min_compute_capability: str | None = None
    jetpack: str | None = None
    tensorrt: str | None = None
    jetpack_tensorrt: dict = field(default_factory=dict)
    model_match: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    sources: dict = field(default_factory=dict)
    path: str = ""

    @property
    def uses_tensorrt(self) -> bool:
        return self.backend in ("trt", "ort-trt")

    @property
    def implicit_tensorrt(self) -> str:
        """The TensorRT the bundle's calibration cache header is written for: the profile's default
        (``software.tensorrt``), else 8.6.2. Other versions get a retagged copy at engine time
        (:func:`panoedge.deploy.trt_cache.retag`)."""
        return self.tensorrt or "8.6.2"

    @property
    def tensorrt_versions(self) -> tuple[str, ...]:
        """Every TensorRT this target names (its JetPacks' and its default), oldest first."""
        found = set(self.jetpack_tensorrt.values()) | ({self.tensorrt} if self.tensorrt else set())
        return tuple(sorted(found, key=version_key))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = f"{self.input_hw[0]}x{self.input_hw[1]}"
        return d


def search_path() -> list[Path]:
    """Folders searched for profiles, in order: ./targets, $PANOEDGE_TARGETS, the packaged ones."""
    env = [Path(p) for p in os.environ.get("PANOEDGE_TARGETS", "").split(os.pathsep) if p]
    return [Path.cwd() / "targets", *env, PACKAGED]


def _profile_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in search_path():
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if p.suffix.lower() in SUFFIXES and not p.name.startswith("."):
                found.setdefault(p.stem, p)
    return found


def list_targets() -> list[str]:
    """Names of every profile on the search path, sorted."""
    return sorted(_profile_files())


TOP_KEYS = ("schema", "name", "description", "kind", "backend", "precision", "input_size", "int8_activations", "int8_engine",
            "model_match", "modules", "gpu", "software", "sources")
GPU_KEYS = ("compute_capability", "dla_cores", "memory_gb", "min_compute_capability")
SOFTWARE_KEYS = ("jetpack", "tensorrt", "jetpack_tensorrt")


def _read(path: Path) -> dict:
    """A profile file through :mod:`panoedge.safe_load` (bounded, no NaN, unknown keys refused)."""
    from panoedge.safe_load import check_keys, load_file

    data = load_file(path)
    check_keys(data, TOP_KEYS, path)
    for table, keys in (("gpu", GPU_KEYS), ("software", SOFTWARE_KEYS)):
        sub = data.get(table, {})
        if not isinstance(sub, dict):
            raise ConfigError(path, table, f"{sub!r}: expected a table")
        check_keys(sub, keys, source=path, where=f"{table}.")
    return data


def _choice(path, data: dict, key: str, allowed) -> str:
    value = data.get(key)
    if value not in allowed:
        raise ConfigError(path, key, f"{value!r}: expected one of {', '.join(allowed)}")
    return value


def _version(path, key: str, value, allow=()) -> str | None:
    if value is None or value in allow:
        return value
    if not isinstance(value, str) or not re.fullmatch(r"\d+(\.\d+){0,3}", value):
        raise ConfigError(path, key, f"{value!r}: expected a version string such as \"8.7\" or \"10.3.0\"")
    return value


def parse_target(data: dict, path: str | Path = "<dict>") -> Target:
    """Validate a profile's parsed content; every problem names ``path`` and the key."""
    from panoedge.geometry import check_erp_size, parse_hw
    from panoedge.errors import UsageError

    if data.get("schema") != SCHEMA:
        raise ConfigError(path, "schema", f"{data.get('schema')!r}: expected {SCHEMA!r}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(path, "name", "missing")
    if Path(str(path)).suffix in SUFFIXES and Path(str(path)).stem != name:
        raise ConfigError(path, "name", f"{name!r} differs from the file name {Path(str(path)).stem!r}")
    try:
        hw = check_erp_size(*parse_hw(data.get("input_size", ""), "input_size"), "input_size", multiple=32)
    except UsageError as e:
        raise ConfigError(path, "input_size", f"{data.get('input_size')!r}: {e} (HxW, W = 2H, H a multiple of 32)") from None
    gpu, sw = data.get("gpu") or {}, data.get("software") or {}
    dla = gpu.get("dla_cores", 0)
    if isinstance(dla, bool) or not isinstance(dla, int) or not 0 <= dla <= 2:
        raise ConfigError(path, "gpu.dla_cores", f"{dla!r}: expected an integer in [0, 2]")
    mem = gpu.get("memory_gb", [])
    if not isinstance(mem, list) or not all(isinstance(m, (int, float)) and not isinstance(m, bool) and m > 0 for m in mem):
        raise ConfigError(path, "gpu.memory_gb", f"{mem!r}: expected a list of positive numbers")
    jt = sw.get("jetpack_tensorrt", {}) or {}
    for jp, trt in jt.items():
        _version(path, f"software.jetpack_tensorrt.{jp}", trt)
    jetpack = _version(path, "software.jetpack", sw.get("jetpack"))
    if jetpack is not None and jetpack not in jt:
        raise ConfigError(path, "software.jetpack", f"{jetpack!r}: not in software.jetpack_tensorrt ({', '.join(jt)})")
    tensorrt = _version(path, "software.tensorrt", sw.get("tensorrt")) or (jt.get(jetpack) if jetpack else None)
    int8_engine = data.get("int8_engine", "dla" if dla else "gpu")
    if int8_engine not in INT8_ENGINES:
        raise ConfigError(path, "int8_engine", f"{int8_engine!r}: expected one of {', '.join(INT8_ENGINES)}")
    if int8_engine == "dla" and not dla:
        raise ConfigError(path, "int8_engine", "'dla' needs gpu.dla_cores > 0 (this profile has none): use 'gpu'")
    kind = _choice(path, data, key="kind", allowed=KINDS)
    backend = _choice(path, data, key="backend", allowed=BACKENDS)
    if backend in ("trt", "ort-trt") and tensorrt is None:
        raise ConfigError(path, "software.tensorrt", f"backend {backend} needs a TensorRT version (or software.jetpack)")
    return Target(
        name=name, description=str(data.get("description", "")), kind=kind, backend=backend,
        precision=_choice(path, data, key="precision", allowed=PRECISIONS), input_hw=hw,
        int8_activations=_choice(path, data, key="int8_activations", allowed=ACTIVATIONS),
        compute_capability=_version(path, "gpu.compute_capability", gpu.get("compute_capability", "none"),
                                    allow=("detect", "none")),
        dla_cores=dla, int8_engine=int8_engine, memory_gb=tuple(mem),
        min_compute_capability=_version(path, "gpu.min_compute_capability", gpu.get("min_compute_capability")),
        jetpack=jetpack, tensorrt=tensorrt, jetpack_tensorrt=dict(jt),
        model_match=tuple(data.get("model_match", ())), modules=tuple(data.get("modules", ())),
        sources=dict(data.get("sources", {})), path=str(path))


def load_target(name_or_path: str | Path) -> Target:
    """A profile by name (searched, see :func:`search_path`) or by file path.

    An unknown name is a ``UsageError`` listing the valid ones.
    """
    p = Path(str(name_or_path))
    if p.suffix.lower() in SUFFIXES and p.is_file():
        return parse_target(_read(p), p)
    files = _profile_files()
    if str(name_or_path) not in files:
        raise unknown_name("target", str(name_or_path), files)
    path = files[str(name_or_path)]
    return parse_target(_read(path), path)


@dataclass(frozen=True)
class TargetList(Result):
    """Every target profile found (``panoedge targets``), in :func:`list_targets` order."""

    SCHEMA = "panoedge.targets/1"
    targets: tuple[Target, ...]

    def format(self) -> str:
        lines = [f"{'name':<18} {'kind':<7} {'backend':<8} {'prec':<5} {'input':<9} {'sm':<7} {'DLA':>3} "
                 f"{'TensorRT':<9} description"]
        lines += [f"{t.name:<18} {t.kind:<7} {t.backend:<8} {t.precision:<5} {t.input_hw[0]}x{t.input_hw[1]:<5} "
                  f"{t.compute_capability:<7} {t.dla_cores:>3} {t.tensorrt or '-':<9} {t.description}"
                  for t in self.targets]
        return "\n".join(lines)


def all_targets() -> TargetList:
    """Every profile :func:`list_targets` names, loaded."""
    return TargetList(targets=tuple(load_target(name) for name in list_targets()))


def detect_module(family: Target, model_text: str | None) -> Target | None:
    """The module profile of ``family.modules`` whose ``model_match`` occurs in ``model_text``."""
    if not model_text:
        return None
    for name in family.modules or (family.name,):
        t = load_target(name)
        if any(m.lower() in model_text.lower() for m in t.model_match):
            return t
    return None
