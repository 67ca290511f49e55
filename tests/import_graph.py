"""The package's import graph read from the source (every ``import``, lazy ones inside functions included).

Used by ``tests/test_layering.py`` to enforce the dependency rules, and runnable as a structure report::

    python tests/import_graph.py          # package cycles, file cycles, longest functions, string-key reads

Nothing is imported: the files are parsed with :mod:`ast`, so an import inside a function body or an
``if TYPE_CHECKING:`` block counts like one at the top (type-only imports are reported apart).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "toolkit" / "panoedge"
PACKAGE = "panoedge"


@dataclass(frozen=True)
class Edge:
    source: str  # importing module, dotted
    target: str  # imported panoedge module (or external top-level name), dotted
    line: int
    lazy: bool  # inside a function body
    type_only: bool  # under ``if TYPE_CHECKING:``


@dataclass
class Graph:
    modules: dict[str, Path] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)  # panoedge -> panoedge
    external: list[Edge] = field(default_factory=list)  # panoedge -> third party (top-level name)

    def package_of(self, module: str) -> str:
        """The first level below ``panoedge`` (``panoedge.eval.evaluate`` -> ``eval``; ``panoedge.demo`` -> ``demo``)."""
        parts = module.split(".")
        return parts[1] if len(parts) > 1 else parts[0]


def module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve(graph_modules: dict[str, Path], name: str) -> str | None:
    """The longest prefix of ``name`` that is one of our modules."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in graph_modules:
            return cand
        parts.pop()
    return None


class _Visitor(ast.NodeVisitor):
    def __init__(self, module: str, is_pkg: bool):
        self.module = module
        self.is_pkg = is_pkg
        self.depth = 0
        self.type_checking = 0
        self.found: list[tuple[str, int, bool, bool]] = []

    def _add(self, name: str, line: int) -> None:
        self.found.append((name, line, self.depth > 0, self.type_checking > 0))

    def visit_FunctionDef(self, node):  # noqa: N802 - ast's name
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef  # noqa: N815

    def visit_If(self, node):  # noqa: N802
        test = node.test
        tc = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
        if tc:
            self.type_checking += 1
            for n in node.body:
                self.visit(n)
            self.type_checking -= 1
            for n in node.orelse:
                self.visit(n)
        else:
            self.generic_visit(node)

    def visit_Import(self, node):  # noqa: N802
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node):  # noqa: N802
        if node.level:
            base = self.module.split(".")
            if not self.is_pkg:
                base = base[:-1]
            base = base[: len(base) - (node.level - 1)]
            mod = ".".join(base + ([node.module] if node.module else []))
        else:
            mod = node.module or ""
        for alias in node.names:
            self._add(f"{mod}.{alias.name}" if alias.name != "*" else mod, node.lineno)

    def visit_Call(self, node):  # noqa: N802 - importlib.import_module("panoedge.x") with a literal name
        f = node.func
        if (isinstance(f, ast.Attribute) and f.attr == "import_module" and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            self._add(node.args[0].value, node.lineno)
        self.generic_visit(node)


def build(root: Path = ROOT) -> Graph:
    g = Graph()
    files = sorted(root.rglob("*.py"))
    for p in files:
        g.modules[module_name(p)] = p
    for p in files:
        mod = module_name(p)
        v = _Visitor(mod, _is_package(p))
        v.visit(ast.parse(p.read_text(encoding="utf-8"), filename=str(p)))
        for name, line, lazy, tc in v.found:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                target = _resolve(g.modules, name)
                if target and target != mod:
                    g.edges.append(Edge(mod, target, line, lazy, tc))
            else:
                g.external.append(Edge(mod, name.split(".")[0], line, lazy, tc))
    return g


def _sccs(nodes: list[str], succ: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(succ.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for n in nodes:
        if n not in index:
            visit(n)
    return sorted(out)


def package_cycles(g: Graph, include_type_only: bool = False) -> list[list[str]]:
    succ: dict[str, set[str]] = {}
    for e in g.edges:
        if e.type_only and not include_type_only:
            continue
        a, b = g.package_of(e.source), g.package_of(e.target)
        if a != b and b != PACKAGE and a != PACKAGE:
            succ.setdefault(a, set()).add(b)
    nodes = sorted({g.package_of(m) for m in g.modules})
    return _sccs(nodes, succ)


def file_cycles(g: Graph, include_type_only: bool = False) -> list[list[str]]:
    """Cycles between modules (a package's ``__init__`` re-exporting its own files is not counted)."""
    succ: dict[str, set[str]] = {}
    for e in g.edges:
        if e.type_only and not include_type_only:
            continue
        if g.modules[e.source].name == "__init__.py" or g.modules[e.target].name == "__init__.py":
            continue
        succ.setdefault(e.source, set()).add(e.target)
    return _sccs(sorted(g.modules), succ)


def longest_functions(root: Path = ROOT, n: int = 5) -> list[tuple[int, str]]:
    out = []
    for p in sorted(root.rglob("*.py")):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((node.end_lineno - node.lineno + 1, f"{module_name(p, root)}.{node.name}"))
    return sorted(out, reverse=True)[:n]


def string_key_reads(paths: list[Path]) -> int:
    """``x["key"]`` loads and ``x.get("key")`` calls: how the CLI digs into dict reports."""
    count = 0
    for p in paths:
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load)
                    and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
                count += 1
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                  and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                  and not (isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "environ")):
                count += 1
    return count


def main() -> None:
    g = build()
    print(f"modules: {len(g.modules)}  internal import edges: {len(g.edges)} "
          f"({sum(e.lazy for e in g.edges)} lazy, {sum(e.type_only for e in g.edges)} type-only)")
    pc = package_cycles(g)
    print(f"package cycles: {len(pc)}")
    for c in pc:
        print("  " + " <-> ".join(c))
    fc = file_cycles(g)
    print(f"file cycles: {len(fc)}")
    for c in fc:
        print("  " + " <-> ".join(m.removeprefix("panoedge.") for m in c))
    print("longest functions:")
    for n, name in longest_functions():
        print(f"  {n:4d} {name}")
    cli = sorted((ROOT / "cli").glob("*.py")) + sorted((ROOT / "demo").glob("*.py"))
    print(f"string-key reads in cli/ and demo/: {string_key_reads(cli)}")
    torch_in_runtime = [e for e in g.external if e.target == "torch" and g.package_of(e.source) == "runtime"]
    print(f"torch imports in runtime/: {len(torch_in_runtime)}")


if __name__ == "__main__":
    main()
