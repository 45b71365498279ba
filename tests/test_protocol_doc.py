"""docs/protocol.md against the code: every error code, per-op refusal code and WebSocket
close code the server can send is documented there, so a client built from the document
knows every answer it can get."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "protocol.md").read_text()
SOURCES = sorted((ROOT / "syncd").rglob("*.py"))
# WebSocket close codes a refusal may use: the standard ones past 1000 (normal closure)
# and the application range.
CLOSE_CODES = (range(1001, 1016), range(4000, 5000))
# Raised only by `syncd import` (an account or ids that exist already): no request can
# get it, so the wire document leaves it out.
NOT_ON_THE_WIRE = {"exists"}


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _str(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def error_codes(tree: ast.AST) -> set[str]:
    """`code="…"` arguments, `code = "…"` class attributes, OpRejected's first argument,
    and `{"code": "…"}` bodies."""
    found: set[str | None] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            found |= {_str(k.value) for k in node.keywords if k.arg == "code"}
            if _name(node.func) == "OpRejected" and node.args:
                found.add(_str(node.args[0]))
        elif isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                        and isinstance(stmt.targets[0], ast.Name)
                        and stmt.targets[0].id == "code"):
                    found.add(_str(stmt.value))
        elif isinstance(node, ast.Dict):
            found |= {_str(v) for k, v in zip(node.keys, node.values, strict=True)
                      if k is not None and _str(k) == "code"}
    return {c for c in found if c is not None}


def close_codes(tree: ast.AST) -> set[int]:
    """Integers in the close code ranges passed to any call: closing a socket, or raising
    what will close one (whatever the function or exception is named)."""
    return {arg.value for node in ast.walk(tree) if isinstance(node, ast.Call)
            for arg in node.args
            if isinstance(arg, ast.Constant) and type(arg.value) is int
            and any(arg.value in r for r in CLOSE_CODES)}


def test_the_scan_finds_what_the_server_sends() -> None:
    """The scan itself sees known codes (an empty scan would pass everything below)."""
    codes: set[str] = set()
    closes: set[int] = set()
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        codes |= error_codes(tree)
        closes |= close_codes(tree)
    assert {"client_seq_gap", "invalid_hlc", "too_large", "validation", "forbidden",
            "token_expired", "unavailable"} <= codes
    assert {4401, 4403, 4404, 4408, 4409, 1009, 1011} <= closes


def test_every_error_code_is_documented() -> None:
    missing = {f"{path.relative_to(ROOT)}: {code}" for path in SOURCES
               for code in error_codes(ast.parse(path.read_text())) - NOT_ON_THE_WIRE
               if f"`{code}`" not in DOC}
    assert not missing, f"error codes missing from docs/protocol.md: {sorted(missing)}"


def test_every_close_code_is_documented() -> None:
    missing = {f"{path.relative_to(ROOT)}: {code}" for path in SOURCES
               for code in close_codes(ast.parse(path.read_text()))
               if f"| {code} |" not in DOC}
    assert not missing, f"close codes missing from docs/protocol.md's table: {sorted(missing)}"
