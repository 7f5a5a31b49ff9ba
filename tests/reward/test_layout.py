"""The reward package's modules import one another without a cycle, and without lazy imports."""

from __future__ import annotations

import ast
from pathlib import Path

import robopref.reward

PACKAGE = Path(robopref.reward.__file__).parent


def _runtime_imports(tree: ast.Module) -> set[str]:
    """``robopref.reward.X`` modules imported at module level (not under TYPE_CHECKING)."""
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("robopref.reward."):
            found.add(node.module.split(".")[2])
    return found


def _lazy_imports(tree: ast.Module) -> list[str]:
    """``robopref.reward`` imports inside functions (a way to hide a cycle)."""
    lazy = []
    for func in ast.walk(tree):
        if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(func):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "robopref.reward"
                ):
                    lazy.append(f"{func.name}: {node.module}")
    return lazy


def test_reward_modules_import_without_a_cycle_or_a_lazy_import() -> None:
    graph, lazy = {}, {}
    for path in PACKAGE.glob("*.py"):
        if path.stem == "__init__":
            continue
        tree = ast.parse(path.read_text())
        graph[path.stem] = _runtime_imports(tree)
        lazy[path.stem] = _lazy_imports(tree)
    assert {"base", "training", "checkpoint", "registry", "vpl", "decoders"} <= set(graph)
    assert {name: found for name, found in lazy.items() if found} == {}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for child in graph.get(name, ()):
            visit(child, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())
    assert "registry" not in graph["checkpoint"] and "base" not in graph["checkpoint"]
