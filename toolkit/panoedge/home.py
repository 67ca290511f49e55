"""The one folder panoedge caches into, keyed by content hashes, and atomic writes.

Everything panoedge caches (synthetic renders, trained teachers, pseudo labels, stitch
tables, engines) lives under ``$PANOEDGE_HOME`` (default ``~/.cache/panoedge``) as
``<home>/<kind>/<key>/``, where ``key`` hashes everything the content depends on.
Outputs are written to a temporary path beside their destination and moved into place,
so an interrupted run never leaves a half-written file or folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from panoedge.results import Record, Result


def panoedge_home() -> Path:
    """``$PANOEDGE_HOME`` or ``~/.cache/panoedge``."""
    env = os.environ.get("PANOEDGE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "panoedge"


def content_key(*parts) -> str:
    """A short stable hash of JSON-serialisable parts (sorted keys), 16 hex digits."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cache_dir(kind: str, key: str) -> Path:
    """``<home>/<kind>/<key>`` (not created)."""
    return panoedge_home() / kind / key


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


_UMASK: list[int] = []


def umask() -> int:
    """The process umask (read once; ``os.umask`` can only be read by setting it)."""
    if not _UMASK:
        try:  # Linux >= 4.7 shows it without changing it
            line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("Umask:"))
            _UMASK.append(int(line.split()[1], 8))
        except (OSError, StopIteration, ValueError, IndexError):
            mask = os.umask(0o022)
            os.umask(mask)
            _UMASK.append(mask)
    return _UMASK[0]


def shareable(path: str | Path, is_dir: bool = False) -> None:
    """Give a temp file (``mkstemp``: 0600) or folder (``mkdtemp``: 0700) the permissions a plain
    ``open``/``mkdir`` would have had under the umask (0644/0755 by default), so outputs can be shared."""
    os.chmod(path, (0o777 if is_dir else 0o666) & ~umask())


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temp file beside ``path`` and move it into place (usual permissions)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        shareable(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def finite_or_none(obj):
    """``obj`` with every NaN or infinity replaced by ``None`` (and NumPy values made plain), so it
    can be written as strict JSON: a missing number is ``null``, never ``NaN`` (not JSON)."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    if type(obj).__module__ == "numpy":
        return finite_or_none(_json_default(obj))
    return obj


def dumps_json(obj, **kw) -> str:
    """Strict JSON text of ``obj`` (:func:`finite_or_none` first; ``allow_nan=False``)."""
    return json.dumps(finite_or_none(obj), allow_nan=False, default=_json_default, **kw)


def write_json(path: str | Path, obj) -> Path:
    """Atomically write pretty, strict JSON (non-finite numbers become ``null``; machine-written
    records carry their own ``schema``)."""
    return atomic_write_text(path, dumps_json(obj, indent=2, sort_keys=False) + "\n")


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@contextlib.contextmanager
def atomic_dir(final: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp folder beside ``final``; on success it replaces ``final`` in one rename.

    On error (Ctrl-C and, in the CLI, SIGTERM included) the temp folder is removed and ``final``
    is untouched. A process killed outright leaves its ``.NAME.<pid>-<random>.partial`` folder; the
    next write of the same ``final`` removes it (:func:`remove_stale_partials`).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.{os.getpid()}-", suffix=".partial", dir=final.parent))
    shareable(tmp, is_dir=True)
    try:
        yield tmp
        if final.exists():
            if not overwrite:
                raise FileExistsError(f"{final} already exists")
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


STALE_PARTIAL_S = 3600.0
"""A ``.partial`` folder without a live owner's pid in its name counts as abandoned after this long."""


def _owner_alive(name: str, prefix: str) -> bool | None:
    """Whether the pid in ``.NAME.<pid>-<random>.partial`` is a live process (``None``: no pid in the name)."""
    pid = name[len(prefix):].split("-", 1)[0]
    if not pid.isdigit() or "-" not in name[len(prefix):]:
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_partials(final: str | Path) -> list[Path]:
    """Remove what interrupted writes of ``final`` left beside it: ``.partial`` folders whose
    process is gone (or, for names without a pid, older than :data:`STALE_PARTIAL_S`) and the
    ``.old`` folder of an interrupted replacement. Returns what was removed."""
    import time

    final = Path(final)
    prefix = f".{final.name}."
    removed = []
    if not final.parent.is_dir():
        return removed
    for p in final.parent.iterdir():
        if not (p.name.startswith(prefix) and p.name.endswith(".partial")) or p.is_symlink() or not p.is_dir():
            continue
        alive = _owner_alive(p.name[: -len(".partial")], prefix)
        with contextlib.suppress(OSError):
            if alive is False or (alive is None and time.time() - p.stat().st_mtime > STALE_PARTIAL_S):
                shutil.rmtree(p)
                removed.append(p)
    old = final.with_name(f".{final.name}.old")
    if old.is_dir() and not old.is_symlink() and final.exists():
        shutil.rmtree(old, ignore_errors=True)
        removed.append(old)
    return removed


def _tree_size(path: Path) -> tuple[int, int]:
    files = size = 0
    for root, _, names in os.walk(path):
        for n in names:
            with contextlib.suppress(OSError):
                size += (Path(root) / n).stat().st_size
                files += 1
    return files, size


@dataclass(frozen=True)
class KindUsage(Record):
    """One kind of cached content: top-level entries, files and bytes."""

    entries: int
    files: int
    bytes: int


@dataclass(frozen=True)
class CacheUsage(Result):
    """What is cached under ``$PANOEDGE_HOME``, per kind (``panoedge cache``)."""

    SCHEMA = "panoedge.cache/1"
    home: Path
    kinds: dict[str, KindUsage]

    def only(self, kind: str | None) -> "CacheUsage":
        """This usage restricted to ``kind`` (all kinds for ``None``)."""
        return self if kind is None else CacheUsage(home=self.home, kinds={k: u for k, u in self.kinds.items() if k == kind})

    def format(self) -> str:
        lines = [f"cache: {self.home}"]
        lines += [f"  {name:<14} {u.entries:>5} entries {u.files:>7} files {human_bytes(u.bytes):>10}"
                  for name, u in self.kinds.items()]
        lines.append(f"  {'total':<14} {human_bytes(sum(u.bytes for u in self.kinds.values())):>38}")
        return "\n".join(lines)


def human_bytes(n: float) -> str:
    """``n`` bytes for people: B, KiB, MiB or GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def cache_usage() -> CacheUsage:
    """Per kind of cached content: number of entries, files and bytes."""
    home = panoedge_home()
    out: dict[str, KindUsage] = {}
    if home.is_dir():
        for kind in sorted(p for p in home.iterdir() if p.is_dir()):
            entries = [p for p in kind.iterdir() if not p.name.startswith(".")]
            files, size = _tree_size(kind)
            out[kind.name] = KindUsage(entries=len(entries), files=files, bytes=size)
    return CacheUsage(home=home, kinds=out)


def clear_cache(kind: str | None = None) -> int:
    """Remove the whole cache, or one kind of it; returns the bytes freed."""
    home = panoedge_home()
    target = home if kind is None else home / kind
    if not target.exists():
        return 0
    _, size = _tree_size(target)
    shutil.rmtree(target)
    return size
