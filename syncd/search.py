"""Full-text search over the notes a user can see (PostgreSQL tsvector, schema.sql).

The query's words must all match; the last one also matches as a prefix unless the query
ends with a space, so results follow the user as they type. Notes whose title holds every
word come first, then by `ts_rank` (title weight A, tags B, body C).

Each result carries the title with its hits marked and a snippet of the body
(syncd/snippets.py). PostgreSQL sends only an excerpt of the body around the first hit
(a regular expression finds it), so a chapter of 100 000 characters costs what a short
note does.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from cachetools import LRUCache, cached

from syncd.db import Conn, Database
from syncd.limits import MAX_TERMS
from syncd.snippets import WORD, Terms, highlight, snippet
from syncd.types import Principal

# The excerpt a snippet is cut from: characters of body before the first hit, and in all.
# Two fragments of at most 24 words fit in it.
EXCERPT_BEFORE = 240
EXCERPT = 720


class Parsed(NamedTuple):
    query: str   # tsquery text
    titles: str  # the same, restricted to titles (weight A)
    hit: str     # a PostgreSQL regular expression for the start of a hit, for the excerpt
    terms: Terms  # for highlighting


def _parse_bytes(parsed: Parsed | None) -> int:
    """What a kept parse holds: ~1 kB, and ~40 bytes per character of query in its compiled
    patterns and strings (measured with tracemalloc)."""
    return 1024 + 48 * len(parsed.hit) if parsed is not None else 64


# Compiling a query's patterns costs more than highlighting its results; people and
# clients repeat queries (each keystroke of a word in turn), so the parses are kept, within
# a budget in bytes (a count let 3,000 long distinct queries hold tens of MB).
PARSE_CACHE_BYTES = 4 * 1024 * 1024


@cached(LRUCache(maxsize=PARSE_CACHE_BYTES, getsizeof=_parse_bytes))
def parse(q: str) -> Parsed | None:
    """The query's forms, or None when there is no word."""
    words = [w.lower() for w in WORD.findall(q)][:MAX_TERMS]
    if not words:
        return None
    prefix = not q[-1:].isspace()
    terms = [(w, prefix and i == len(words) - 1) for i, w in enumerate(words)]
    # Quoted lexemes: the words hold only letters and digits, so nothing needs escaping,
    # in the tsquery or in the regular expression.
    query = " & ".join(f"'{w}'" + (":*" if p else "") for w, p in terms)
    titles = " & ".join(f"'{w}'" + (":*A" if p else ":A") for w, p in terms)
    hit = r"\m(" + "|".join(w + ("" if p else r"\M") for w, p in terms) + ")"
    return Parsed(query, titles, hit, Terms(terms))


SQL = f"""
WITH q AS (SELECT to_tsquery('simple', %(q)s) AS q, to_tsquery('simple', %(qa)s) AS qa,
                  -- the caller's scope as reserved lexemes (schema.sql): own notes, or
                  -- notes of a project they are a member of
                  (quote_literal('~o' || %(u)s::uuid::text) || coalesce(
                      (SELECT string_agg(' | ' || quote_literal('~p' || project_id::text), '')
                       FROM members WHERE user_id = %(u)s), ''))::tsquery AS scope),
hits AS (
    SELECT n.id, n.title, n.tags, n.body, n.project_id, n.pinned, n.favorite, n.deleted,
           n.version, n.updated_at, n.search @@ q.qa AS title_hit, ts_rank(n.search, q.q) AS rank
    FROM notes n, q
    -- The scope lexemes are the visibility rule here: a note matches them exactly when
    -- queries.NOTE_VISIBLE holds (its owner, or a project the caller is a member of).
    WHERE n.search @@ (q.q && q.scope) AND (%(deleted)s OR NOT n.deleted)
    ORDER BY title_hit DESC, rank DESC, n.updated_at DESC, n.id
    LIMIT %(limit)s)
SELECT h.id, h.title, h.tags, h.project_id, h.pinned, h.favorite, h.deleted, h.version,
       h.updated_at, h.title_hit, h.rank, h.excerpt_from > 1 AS excerpt_cut,
       substr(h.body, h.excerpt_from, {EXCERPT + 1}) AS excerpt  -- one more: is a word cut?
-- OFFSET 0 keeps the subquery whole: flattened, each use of excerpt_from would repeat it.
FROM (SELECT *, greatest(1, regexp_instr(body, %(hit)s, 1, 1, 0, 'i') - {EXCERPT_BEFORE})
                AS excerpt_from
      FROM hits OFFSET 0) h
ORDER BY h.title_hit DESC, h.rank DESC, h.updated_at DESC, h.id
"""


async def search(db: Database, who: Principal, q: str, limit: int,
                 deleted: bool = False) -> dict[str, Any]:
    parsed = parse(q)
    if parsed is None:
        return {"results": [], "query": q}

    async def tx(conn: Conn) -> list[dict[str, Any]]:
        cur = await conn.execute(SQL, {"q": parsed.query, "qa": parsed.titles,
                                       "hit": parsed.hit, "u": who.user_id, "limit": limit,
                                       "deleted": deleted})
        return await cur.fetchall()

    rows = await db.run(tx, read_only=True)
    for r in rows:
        r["rank"] = round(float(r["rank"]), 6)
        excerpt = r.pop("excerpt")
        r["title_html"] = highlight(r["title"], parsed.terms)
        r["snippet"] = snippet(excerpt, r.pop("excerpt_cut"), len(excerpt) > EXCERPT,
                               parsed.terms)
    return {"results": rows, "query": q}
