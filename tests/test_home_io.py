"""The cache folder, atomic writes and the image/depth/label file conventions."""

from __future__ import annotations

import numpy as np
import pytest

from panoedge.errors import DataError
from panoedge.home import atomic_dir, cache_usage, clear_cache, content_key, panoedge_home
from panoedge.io import colorize_depth, read_depth, read_labels, read_rgb, write_depth, write_labels, write_rgb


def test_home_follows_env_and_keys_are_stable(tmp_path, monkeypatch):
    monkeypatch.setenv("PANOEDGE_HOME", str(tmp_path))
    assert panoedge_home() == tmp_path
    assert content_key("a", {"b": 1, "c": 2}) == content_key("a", {"c": 2, "b": 1})
    assert content_key("a", 1) != content_key("a", 2)
    (tmp_path / "synth" / "k1").mkdir(parents=True)
    (tmp_path / "synth" / "k1" / "f").write_bytes(b"xyz")
    assert cache_usage().kinds["synth"].to_dict() == {"entries": 1, "files": 1, "bytes": 3}
    assert clear_cache("synth") == 3 and "synth" not in cache_usage().kinds


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "bundle"
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("interrupted")
    assert not final.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(final) as tmp:
        (tmp / "whole").write_text("x")
    assert (final / "whole").read_text() == "x"


def test_depth_round_trips_png_mm_and_npy(tmp_path):
    d = np.array([[0.0, 1.2345], [np.inf, 65.0]], dtype=np.float32)
    write_depth(tmp_path / "d.png", d)
    back = read_depth(tmp_path / "d.png")
    assert back[0, 0] == 0 and back[1, 0] == 0 and abs(back[0, 1] - 1.234) < 1e-3 or abs(back[0, 1] - 1.235) < 1e-3
    write_depth(tmp_path / "d.npy", d)
    assert np.allclose(read_depth(tmp_path / "d.npy"), [[0, 1.2345], [0, 65.0]])


def test_rgb_and_labels_round_trip_and_bad_files(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (8, 16, 3), dtype=np.uint8)
    write_rgb(tmp_path / "a.png", rgb)
    assert np.array_equal(read_rgb(tmp_path / "a.png"), rgb)
    lab = np.full((8, 16), 255, np.uint8)
    lab[2:4] = 3
    write_labels(tmp_path / "l.png", lab)
    assert np.array_equal(read_labels(tmp_path / "l.png"), lab)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="bad.png"):
        read_rgb(tmp_path / "bad.png")
    with pytest.raises(DataError, match="no such"):
        read_rgb(tmp_path / "missing.png")
    with pytest.raises(DataError, match="16-bit"):
        read_depth(tmp_path / "a.png")
    assert colorize_depth(np.array([[0.0, 1.0], [2.0, 3.0]])).shape == (2, 2, 3)
