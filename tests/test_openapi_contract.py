"""The OpenAPI document is the contract: schemathesis generates requests from it, valid
and invalid, for every operation and sends them to a real server; every check must hold.

Schema-valid data the domain may still refuse, and no schema can say so (a project id
that names no project, a time zone that is no IANA zone, exactly one of `seq` and `at`),
is answered 400 or 422, and an `If-Match` that names another version 412: positive data
may get those besides the default statuses, and 429 from an operation whose rate limit
the examples use up (mail sending: a verification resent, a reset asked for).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from syncd.app import routes
from syncd.openapi import document
from tests.fix_server import ServerProcess
from tests.helpers import Api

CONFIG = {
    "checks": {"positive_data_acceptance": {
        "expected-statuses": ["2xx", "3xx", "400", "401", "403", "404", "409", "412",
                              "422", "429"]}},
}
# Ending the calling device would leave the rest of its examples unauthorised; logout is
# covered by tests/test_auth.py.
SKIPPED = {("POST", "/v1/auth/logout")}


STATUSES: list[int] = []
PLACEHOLDER = "@token@"  # the cases are built when collected; the token exists at run time


@pytest.fixture
def token(api: Api) -> Iterator[str]:
    yield api.user("contract").token  # a fresh caller per operation


# The document as the app builds it (what /openapi.json serves), so the operations are
# known when the tests are collected, before any server runs.
schema = schemathesis.openapi.from_dict(document(routes()),
                                        config=SchemathesisConfig.from_dict(CONFIG))


@schema.auth(refresh_interval=None)
class Bearer:
    """The caller's token, applied by schemathesis itself: the cases it sends without one
    (to see them refused) stay without one."""

    def get(self, case: Any, ctx: Any) -> str:
        return PLACEHOLDER

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.parametrize()
# Bounded and derandomised: the same requests on every run, so a failure replays.
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_the_server_keeps_its_openapi_contract(case: Any, server: ServerProcess,
                                               token: str) -> None:
    if (case.method.upper(), case.path) in SKIPPED:
        return
    if case.headers and case.headers.get("Authorization") == f"Bearer {PLACEHOLDER}":
        case.headers["Authorization"] = f"Bearer {token}"
    response = case.call_and_validate(base_url=server.base_url)
    # the operation's caller, or a header schemathesis made up to see it refused
    assert PLACEHOLDER not in (response.request.headers.get("Authorization") or "")
    STATUSES.append(response.status_code)


def test_the_contract_run_reached_the_handlers() -> None:
    """Runs after the operations (file order): had the token never been applied, every
    answer would have been a 401 and the checks above would prove little."""
    if not STATUSES:
        pytest.fail("run with the contract test: it fills STATUSES")
    ok = sum(200 <= s < 300 for s in STATUSES)
    assert ok > len(STATUSES) // 10, sorted(set(STATUSES))


def test_every_operation_is_described_and_served(api: Api) -> None:
    built = document(routes())
    undescribed = [(m, p) for p, ops in built["paths"].items() for m, op in ops.items()
                   if "default" in op["responses"]]
    assert undescribed == []
    # Every JSON answer has its own schema, from a response struct (the OpenAPI document
    # itself is the one free-form object).
    generic = [(m, p) for p, ops in built["paths"].items() for m, op in ops.items()
               for s, r in op["responses"].items() if s.startswith("2")
               for v in r.get("content", {}).values() if v["schema"] == {"type": "object"}]
    assert generic == [("get", "/openapi.json")]
    closed = built["components"]["schemas"]
    for name in ("RegisterRequest", "LoginRequest", "MeUpdate", "NoteCreate", "NotePatch",
                 "ProjectCreate", "ProjectPatch", "RevertRequest", "Empty"):
        assert closed[name]["additionalProperties"] is False, name
    assert api.get("/openapi.json").json() == json.loads(json.dumps(built, default=str))
