"""The layers hold: dependency rules read from the source (lazy imports included), and the light side
imports with torch blocked.

The graph comes from ``tests/import_graph.py`` (``ast``: an import inside a function body counts like one
at the top), so a new arrow the wrong way fails here, not on a robot. ``python tests/import_graph.py``
prints the same graph as a report.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests import import_graph as ig

TORCH_FREE = ["panoedge.geometry", "panoedge.stitch", "panoedge.io", "panoedge.home", "panoedge.env",
              "panoedge.synth.world", "panoedge.synth.render", "panoedge.synth.dataset", "panoedge.data",
              "panoedge.cli", "panoedge.runtime", "panoedge.live"]

TORCH_LIKE = {"torch", "torchvision", "transformers", "timm"}
TRAINING_SIDE = {"models", "distill", "deploy", "eval", "cli", "demo"}
# The robot's packages: what a bundle runs on (NumPy, OpenCV, ONNX Runtime or TensorRT).
ROBOT = {"runtime": set(), "live": set(),
         # the stitcher's optional CUDA path (``device="cuda"``) remaps with torch when it is installed
         "stitch": {"panoedge.stitch.gpu"}}
LEAVES = {"errors", "metrics", "timing", "results", "versions"}


@pytest.fixture(scope="module")
def graph() -> ig.Graph:
    return ig.build()


def _where(e: ig.Edge) -> str:
    return f"{e.source}:{e.line} imports {e.target}" + (" (lazily)" if e.lazy else "")


@pytest.mark.parametrize("package", sorted(ROBOT))
def test_robot_packages_never_import_torch_or_the_training_side(graph, package):
    allowed_torch = ROBOT[package]
    bad = [_where(e) for e in graph.external
           if graph.package_of(e.source) == package and e.target in TORCH_LIKE and e.source not in allowed_torch]
    bad += [_where(e) for e in graph.edges
            if graph.package_of(e.source) == package and graph.package_of(e.target) in TRAINING_SIDE]
    assert not bad, "\n".join(bad)


def test_no_package_cycles(graph):
    assert ig.package_cycles(graph) == []


def test_no_file_cycles(graph):
    assert ig.file_cycles(graph) == []


def test_geometry_stands_on_nothing_of_ours(graph):
    bad = [_where(e) for e in graph.edges
           if graph.package_of(e.source) == "geometry" and graph.package_of(e.target) not in ("geometry", "errors")]
    assert not bad, "\n".join(bad)


def test_leaf_modules_import_nothing_of_ours(graph):
    bad = [_where(e) for e in graph.edges
           if graph.package_of(e.source) in LEAVES and graph.package_of(e.target) != "errors"]
    assert not bad, "\n".join(bad)


def test_nothing_imports_the_cli(graph):
    bad = [_where(e) for e in graph.edges
           if graph.package_of(e.target) == "cli" and graph.package_of(e.source) != "cli"]
    assert not bad, "\n".join(bad)


def test_the_graph_sees_lazy_imports():
    """The rules above would pass vacuously if lazy imports were missed: a function-level import of the
    training side from runtime must show up."""
    tree = ast.parse("def f():\n    from panoedge.distill import trainer\n    import torch\n")
    v = ig._Visitor("panoedge.runtime.x", is_pkg=False)
    v.visit(tree)
    assert [(name, lazy) for name, _, lazy, _ in v.found] == [("panoedge.distill.trainer", True), ("torch", True)]


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


def test_eval_is_a_top_floor(graph):
    """Evaluators and benchmarks stand on distill, stitch and runtime; only the CLI and the demo stand on them
    (the metrics they share are the leaf ``panoedge.metrics``)."""
    bad = [_where(e) for e in graph.edges
           if graph.package_of(e.target) == "eval" and graph.package_of(e.source) not in ("eval", "cli", "demo")]
    assert not bad, "\n".join(bad)


def test_no_private_helpers_across_modules():
    """A ``_name`` is its module's own; another module that needs it gets a public name."""
    bad = []
    for path in sorted(ig.ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("panoedge"):
                bad += [f"{ig.module_name(path)}:{node.lineno} imports {node.module}.{a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, "\n".join(bad)


def test_the_cli_and_the_demo_read_no_report_by_string_key():
    """Commands print ``result.format()`` and write ``result.to_dict()``; a report's keys are read only in the
    module that defines it (a renamed key then fails where it is defined, not in a user's terminal)."""
    files = sorted((ig.ROOT / "cli").glob("*.py")) + sorted((ig.ROOT / "demo").glob("*.py"))
    reads = {f.name: ig.string_key_reads([f]) for f in files}
    assert sum(reads.values()) == 0, {k: v for k, v in reads.items() if v}
