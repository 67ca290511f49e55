"""Shared test fixtures: the real data beside the project, small deterministic images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


@pytest.fixture(autouse=True)
def _panoedge_home(tmp_path_factory, monkeypatch):
    """Every test gets its own cache folder: nothing leaks into ~/.cache."""
    monkeypatch.setenv("PANOEDGE_HOME", str(tmp_path_factory.mktemp("panoedge_home")))


def real_file(*parts: str) -> Path:
    """A file from ../shared/data/real, or skip where that folder is absent."""
    p = REAL.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not present: {p}")
    return p


@pytest.fixture
def smooth_erp() -> np.ndarray:
    """A smooth, seam-continuous 64x128 float32 RGB ERP image (band-limited on the sphere)."""
    from panoedge.geometry import erp_rays

    d = erp_rays(64, 128)
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    img = np.stack([0.5 + 0.4 * x * z, 0.5 + 0.3 * y + 0.1 * x, 0.5 + 0.4 * z * y], axis=-1)
    return img.astype(np.float32)


def threads() -> int:
    return int(os.environ.get("OMP_NUM_THREADS", "2"))
