"""Fairness (syncd/fairness.py): one user's parallel expensive requests are held to their
budget while another user's are admitted, and expensive statements have a time limit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.db import STATEMENT_TIMEOUT, Conn, Database
from syncd.errors import Unavailable
from tests.fix_server import ServerProcess
from tests.helpers import Api, metric
from tests.test_rest_notes import create


@pytest.fixture(scope="module")
def fair(pg_url: str, tmp_root: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(pg_url, tmp_root / "fair", env={
        "SYNCD_HEAVY_PER_USER": "2", "SYNCD_HEAVY_WAIT": "0.05", "SYNCD_POOL_MAX": "10"})
    proc.start()
    yield proc
    proc.stop()


def test_a_users_parallel_searches_do_not_shut_out_another_user(fair: ServerProcess) -> None:
    with Api(fair.base_url) as api:
        greedy, other = api.user(), api.user()
        filler = " ".join(f"word{i}" for i in range(2000))
        for i in range(30):  # searches over long bodies: each takes a while
            create(greedy, title=f"Chapter {i}", body=f"{filler} lantern {filler}")
        create(other, title="Lantern", body="a note of my own")
    refused_before = metric(fair.base_url, "syncd_heavy_requests_total", 'decision="refused"')

    async def main() -> tuple[list[httpx.Response], list[httpx.Response]]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=fair.base_url, timeout=60,
                                     limits=limits) as c:
            def search(who: Any) -> Any:
                return c.get("/v1/search", params={"q": "lantern", "limit": 100},
                             headers=who.headers)

            storm = [asyncio.ensure_future(search(greedy)) for _ in range(60)]
            mine: list[httpx.Response] = []
            while not all(t.done() for t in storm) or len(mine) < 5:
                mine.append(await search(other))  # one at a time, during the storm
            return list(await asyncio.gather(*storm)), mine

    storm, mine = asyncio.run(main())
    assert all(r.status_code == 200 for r in mine), [r.text for r in mine]
    assert all(len(r.json()["results"]) == 1 for r in mine)
    codes = {r.status_code for r in storm}
    assert codes <= {200, 429}, codes
    refusals = [r for r in storm if r.status_code == 429]
    assert refusals, "sixty parallel searches were never held to the budget of two"
    for r in refusals:
        body = r.json()["error"]
        assert body["code"] == "rate_limited" and body["details"]["limit"] == "heavy"
        assert r.headers["retry-after"] == "1"
    refused = metric(fair.base_url, "syncd_heavy_requests_total", 'decision="refused"')
    assert refused - refused_before == len(refusals)  # every refusal was the greedy user's
    assert metric(fair.base_url, "syncd_heavy_in_flight") == 0


def test_expensive_statements_end_at_the_statement_timeout(pg_url: str) -> None:
    async def main() -> None:
        db = Database(pg_url, 1, 2)
        await db.open()
        try:
            async def slow(conn: Conn) -> None:
                await conn.execute("SELECT pg_sleep(30)")

            token = STATEMENT_TIMEOUT.set(0.2)
            try:
                with pytest.raises(Unavailable) as caught:
                    await db.run(slow, read_only=True)
            finally:
                STATEMENT_TIMEOUT.reset(token)
            assert caught.value.code == "statement_timeout" and caught.value.status == 503

            async def setting(conn: Conn) -> str:
                cur = await conn.execute("SHOW statement_timeout")
                row = await cur.fetchone()
                assert row is not None
                return str(row["statement_timeout"])

            assert await db.run(setting, read_only=True) == "0"  # others run unlimited
        finally:
            await db.close()

    asyncio.run(main())
