"""Dataset folders (CONVENTIONS.md), plain image folders, published layouts, stitched recordings, and
synthetic dataset folders rendered from :mod:`panoedge.synth` (:mod:`panoedge.data.synth_folder`): ``data``
stands on ``synth``, never the other way."""

from panoedge.data.folder import DatasetFolder, read_meta, write_meta
from panoedge.data.images import ImageFolder
from panoedge.data.source import parse_synth, resolve_data

__all__ = ["DatasetFolder", "ImageFolder", "parse_synth", "read_meta", "resolve_data", "write_meta"]
