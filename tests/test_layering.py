"""The deployable side stays light: these modules import with torch blocked."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

TORCH_FREE = ["panoedge.geometry", "panoedge.stitch", "panoedge.io", "panoedge.home", "panoedge.env",
              "panoedge.synth.world", "panoedge.synth.render", "panoedge.synth.dataset", "panoedge.data",
              "panoedge.cli", "panoedge.runtime", "panoedge.live"]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_imports_without_torch(module):
    code = f"import sys; sys.modules['torch'] = None; import {module}"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_geometry_imports_nothing_of_ours():
    code = ("import sys, panoedge.geometry; "
            "mods = [m for m in sys.modules if m.startswith('panoedge.') and not m.startswith('panoedge.geometry')]; "
            "print(sorted(mods))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert set(ast.literal_eval(res.stdout)) <= {"panoedge.errors"}
