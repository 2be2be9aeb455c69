"""The watch package sits between decoding and the resources: nothing in it imports a
module above it, and the package's module-level imports form no circle."""

from __future__ import annotations

import ast
from pathlib import Path

import streamrun_async

ROOT = Path(streamrun_async.__file__).parent
# What the watch package may import from the rest of the SDK: the layers below it.
BELOW_WATCH = {"_converter", "_events", "_exceptions", "_models", "_secret"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Modules imported at module level (not under TYPE_CHECKING, not in functions)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            if node.module:
                found.add(f"{base}.{node.module}")
            else:  # "from . import x" needs the submodule x, not the package's __init__
                found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("streamrun_async"))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    return {name: {i for i in _imports(path) if i in modules} for name, path in modules.items()}


def test_the_watch_package_imports_only_layers_below_it() -> None:
    for name, targets in _graph().items():
        if not name.startswith("streamrun_async.watch"):
            continue
        outside = {t.split(".")[1] for t in targets if not t.startswith("streamrun_async.watch")}
        assert outside <= BELOW_WATCH, (name, outside - BELOW_WATCH)


def test_no_module_of_the_watch_package_is_in_an_import_circle() -> None:
    graph = _graph()

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            for nxt in graph.get(node, ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    watch = [n for n in graph if n.startswith("streamrun_async.watch.")]
    assert watch
    for name in watch:
        assert not reaches(name, name), name
    # The resources use the poller; the poller never reaches back to them or the client.
    for name in watch:
        for above in ("streamrun_async._resources", "streamrun_async._client"):
            assert not reaches(name, above), (name, above)
