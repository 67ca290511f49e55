"""panoedge's own exception types.

The CLI turns these (and only these) into one clear line and a non-zero exit code;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class PanoedgeError(Exception):
    """Base class of every error panoedge raises on purpose (bad input, bad config)."""

    exit_code = 1


class UsageError(PanoedgeError, ValueError):
    """A bad argument: wrong size, unknown name, out-of-range value."""

    exit_code = 2


class ConfigError(PanoedgeError, ValueError):
    """A bad field in a human-edited file: names the file, the key and what was expected."""

    exit_code = 2

    def __init__(self, path: str | Path | None, key: str, problem: str):
        self.path = str(path) if path is not None else None
        self.key = key
        self.problem = problem
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{key}: {problem}")


class DataError(PanoedgeError):
    """Unreadable, missing or malformed data on disk (images, datasets, models)."""

    exit_code = 3


def unknown_name(kind: str, name: str, valid) -> UsageError:
    """The error for a name missing from a registry, listing the valid ones."""
    return UsageError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}")


class Interrupted(PanoedgeError):
    """Ctrl-C or SIGTERM stopped a long job cleanly (state saved); the message says how to resume."""

    exit_code = 130
