"""The import rules: imports point down the layers of pyproject.toml, and no project module imports itself back.

Both read the source, not the running program, so an import inside a function counts like one at the top.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("api", "schema", "sql", "ingest")  # [tool.importlinter] root_packages


def test_import_linter_contracts_are_kept():
    lint_imports = Path(sys.executable).parent / "lint-imports"  # installed beside this interpreter (dev extra)
    result = subprocess.run(
        [str(lint_imports), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def strongly_connected(edges: Mapping[str, Iterable[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components of a directed graph (iterative: no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(edges.get(successor, ()))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
    return components


def import_cycles(graph: grimp.ImportGraph) -> list[str]:
    """Every import cycle among the graph's modules, each shown as one chain of imports that closes it."""
    edges = {module: graph.find_modules_directly_imported_by(module) for module in sorted(graph.modules)}
    cycles = []
    for component in strongly_connected(edges):
        start = min(component)
        if len(component) == 1 and start not in edges[start]:
            continue
        nxt = min(edges[start] & component)
        back = graph.find_shortest_chain(importer=nxt, imported=start) or (nxt, start)
        cycles.append(" -> ".join([start, *back]))
    return cycles


def test_strongly_connected_finds_cycles_and_only_cycles():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert sorted(map(sorted, strongly_connected(edges))) == [["a", "b", "c"], ["d"], ["e"]]


def test_no_import_cycles_between_project_modules():
    graph = grimp.build_graph(*PROJECT, cache_dir=None)
    assert graph.modules >= {"api.app", "schema.api", "sql.db", "ingest.worker"}  # the graph is the project's
    assert import_cycles(graph) == []
