"""A bundle's ``manifest.json``: its shape, the paths it names, and the one check that
``panoedge bundle verify`` and ``panoedge run`` both go through (:func:`verify_bundle`).

A robot runs bundles copied from elsewhere, so the manifest is read as hostile:

- it is parsed by :mod:`panoedge.safe_load` (bounded, strict JSON) and its shape is checked
  field by field, so a malformed manifest is one ``DataError`` line, never a traceback;
- every path it names (``files``, ``models``, ``classes``, ``preprocess``, ``rig``, the
  calibration files) is a plain relative path inside the bundle (no ``..``, no absolute path,
  no symbolic link on the way), and every one of them is hashed in ``files``;
- every file in the folder is listed and matches its size and sha256; no symbolic links at all
  (``engines/``, built on the device, is not hashed but may not hold links either);
- with a trusted public key, ``manifest.sig`` must be a valid Ed25519 signature of the
  manifest's exact bytes by that key (:mod:`panoedge.runtime.signing`); the manifest hashes
  every file, so the signature covers the whole bundle.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from panoedge.errors import ConfigError, DataError
from panoedge.results import Record, Result, json_field

SCHEMA = "panoedge.bundle/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
UNHASHED_DIRS = ("engines",)
NOT_LISTED = (MANIFEST, SIGNATURE)
"""Files of a bundle that its manifest cannot hash: itself and its signature."""
_SHA256 = re.compile(r"[0-9a-f]{64}")
VERIFY_SCHEMA = "panoedge.bundle_verify/1"
#: Problems a refusal message quotes (the rest are in ``panoedge bundle verify``'s full list).
PROBLEMS_QUOTED = 5
#: Characters of a file's sha256 ``panoedge bundle info`` prints (enough to compare by eye).
SHA_PRINTED = 12


def read_manifest(bundle: str | Path) -> dict:
    """The bundle's ``manifest.json``, parsed safely and checked for shape; any problem is one ``DataError``."""
    from panoedge.safe_load import load_json

    bundle = Path(bundle)
    path = bundle / MANIFEST
    if not path.is_file() or path.is_symlink():
        raise DataError(f"{bundle}: not a panoedge bundle (no {MANIFEST})")
    try:
        manifest = load_json(path, expect=None)
    except ConfigError as e:
        raise DataError(str(e)) from None
    check_manifest(manifest, path)
    return manifest


def _bad(path, key: str, problem: str) -> DataError:
    return DataError(f"{path}: {key}: {problem}")


def _str(m: dict, key: str, path, optional: bool = False) -> str | None:
    v = m.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, str) or not v:
        raise _bad(path, key, f"{v!r}: expected a non-empty string")
    return v


def check_manifest(m, path) -> None:
    """Refuse a manifest whose fields a loader relies on are missing or of the wrong type."""
    if not isinstance(m, dict):
        raise _bad(path, "(top level)", f"expected a JSON object, got {type(m).__name__}")
    if m.get("schema") != SCHEMA:
        raise _bad(path, "schema", f"expected {SCHEMA!r}, got {m.get('schema')!r}")
    files = m.get("files")
    if not isinstance(files, dict):
        raise _bad(path, "files", "expected an object mapping relative paths to {sha256, bytes}")
    for rel, entry in files.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) \
                or not _SHA256.fullmatch(entry["sha256"]) or isinstance(entry.get("bytes"), bool) \
                or not isinstance(entry.get("bytes"), int) or entry["bytes"] < 0:
            raise _bad(path, f"files.{rel}", "expected {\"sha256\": 64 hex digits, \"bytes\": a non-negative integer}")
    models = m.get("models")
    if not isinstance(models, dict) or not models or not all(isinstance(v, str) for v in models.values()):
        raise _bad(path, "models", "expected an object mapping precisions to model files")
    _str(m, "classes", path)
    _str(m, "preprocess", path)
    _str(m, "rig", path, optional=True)
    calib = m.get("calibration", {}) or {}
    if not isinstance(calib, dict):
        raise _bad(path, "calibration", "expected an object")
    for key in ("trt_cache", "ranges"):
        if calib.get(key) is not None and not isinstance(calib[key], str):
            raise _bad(path, f"calibration.{key}", f"{calib[key]!r}: expected a file name")
    inp = m.get("input")
    shape = inp.get("shape") if isinstance(inp, dict) else None
    if not isinstance(inp, dict) or not isinstance(inp.get("name"), str) or not isinstance(shape, list) \
            or len(shape) != 4 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape[2:]):
        raise _bad(path, "input", "expected {\"name\": str, \"shape\": [N, C, H, W]} with positive integer H and W")
    target = m.get("target")
    if not isinstance(target, dict) or not all(isinstance(target.get(k), str) for k in ("name", "backend", "precision")):
        raise _bad(path, "target", "expected an object with string name, backend and precision")
    outputs = m.get("outputs", [])
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
        raise _bad(path, "outputs", "expected a list of {\"name\": str, ...}")
    model = m.get("model", {})
    if not isinstance(model, dict):
        raise _bad(path, "model", "expected an object")


