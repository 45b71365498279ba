"""Every query parameter a handler reads is in the OpenAPI document for its route, and the
document lists none that no handler reads, so a generated client can send them all.

The handlers are read, not run: from each route's endpoint the test follows the calls it
makes into syncd.api (through module globals and, for a resource's bound methods, `self`)
and collects the names passed to `query_params.get/getlist/[...]` and to the readers below.
A read whose name it cannot tell (neither a literal nor a loop over literals) fails the
test, so a new way of reading the query cannot slip past it unseen. Names read as a family
(`multi_items()`) must be described in the operation's text instead.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

from starlette.routing import Route

from syncd.api.common import query_int
from syncd.api.resource import query_bool
from syncd.app import routes
from syncd.openapi import document

# Helpers that read the query parameter named by one of their arguments (its index).
READERS: dict[Callable[..., Any], int] = {query_int: 1, query_bool: 1}
ACCESSORS = {"get", "getlist"}
# Read from the whole query string: documented in the operation's text, not as parameters.
FAMILIES = {"meta.<key>"}


class Reads:
    def __init__(self) -> None:
        self.names: set[str] = set()
        self.families = False
        self.unknown: list[str] = []


def _target(node: ast.expr, fn: Any, self_obj: Any) -> Any:
    """The object a call's function expression names, or None."""
    if isinstance(node, ast.Name):
        return fn.__globals__.get(node.id)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        if node.value.id == "self" and self_obj is not None:
            return getattr(self_obj, node.attr, None)
        owner = fn.__globals__.get(node.value.id)
        return getattr(owner, node.attr, None) if owner is not None else None
    return None


def _is_query_params(node: ast.expr, aliases: set[str]) -> bool:
    return ((isinstance(node, ast.Attribute) and node.attr == "query_params")
            or (isinstance(node, ast.Name) and node.id in aliases))


def _literals(node: ast.expr, loops: dict[str, list[str]]) -> list[str] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name) and node.id in loops:
        return loops[node.id]
    return None


def _analyse(fn: Any, self_obj: Any, reads: Reads, seen: set[tuple[int, int]]) -> None:
    key = (id(fn), id(self_obj))
    if key in seen:
        return
    seen.add(key)
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    aliases: set[str] = set()
    loops: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _is_query_params(node.value, set()):
            aliases |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        if (isinstance(node, ast.For) and isinstance(node.target, ast.Name)
                and isinstance(node.iter, ast.Tuple | ast.List)):
            values = [e.value for e in node.iter.elts
                      if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if len(values) == len(node.iter.elts):
                loops[node.target.id] = values
    where = f"{fn.__module__}.{fn.__qualname__}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _is_query_params(node.value, aliases):
            found = _literals(node.slice, loops)
            reads.names |= set(found or [])
            if found is None:
                reads.unknown.append(f"{where}: query_params[{ast.unparse(node.slice)}]")
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and _is_query_params(func.value, aliases):
            if func.attr == "multi_items":
                reads.families = True
            elif func.attr in ACCESSORS:
                found = _literals(node.args[0], loops) if node.args else None
                reads.names |= set(found or [])
                if found is None:
                    reads.unknown.append(f"{where}: {ast.unparse(node)}")
            continue
        target = _target(func, fn, self_obj)
        if target in READERS:
            arg = node.args[READERS[target]]
            found = _literals(arg, loops)
            reads.names |= set(found or [])
            if found is None:
                reads.unknown.append(f"{where}: {ast.unparse(node)}")
            continue
        callee, bound = (target.__func__, target.__self__) if inspect.ismethod(target) else (
            target, None)
        if inspect.isfunction(callee) and callee.__module__.startswith("syncd.api."):
            _analyse(callee, bound, reads, seen)


def _operations() -> Iterator[tuple[str, str, Route]]:
    for route in routes():
        if isinstance(route, Route):
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                yield method, route.path, route


def _reads(route: Route) -> Reads:
    reads = Reads()
    endpoint = route.endpoint
    if inspect.ismethod(endpoint):
        _analyse(endpoint.__func__, endpoint.__self__, reads, set())
    else:
        _analyse(endpoint, None, reads, set())
    return reads


def test_the_readers_read_the_query() -> None:
    """The helpers the analysis trusts do read the parameter they are given."""
    for reader, index in READERS.items():
        source = inspect.getsource(reader)
        name = list(inspect.signature(reader).parameters)[index]
        assert f"query_params.get({name})" in source, reader


def test_every_query_parameter_a_handler_reads_is_documented() -> None:
    doc = document(routes())
    problems: list[str] = []
    checked = 0
    for method, path, route in _operations():
        op = doc["paths"][path][method.lower()]
        documented = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        reads = _reads(route)
        problems += reads.unknown
        if reads.names - documented:
            problems.append(f"{method} {path} reads {sorted(reads.names - documented)}, "
                            "undocumented")
        if documented - reads.names:
            problems.append(f"{method} {path} documents {sorted(documented - reads.names)}, "
                            "never read")
        text = op["summary"] + op.get("description", "")
        if reads.families and not any(f in text for f in FAMILIES):
            problems.append(f"{method} {path} reads {FAMILIES} without describing them")
        checked += bool(reads.names)
    assert problems == []
    assert checked >= 10  # the analysis found the parameters of the list routes at least


def test_every_operation_has_a_summary_of_its_own() -> None:
    """A summary a person wrote: not the fallback of method and path, and none shared by
    two operations (generated clients name methods and docs after it)."""
    doc = document(routes())
    summaries: dict[str, str] = {}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            summary = op["summary"]
            assert summary and summary != f"{method.upper()} {path}", (method, path)
            assert len(summary.split()) >= 2, (method, path, summary)
            other = summaries.setdefault(summary, f"{method} {path}")
            assert other == f"{method} {path}", (summary, other, method, path)
