"""/v1/projects: the REST view of projects (members: api/members.py, notes: api/notes.py).

List filters: `status` (active | paused | completed | archived), `meta_key` and
`meta.<key>=<value>` (resource.meta_filters), `deleted` (`false` by default, `true`, or
`all`); sort, order, limit and cursor as for notes. Deleting and restoring a
project is for its owner; editors may change its fields.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType
from starlette.requests import Request

from syncd.api.resource import Resource, deleted_filter, meta_filters
from syncd.errors import BadRequest
from syncd.fields import STATUSES
from syncd.limits import MAX_DESCRIPTION, MAX_TITLE, MAX_WORD_GOAL
from syncd.messages import NO_NUL, Str
from syncd.queries import Page
from syncd.responses import Project, ProjectPage


def project_filters(request: Request, page: Page) -> None:
    status = request.query_params.get("status")
    if status is not None:
        if status not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}",
                             {"param": "status"}, code="invalid_request")
        page.filter("p.status = %(status)s", status=status)
    meta_filters(request, page, "p")
    deleted_filter(request, page, "p")


Title = Annotated[str, msgspec.Meta(max_length=MAX_TITLE, pattern=NO_NUL)]
Description = Annotated[str, msgspec.Meta(max_length=MAX_DESCRIPTION, pattern=NO_NUL)]
WordGoal = Annotated[int, msgspec.Meta(ge=0, le=MAX_WORD_GOAL)]
Status = Literal["active", "paused", "completed", "archived"]


class ProjectCreate(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /v1/projects (documentation: fields.validate checks it)."""

    id: UUID | UnsetType = UNSET
    title: Title | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    word_goal: WordGoal | UnsetType = UNSET
    status: Status | UnsetType = UNSET
    meta: dict[str, Any] | UnsetType = UNSET


class ProjectPatch(msgspec.Struct, forbid_unknown_fields=True):
    title: Title | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    word_goal: WordGoal | UnsetType = UNSET
    status: Status | UnsetType = UNSET
    deleted: bool | UnsetType = UNSET
    meta: dict[str, Any] | UnsetType = UNSET


projects = Resource("project", project_filters, Project, ProjectPage)
projects.describe(ProjectCreate, ProjectPatch, {"status": Status, "meta_key": Str})
routes = projects.routes()