def referenced_paths(m: dict) -> dict[str, str]:
    """``{manifest key: relative path}`` of every file the manifest points a loader at."""
    refs = {f"models.{k}": v for k, v in m["models"].items()}
    refs["classes"], refs["preprocess"] = m["classes"], m["preprocess"]
    if m.get("rig"):
        refs["rig"] = m["rig"]
    for key in ("trt_cache", "ranges"):
        if (m.get("calibration") or {}).get(key):
            refs[f"calibration.{key}"] = m["calibration"][key]
    return refs


def path_problem(bundle: Path, rel) -> str | None:
    """Why ``rel`` is not a plain file inside ``bundle`` reached without links, or ``None``."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or "\\" in rel:
        return "not a plain relative path"
    pure = PurePosixPath(rel)
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", rel) or any(p in ("..", ".", "") for p in rel.split("/")):
        return "not a relative path inside the bundle"
    here = bundle
    for part in pure.parts:
        here = here / part
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            return "missing"
        except OSError as e:
            return f"unreadable ({e.strerror})"
        if stat.S_ISLNK(st.st_mode):
            return "a symbolic link (bundles hold plain files only)"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return None


def member(bundle: str | Path, rel: str, key: str = "") -> Path:
    """The path of bundle file ``rel`` after :func:`path_problem` found nothing wrong (else ``DataError``)."""
    bundle = Path(bundle)
    problem = path_problem(bundle, rel)
    if problem:
        raise DataError(f"{bundle}: {key or 'file'} {rel!r}: {problem}")
    return bundle / rel


def bundle_files(bundle: Path) -> list[str]:
    """Relative paths of every file the manifest must hash (all but the manifest, its signature and
    ``engines/``); symbolic links are listed too, so :func:`verify_bundle` refuses them."""
    out = []
    for root, dirs, names in os.walk(bundle, followlinks=False):
        rel_root = Path(root).relative_to(bundle).as_posix()
        for name in sorted(names + [d for d in dirs if os.path.islink(os.path.join(root, d))]):
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            if rel not in NOT_LISTED and rel.split("/")[0] not in UNHASHED_DIRS:
                out.append(rel)
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(root, d)))
    return sorted(out)


def _links_under(folder: Path) -> list[str]:
    if not folder.exists() and not folder.is_symlink():
        return []
    if folder.is_symlink():
        return [folder.name]
    return [os.path.join(r, n) for r, d, f in os.walk(folder, followlinks=False) for n in d + f
            if os.path.islink(os.path.join(r, n))]


@dataclass(frozen=True)
class VerifyResult(Result):
    """What :func:`verify_bundle` found: ``ok`` when ``problems`` is empty."""

    SCHEMA = VERIFY_SCHEMA
    bundle: str
    ok: bool
    n_files: int
    signed: bool
    signature: str
    problems: tuple[str, ...]

    def refusal(self, what: str, n: int | None = PROBLEMS_QUOTED) -> str:
        """``{bundle}: {what}: problem; problem...`` (the first ``n``; all for ``None``)."""
        return f"{self.bundle}: {what}: " + "; ".join(self.problems[:n])

    def format(self) -> str:
        if not self.ok:
            return self.refusal(f"{len(self.problems)} problem(s)", None)
        return f"{self.bundle}: ok ({self.n_files} files match the manifest; signature {self.signature})"


def verify_bundle(bundle: str | Path, trusted_key: str | Path | None = None) -> VerifyResult:
    """Every check of the module docstring.

    A malformed manifest raises ``DataError``; everything else that is wrong is listed in
    ``problems`` (so ``verify`` can print them all). ``trusted_key``: a PEM Ed25519 public key the
    signature must verify against; without it an existing signature is reported, not checked.
    """
    bundle = Path(bundle)
    if trusted_key is not None:
        from panoedge.runtime.signing import require_crypto

        require_crypto("--trusted-key")
    manifest = read_manifest(bundle)
    listed = manifest["files"]
    problems = _file_problems(bundle, listed) + _reference_problems(bundle, manifest, listed)
    signature = "unsigned"
    if trusted_key is not None:
        from panoedge.runtime.signing import verify_signature

        problem = verify_signature(bundle / MANIFEST, bundle / SIGNATURE, trusted_key)
        if problem:
            problems.append(problem)
            signature = "refused"
        else:
            signature = "verified"
    elif (bundle / SIGNATURE).is_file():
        signature = "present, not checked (no trusted key given)"
    return VerifyResult(bundle=str(bundle), ok=not problems, n_files=len(listed),
                        signed=(bundle / SIGNATURE).is_file(), signature=signature, problems=tuple(problems))


def _file_problems(bundle: Path, listed: dict) -> list[str]:
    """Listed files that are missing, links, or differ in size or sha256 from the manifest."""
    from panoedge.home import sha256_file

    problems = []
    for rel, entry in listed.items():
        problem = path_problem(bundle, rel)
        if problem:
            problems.append(f"{rel}: {problem}")
            continue
        p = bundle / rel
        if p.stat().st_size != entry["bytes"]:
            problems.append(f"{rel}: size {p.stat().st_size} != {entry['bytes']} in the manifest")
        elif sha256_file(p) != entry["sha256"]:
            problems.append(f"{rel}: sha256 differs from the manifest (the file was changed)")
    return problems


def _reference_problems(bundle: Path, manifest: dict, listed: dict) -> list[str]:
    """Referenced files not hashed, files not listed, and links under ``engines/``."""
    problems = []
    for key, rel in referenced_paths(manifest).items():
        if rel not in listed:
            problem = path_problem(bundle, rel)
            problems.append(f"{key} {rel!r}: not hashed in the manifest's files" + (f" ({problem})" if problem else ""))
    for rel in bundle_files(bundle):
        if rel not in listed:
            link = os.path.islink(bundle / rel)
            problems.append(f"{rel}: {'a symbolic link' if link else 'not listed in the manifest (added after the build)'}")
    for link in _links_under(bundle / "engines"):
        problems.append(f"{link}: a symbolic link (bundles hold plain files only)")
    return problems


# ---------------------------------------------------------------- a typed view of the manifest


#: How ``panoedge build`` names where the input size came from.
SIZE_ORIGINS = {"trained": "the size the student was trained at", "--size": "--size",
                "target": "the target profile's size"}


@dataclass(frozen=True)
class InputSize(Record):
    """The bundle's input size and where it came from (``trained``, ``--size`` or ``target``)."""

    hw: tuple[int, int]
    origin: str = json_field(key="from")
    trained_hw: tuple[int, int] | None = None
    target_hw: tuple[int, int] | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "InputSize":
        def hw(v):
            return tuple(v) if v else None

        return cls(hw=hw(d.get("hw")), origin=d.get("from"), trained_hw=hw(d.get("trained_hw")),
                   target_hw=hw(d.get("target_hw")))

    def format(self, target: str) -> str:
        return (f"input {self.hw[0]}x{self.hw[1]} ({SIZE_ORIGINS.get(self.origin, self.origin)}; "
                f"{target} profile: {self.target_hw[0]}x{self.target_hw[1]})")


