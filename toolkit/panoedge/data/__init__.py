"""Dataset folders (CONVENTIONS.md), loaders and seam-safe augmentation."""

from panoedge.data.folder import DatasetFolder, read_meta, write_meta

__all__ = ["DatasetFolder", "read_meta", "write_meta"]
