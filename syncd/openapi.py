"""The OpenAPI 3.1 document, built from the app's routes and the msgspec structs that
validate requests, and a self-contained HTML page that lists it at /docs.

Route modules say what they take and return with `describe(path, method, request=...,
response=..., summary=...)` at import time. Every route of the app appears in the document
whether described or not; an undescribed one gets a generic object schema.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.routing import BaseRoute, Mount, Route

from syncd.headers import page_csp

REF = "#/components/schemas/{name}"
PUBLIC = {"/v1/auth/register", "/v1/auth/login", "/v1/auth/refresh", "/health", "/metrics",
          "/openapi.json", "/docs"}


class ErrorDetail(msgspec.Struct):
    code: str
    message: str
    details: dict[str, Any]


class Error(msgspec.Struct):
    """Every error response: {"error": {"code", "message", "details"}}."""

    error: ErrorDetail


@dataclass
class Operation:
    summary: str = ""
    request: Any = None
    response: Any = None
    status: int = 200
    query: dict[str, Any] = field(default_factory=dict)
    auth: bool | None = None
    content_type: str = "application/json"
    headers: dict[str, Any] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    body_required: bool = True
    description: str = ""
    also: tuple[int, ...] = ()


_registry: dict[tuple[str, str], Operation] = {}
# Answers any operation may give: a malformed request (a NUL in the query string counts),
# one that arrives too slowly or declares a body over the limit, and the server at its
# connection cap or the database unavailable. Others follow from what it takes (below).
ALWAYS = (400, 408, 413, 503)


def describe(path: str, method: str, *, request: Any = None, response: Any = None,
             summary: str = "", status: int = 200, query: dict[str, Any] | None = None,
             auth: bool | None = None, content_type: str = "application/json",
             headers: dict[str, Any] | None = None, errors: tuple[int, ...] = (),
             body_required: bool = True, description: str = "",
             also: tuple[int, ...] = ()) -> None:
    """Record an operation's request/response types (msgspec-able) and parameters.

    `query` and `headers` map a parameter name to its type (e.g. `int`,
    `Literal["week", "month"]`, an `Annotated` type with its bounds); `status` 204 means no
    body; `auth` defaults to "needs a bearer token" except for the public endpoints;
    `errors` are the error statuses beyond those every operation of its kind may answer;
    `description` says what parameters cannot (a family of names, how two interact);
    `also` are error statuses answered with the `response` struct, not an Error.
    """
    _registry[(path, method.upper())] = Operation(
        summary, request, response, status, dict(query or {}), auth, content_type,
        dict(headers or {}), errors, body_required, description, also)


def _errors(op: Operation, secured: bool, has_path_params: bool) -> list[int]:
    statuses = {*ALWAYS, *op.errors}
    if secured:
        statuses |= {401, 403, 429}  # no or a bad token, no access, the user's budget
    if has_path_params:
        statuses.add(404)
    return sorted(statuses)


def _walk(routes: list[BaseRoute], prefix: str = "") -> list[tuple[str, Route]]:
    out: list[tuple[str, Route]] = []
    for r in routes:
        if isinstance(r, Mount):
            out += _walk(list(r.routes), prefix + r.path)
        elif isinstance(r, Route):
            out.append((prefix + r.path, r))
    return out


def _path_params(path: str) -> tuple[str, list[dict[str, Any]]]:
    params = []
    for name, _conv in re.findall(r"{([A-Za-z_][A-Za-z0-9_]*)(:[a-z]+)?}", path):
        schema: dict[str, Any] = {"type": "string"}
        if name == "id" or name.endswith("_id"):
            schema["format"] = "uuid"
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return re.sub(r"{([A-Za-z_][A-Za-z0-9_]*):[a-z]+}", r"{\1}", path), params


def document(routes: list[BaseRoute], version: str = "1") -> dict[str, Any]:
    walked = _walk(routes)
    types: list[Any] = [Error]
    for op in _registry.values():
        types += [t for t in (op.request, op.response) if t is not None]
        types += [*op.query.values(), *op.headers.values()]
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    schema_of = dict(zip(map(id, types), schemas, strict=True))
    error = {"description": "error", "content": {"application/json": {
        "schema": {"$ref": REF.format(name="Error")}}}}
    paths: dict[str, dict[str, Any]] = {}
    for raw, route in walked:
        path, params = _path_params(raw)
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            found = _registry.get((raw, method)) or _registry.get((path, method))
            op = found or Operation()
            doc = (route.endpoint.__doc__ or "").strip().splitlines()
            entry: dict[str, Any] = {
                "operationId": f"{method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path.lower())}"
                .rstrip("_"),
                "summary": op.summary or (doc[0] if doc else f"{method} {path}"),
                "tags": [path.strip("/").split("/")[1 if path.startswith("/v1/") else 0]
                         or "root"],
            }
            if op.description:
                entry["description"] = op.description
            query = [{"name": n, "in": "query", "required": False,
                      "schema": schema_of[id(t)]} for n, t in op.query.items()]
            headers = [{"name": n, "in": "header", "required": False,
                        "schema": schema_of[id(t)]} for n, t in op.headers.items()]
            if params or query or headers:
                entry["parameters"] = params + query + headers
            if op.request is not None:
                entry["requestBody"] = {"required": op.body_required, "content": {
                    "application/json": {"schema": schema_of[id(op.request)]}}}
            elif method in ("POST", "PUT", "PATCH") and found is None:
                entry["requestBody"] = {"content": {
                    "application/json": {"schema": {"type": "object"}}}}
            secured = op.auth if op.auth is not None else path not in PUBLIC
            entry["responses"] = {str(op.status) if found else "2XX": _ok(op, schema_of)}
            if found is None:
                entry["responses"]["default"] = error
            else:
                entry["responses"].update(
                    {str(s): error for s in _errors(op, secured, bool(params))})
                entry["responses"].update({str(s): {**_ok(op, schema_of), "description":
                                                    "the success answer's shape"}
                                           for s in op.also})
            if secured:
                entry["security"] = [{"bearer": []}]
            paths.setdefault(path, {})[method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "syncd", "version": version,
                 "description": "Offline-first sync server. The wire protocol is docs/protocol.md; "
                                "WebSockets (/v1/sync/ws, /v1/collab/{note_id}) are not "
                                "expressible here."},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }


def _ok(op: Operation, schema_of: dict[int, Any]) -> dict[str, Any]:
    if op.status == 204:
        return {"description": "no content"}
    if 300 <= op.status < 400:
        return {"description": "a redirect to the Location header's URL"}
    schema = schema_of[id(op.response)] if op.response is not None else {"type": "object"}
    if op.content_type != "application/json" and op.response is None:
        schema = {"type": "string"}
    return {"description": "success", "content": {op.content_type: {"schema": schema}}}


# The page's one resource: its Content-Security-Policy allows this stylesheet by hash, and
# nothing else (no script, image, font or frame).
DOCS_STYLE = """
body{font:15px/1.4 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
section{border-top:1px solid #ddd;padding:.4rem 0} h3{margin:.3rem 0;font-size:1rem}
.m{display:inline-block;width:4.5rem;font-family:monospace} .get{color:#0a6}
.post{color:#06c} .patch{color:#a60} .delete{color:#c22} .put{color:#939}
.p{margin-left:4.5rem;font-size:.9rem} pre{background:#f6f6f6;padding:.5rem;overflow:auto}
"""
DOCS_CSP = page_csp("sha256-" + base64.b64encode(
    hashlib.sha256(DOCS_STYLE.encode()).digest()).decode())


def docs_page(doc: dict[str, Any]) -> str:
    """A readable, self-contained (no CDN) HTML listing of the operations."""
    rows = []
    components = doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            parts = [f'<section><h3><span class="m {method}">{method.upper()}</span> '
                     f'<code>{html.escape(path)}</code></h3>'
                     f'<p>{html.escape(op["summary"])}'
                     f'{" 🔒" if "security" in op else ""}</p>']
            if "description" in op:
                parts.append(f'<p class="p">{html.escape(op["description"])}</p>')
            for p in op.get("parameters", []):
                parts.append(f'<div class="p"><code>{html.escape(p["name"])}</code> '
                             f'({p["in"]}) {html.escape(json.dumps(p["schema"]))}</div>')
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                parts.append(_schema_block("request body", body["schema"], components))
            for status, resp in op["responses"].items():
                if status == "default":
                    continue
                content = next(iter(resp.get("content", {}).values()), None)
                if content:
                    parts.append(_schema_block(f"{status} response", content["schema"],
                                               components))
                else:
                    parts.append(f'<div class="p">{status}: {resp["description"]}</div>')
            rows.append("".join(parts) + "</section>")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>syncd API</title>
<style>{DOCS_STYLE}</style></head>
<body><h1>syncd API</h1><p>{html.escape(doc["info"]["description"])}
Machine-readable: <a href="/openapi.json">/openapi.json</a>. 🔒 = needs
<code>Authorization: Bearer &lt;access_token&gt;</code>.
Errors are <code>{{"error": {{"code", "message", "details"}}}}</code>.</p>
{"".join(rows)}</body></html>"""


def _schema_block(title: str, schema: dict[str, Any], components: dict[str, Any]) -> str:
    ref = schema.get("$ref", "")
    name = ref.rsplit("/", 1)[-1] if ref else ""
    shown = components.get(name, schema) if name else schema
    label = f"{title}: {html.escape(name)}" if name else title
    return (f'<details class="p"><summary>{label}</summary>'
            f"<pre>{html.escape(json.dumps(shown, indent=2))}</pre></details>")
