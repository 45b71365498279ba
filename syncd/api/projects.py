"""/v1/projects: the REST view of projects (members: api/members.py, notes: api/notes.py).

List filters: `status` (active | paused | completed | archived), `meta_key` and
`meta.<key>=<value>` (resource.meta_filters), `deleted` (`false` by default, `true`, or
`all`); sort, order, limit and cursor as for notes. Deleting and restoring a
project is for its owner; editors may change its fields.
"""

from __future__ import annotations

from starlette.requests import Request

from syncd.api.resource import Resource, deleted_filter, meta_filters
from syncd.errors import BadRequest
from syncd.fields import STATUSES
from syncd.queries import Page


def project_filters(request: Request, page: Page) -> None:
    status = request.query_params.get("status")
    if status is not None:
        if status not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}",
                             {"param": "status"}, code="invalid_request")
        page.filter("p.status = %(status)s", status=status)
    meta_filters(request, page, "p")
    deleted_filter(request, page, "p")


projects = Resource("project", project_filters)
routes = projects.routes()