@dataclass(frozen=True)
class FileEntry(Record):
    """One hashed file of the bundle."""

    sha256: str
    bytes: int


@dataclass(frozen=True)
class TensorInfo(Record):
    """A model input or output as the manifest lists it."""

    name: str
    dtype: str | None
    shape: tuple | None

    @classmethod
    def from_dict(cls, d: dict) -> "TensorInfo":
        shape = d.get("shape")
        return cls(name=d.get("name"), dtype=d.get("dtype"), shape=tuple(shape) if isinstance(shape, list) else shape)

    def format(self) -> str:
        shape = list(self.shape) if isinstance(self.shape, tuple) else self.shape
        return f"{self.name} {self.dtype}{shape}"


@dataclass(frozen=True)
class ManifestTarget(Record):
    """The target a bundle was built for (the whole profile stays in ``raw``)."""

    name: str
    backend: str
    precision: str

    @property
    def uses_tensorrt(self) -> bool:
        return self.backend in ("trt", "ort-trt")


@dataclass(frozen=True)
class BundleManifest(Result):
    """A typed view of a bundle's ``manifest.json`` (``panoedge bundle info``); ``to_dict()`` is the
    manifest exactly as written, and the fields are what people and the build report read."""

    SCHEMA = SCHEMA
    target: ManifestTarget
    model_name: str | None
    num_classes: int | None
    source: str | None
    input: TensorInfo
    outputs: tuple[TensorInfo, ...]
    models: dict[str, str]
    files: dict[str, FileEntry]
    input_size: InputSize | None
    warnings: tuple[str, ...]
    engine_plan_reason: str | None
    build_seconds: float | None
    raw: dict = json_field(json=False, repr=False, compare=False)

    @classmethod
    def from_dict(cls, m: dict) -> "BundleManifest":
        """The view of a manifest :func:`check_manifest` accepted (optional parts may be absent)."""
        model = m.get("model") or {}
        t = m["target"]
        return cls(target=ManifestTarget(name=t["name"], backend=t["backend"], precision=t["precision"]),
                   model_name=model.get("name"), num_classes=model.get("num_classes"), source=model.get("source"),
                   input=TensorInfo.from_dict(m["input"]),
                   outputs=tuple(TensorInfo.from_dict(o) for o in m.get("outputs", [])), models=dict(m["models"]),
                   files={rel: FileEntry(sha256=f["sha256"], bytes=f["bytes"]) for rel, f in m["files"].items()},
                   input_size=InputSize.from_dict(m["input_size"]) if m.get("input_size") else None,
                   warnings=tuple(m.get("warnings") or ()),
                   engine_plan_reason=(m.get("engine_plan") or {}).get("reason"),
                   build_seconds=m.get("build_seconds"), raw=m)

    def to_dict(self) -> dict:
        return dict(self.raw)

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files.values())

    def model_for(self, precision: str | None = None) -> str | None:
        """The bundle-relative model file for ``precision`` (default: the target's), falling back to the
        FP32 model; ``None`` when the manifest lists neither."""
        want = precision or self.target.precision or "fp32"
        return self.models.get(want) or self.models.get("fp32")

    def model_sha256(self, precision: str) -> str:
        """The sha256 of the bundle's ``precision`` model."""
        return self.files[self.models[precision]].sha256

    def accuracy_line(self) -> str | None:
        """FP32 vs INT8 area-weighted mIoU and the layers kept in float, where the build measured them."""
        acc = self.raw.get("accuracy") or {}
        if not acc.get("fp32"):
            return None
        return (f"accuracy FP32 mIoU {acc['fp32'].get('miou_area', float('nan')):.2f} / INT8 "
                f"{acc['int8'].get('miou_area', float('nan')):.2f} (area-weighted); "
                f"{len(acc.get('excluded_nodes') or [])} layers kept in float")

    def format(self) -> str:
        t = self.target
        lines = [f"target   {t.name} ({t.backend}, {t.precision})",
                 f"model    {self.model_name} ({self.num_classes} classes) from {self.source}",
                 f"input    {self.input.format()}",
                 "outputs  " + ", ".join(o.format() for o in self.outputs)]
        if self.accuracy_line():
            lines.append(self.accuracy_line())
        lines += [f"  {rel:<32} {f.bytes:>10,} B  {f.sha256[:SHA_PRINTED]}" for rel, f in self.files.items()]
        return "\n".join(lines)


def inspect_bundle(bundle: str | Path) -> BundleManifest:
    """The typed view of ``bundle``'s manifest (read and shape-checked by :func:`read_manifest`)."""
    return BundleManifest.from_dict(read_manifest(bundle))
