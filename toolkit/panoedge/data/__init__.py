"""Dataset folders (CONVENTIONS.md), loaders and seam-safe augmentation."""

from panoedge.data.folder import DatasetFolder, read_meta, write_meta
from panoedge.data.source import parse_synth, resolve_data

__all__ = ["DatasetFolder", "parse_synth", "read_meta", "resolve_data", "write_meta"]
