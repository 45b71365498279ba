"""Read-only views of the local projection, the shapes `SyncClient` queries return.

A view is a flat dict like the server's Entity: `id`, the fields (defaults
filled in), `meta` (the app's own keys), `deleted`, `body` for notes, the
derived values the server last sent, and `updated` (the greatest field clock,
used for ordering).
"""

from __future__ import annotations

from syncd_client.store import Row, Store
from syncd_client.types import META, Json, defaults, meta_of


def view(row: Row) -> Json:
    fields = {k: v for k, v in row.fields.items() if not k.startswith(META)}
    out: Json = {"id": row.id, **defaults(row.entity), **row.derived, **fields}
    out["meta"] = meta_of(row.fields)
    out["deleted"] = row.deleted
    if row.entity == "note":
        out["body"] = row.body
        out["word_count"] = len(row.body.split())
    out["updated"] = max(row.clocks.values(), default="")
    return out


def _order(views: list[Json]) -> list[Json]:
    views.sort(key=lambda v: v["updated"], reverse=True)
    views.sort(key=lambda v: not v.get("pinned", False))  # stable: pinned first, then recent
    return views


def list_notes(
    store: Store,
    project_id: str | None = None,
    tag: str | None = None,
    pinned: bool | None = None,
    query: str | None = None,
    include_deleted: bool = False,
) -> list[Json]:
    where: list[str] = []
    args: list[object] = []
    if not include_deleted:
        where.append("deleted = 0")
    if project_id is not None:
        where.append("json_extract(fields, '$.project_id') = ?")
        args.append(project_id)
    if tag is not None:
        where.append("EXISTS (SELECT 1 FROM json_each(fields, '$.tags') WHERE json_each.value = ?)")
        args.append(tag)
    if pinned is not None:
        where.append("coalesce(json_extract(fields, '$.pinned'), 0) = ?")
        args.append(int(pinned))
    if query:
        where.append(
            "(instr(lower(coalesce(json_extract(fields, '$.title'), '')), ?) > 0 "
            "OR instr(lower(body), ?) > 0)"
        )
        args.extend([query.lower(), query.lower()])
    rows = store.rows("note", " AND ".join(where), tuple(args))
    return _order([view(r) for r in rows])


def list_projects(store: Store, include_deleted: bool = False) -> list[Json]:
    rows = store.rows("project", "" if include_deleted else "deleted = 0")
    return _order([view(r) for r in rows])
