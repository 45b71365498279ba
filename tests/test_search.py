"""Full-text search: by word, prefix and tag, title hits first, highlighted snippets,
and only over the notes the caller can see."""

from __future__ import annotations

import base64
import time
from typing import Any

import psycopg

from syncd.migrate import migrate_sync
from tests.fix_services import drop_database, fresh_database
from tests.helpers import Api, Device, new_id, text_update
from tests.test_rest_notes import call, create

# The vector as made from the note's columns alone, before the body's words had a column
# of their own (schema.sql): the stored one must always equal it.
FROM_SCRATCH = """setweight(to_tsvector('simple', translate(title, '<>', '  ')), 'A')
    || setweight(to_tsvector('simple', tags), 'B')
    || setweight(to_tsvector('simple', translate(left(body, 100000), '<>', '  ')), 'C')
    || array_to_tsvector(ARRAY['~o' || owner_id::text, '~p' || coalesce(project_id::text, '')])"""


def stale_vectors(url: str) -> list[Any]:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT id FROM notes WHERE search IS DISTINCT FROM"
                            f" ({FROM_SCRATCH})").fetchall()


def now_ms() -> int:
    return int(time.time() * 1000)


def search(dev: Device, q: str, **params: Any) -> list[dict[str, Any]]:
    r = call(dev, "GET", "/v1/search", params={"q": q, **params})
    return list(r.json()["results"])


def test_finds_by_word_prefix_and_tag_with_title_hits_first(api: Api) -> None:
    dev = api.user()
    body_hit = create(dev, title="Shopping", body="remember the pineapple pineapple pineapple "
                      "for the party on saturday, and <script>alert(1)</script> nothing else")
    title_hit = create(dev, title="Pineapple cake", body="flour, sugar and eggs")
    tagged = create(dev, title="Weekend", tags=["tropical-fruit"], body="beach")
    create(dev, title="Unrelated", body="nothing to see")

    assert [r["id"] for r in search(dev, "pineapple")] == [title_hit["id"], body_hit["id"]]
    assert [r["id"] for r in search(dev, "pinea")] == [title_hit["id"], body_hit["id"]]
    # A trailing space ends the word: no more prefix matching.
    assert search(dev, "pinea ") == []
    assert [r["id"] for r in search(dev, "tropical")] == [tagged["id"]]
    assert [r["id"] for r in search(dev, "PARTY sat")] == [body_hit["id"]]
    assert search(dev, "pineapple beach") == []
    assert search(dev, "  ?! ") == []

    top = search(dev, "pineapple")
    assert top[0]["title_html"] == "<mark>Pineapple</mark> cake"
    assert top[0]["title_hit"] and not top[1]["title_hit"]
    snippet = top[1]["snippet"]
    assert "<mark>pineapple</mark>" in snippet and "<script>" not in snippet
    assert "&lt;script&gt;<mark>alert</mark>" in search(dev, "alert")[0]["snippet"]


def test_snippets_come_from_around_the_first_hit_of_a_long_body(api: Api) -> None:
    """The snippet is cut from a window around the first hit, whole words only, however
    deep in a long body the hit is; with no hit in the body it opens the body."""
    dev = api.user()
    filler = " ".join(f"word{i}" for i in range(3000))  # ~26 000 characters
    deep = create(dev, title="Chapter", body=f"{filler} the marmalade recipe, then {filler}")
    create(dev, title="Marmalade", body="Oranges & sugar, boiled for an hour.")
    title_only, body_hit = search(dev, "marmalade")
    assert body_hit["id"] == deep["id"] and "Chapter" in body_hit["title_html"]
    snippet = body_hit["snippet"]
    assert "the <mark>marmalade</mark> recipe" in snippet and len(snippet) < 600
    # Whole words at both ends: each word of the snippet is one of the body's words.
    body_words = set(filler.split()) | {"the", "marmalade", "recipe,", "then"}
    plain = snippet.replace("<mark>", "").replace("</mark>", "").replace(" … ", " ")
    assert set(plain.split()) <= body_words
    assert "<mark>" not in title_only["snippet"]
    assert title_only["snippet"].startswith("Oranges &amp; sugar")
    # Prefix hits open the window too, and several words each count as a hit.
    assert "<mark>marm" in search(dev, "marm")[1]["snippet"]
    assert "<mark>word2999</mark>" in search(dev, "recipe word2999 ")[0]["snippet"]


def test_search_follows_edits_and_deletes(api: Api) -> None:
    dev = api.user()
    note = create(dev, title="Draft", body="first version")
    assert search(dev, "version")
    call(dev, "PATCH", f"/v1/notes/{note['id']}", json={"body": "second revision"})
    assert search(dev, "version") == []
    assert [r["id"] for r in search(dev, "revision")] == [note["id"]]
    call(dev, "DELETE", f"/v1/notes/{note['id']}")
    assert search(dev, "revision") == []
    assert [r["id"] for r in search(dev, "revision", deleted="true")] == [note["id"]]


def test_search_and_body_follow_each_kind_of_write(api: Api) -> None:
    """A save sets only the columns its batch changed (store.save_entities): toggles
    leave the body and its index as they were, and every searched change is indexed."""
    dev = api.user()
    note = create(dev, title="Almanac", tags=["weather"], body="frost in november " * 500)
    nid = note["id"]

    def found(q: str) -> bool:
        return [r["id"] for r in search(dev, q)] == [nid]

    # Field toggles, through REST (the note loaded with its document) and a push (without).
    call(dev, "PATCH", f"/v1/notes/{nid}", json={"pinned": True})
    dev.push([dev.set("note", nid, favorite=True)])
    got = call(dev, "GET", f"/v1/notes/{nid}").json()
    assert (got["pinned"], got["favorite"]) == (True, True)
    assert got["body"] == note["body"] and got["word_count"] == 1500
    assert found("almanac") and found("frost") and found("weather")
    # Searched fields, through a push and through REST. The push's clock is above the
    # note's, as a device's that pulled its writes would be: the server stamps its own
    # writes above every clock it has accepted, up to minutes ahead after a skewed device.
    got = call(dev, "GET", f"/v1/notes/{nid}").json()
    ahead = max(int(str(c).split(".")[0]) for c in got["clocks"].values()) + 1
    dev.push([dev.set("note", nid, hlc=dev.hlc(max(ahead, now_ms())), title="Calendar",
                      tags=["climate"], pinned=False)])
    assert found("calendar") and found("climate") and not found("almanac")
    assert not found("weather") and found("novem")
    call(dev, "PATCH", f"/v1/notes/{nid}", json={"title": "Diary", "favorite": False})
    assert found("diary") and not found("calendar") and found("frost")
    # The body, alone.
    call(dev, "PATCH", f"/v1/notes/{nid}", json={"body": "thaw in march"})
    assert found("thaw") and not found("frost") and found("diary")
    got = call(dev, "GET", f"/v1/notes/{nid}").json()
    assert (got["title"], got["body"], got["word_count"]) == ("Diary", "thaw in march", 3)
    assert (got["pinned"], got["favorite"], got["tags"]) == (False, False, ["climate"])


def test_the_stored_vector_is_the_notes_own_after_every_kind_of_write(
        api: Api, pg_url: str) -> None:
    """The body's words are parsed only when a write sets the body, and the vector joins
    them with the title's, tags' and scope's: after creations, title, tag and
    toggle writes, moves, text ops and REST body writes, every vector is the one its
    note's columns make."""
    dev = api.user()
    a, b = new_id(), new_id()
    project = new_id()
    update, _ = text_update(b"", lambda t: t.insert(0, "glacier <b>melt</b> water"))
    dev.push([dev.set("note", a, title="Tide", tags=["sea"]),
              dev.op("note", a, "text", field="body", update=base64.b64encode(update).decode()),
              dev.set("note", b, title="Dune"), dev.set("project", project, title="Coast")])
    assert [r["id"] for r in search(dev, "melt")] == [a]
    dev.push([dev.set("note", a, title="Current", tags=["ocean"], pinned=True),
              dev.set("note", b, project_id=project)])
    assert [r["id"] for r in search(dev, "glacier current")] == [a]
    call(dev, "PATCH", f"/v1/notes/{b}", json={"body": "sand <i>drifts</i>", "title": "Erg"})
    call(dev, "PATCH", f"/v1/notes/{a}", json={"favorite": True})
    assert [r["id"] for r in search(dev, "drifts erg")] == [b]
    assert stale_vectors(pg_url) == []
    # A row written without body_words (in SQL, rolled back) is still searched by its body.
    with psycopg.connect(pg_url) as conn:
        conn.execute("ALTER TABLE notes DISABLE TRIGGER notes_body_words")
        conn.execute("INSERT INTO notes (id, owner_id, body) VALUES (%s, %s, 'zebra')",
                     (new_id(), dev.user_id))
        assert conn.execute(f"SELECT body_words IS NULL, search = ({FROM_SCRATCH}) FROM notes"
                            " WHERE body = 'zebra'").fetchone() == (True, True)
        conn.rollback()


def test_a_vector_from_before_body_words_is_made_again_by_migrate(pg_admin_url: str) -> None:
    url = fresh_database(pg_admin_url)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TRIGGER notes_body_words ON notes")
            conn.execute("ALTER TABLE notes DROP COLUMN search, DROP COLUMN body_words")
            conn.execute(f"ALTER TABLE notes ADD COLUMN search tsvector"
                         f" GENERATED ALWAYS AS ({FROM_SCRATCH}) STORED")
            conn.execute("""INSERT INTO notes (id, owner_id, title, body)
                            VALUES (gen_random_uuid(), gen_random_uuid(), 'Old', 'kept words')""")
        migrate_sync(url)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM notes WHERE search @@ 'kept & old'"
                                ).fetchone() == (1,)
            assert conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname ="
                                " 'notes_search'").fetchone() == (1,)
        assert stale_vectors(url) == []
        # Once made again, the vector stays: a later migrate (every start) keeps it.
        attnum = "SELECT attnum FROM pg_attribute WHERE attrelid = 'notes'::regclass" \
                 " AND attname = 'search'"
        with psycopg.connect(url) as conn:
            before = conn.execute(attnum).fetchone()
        migrate_sync(url)
        with psycopg.connect(url) as conn:
            assert conn.execute(attnum).fetchone() == before
    finally:
        drop_database(pg_admin_url, url)


def test_search_never_returns_another_users_note(api: Api) -> None:
    alice, bob = api.user("alice"), api.user("bob")
    secret = create(alice, title="zanzibar plans", tags=["zanzibar"], body="zanzibar zanzibar")
    mine = create(bob, title="my notes", body="nothing about it")
    assert search(bob, "zanzibar") == []
    assert search(bob, "zanz") == []
    assert [r["id"] for r in search(alice, "zanzibar")] == [secret["id"]]
    # Sharing a project makes its notes searchable for the member, and only those.
    pid = call(alice, "POST", "/v1/projects", 201, json={"title": "Trip"}).json()["id"]
    shared = create(alice, title="zanzibar itinerary", project_id=pid)
    call(alice, "POST", f"/v1/projects/{pid}/members", 201,
         json={"email": bob.email, "role": "viewer"})
    assert [r["id"] for r in search(bob, "zanzibar")] == [shared["id"]]
    call(alice, "DELETE", f"/v1/projects/{pid}/members/{bob.user_id}", 204)
    assert search(bob, "zanzibar") == []
    assert search(bob, "notes")[0]["id"] == mine["id"]


def test_bad_search_requests(api: Api) -> None:
    dev = api.user()
    assert call(dev, "GET", "/v1/search", 400, params={"q": "x" * 501}).json()["error"]
    call(dev, "GET", "/v1/search", 400, params={"q": "x", "limit": 0})
    r = dev.api.get("/v1/search", params={"q": "x"})
    assert r.status_code == 401
    # Query syntax characters are words' separators, never tsquery syntax errors.
    assert search(dev, "a & b | !c:* 'd' (e") == []


def test_search_scope_follows_a_note_into_and_out_of_a_shared_project(api: Api) -> None:
    """The index-side scope (the note's owner and project) moves with the note."""
    alice, bob = api.user("alice"), api.user("bob")
    pid = call(alice, "POST", "/v1/projects", 201, json={"title": "Shared"}).json()["id"]
    call(alice, "POST", f"/v1/projects/{pid}/members", 201,
         json={"email": bob.email, "role": "editor"})
    note = create(alice, title="quetzalcoatl notes", body="quetzalcoatl")
    assert search(bob, "quetzalcoatl") == []
    call(alice, "PATCH", f"/v1/notes/{note['id']}", json={"project_id": pid})
    assert [r["id"] for r in search(bob, "quetzalcoatl")] == [note["id"]]
    call(alice, "PATCH", f"/v1/notes/{note['id']}", json={"project_id": None})
    assert search(bob, "quetzalcoatl") == []
    assert [r["id"] for r in search(alice, "quetz")] == [note["id"]]


def test_kept_query_parses_are_bounded_in_bytes() -> None:
    from syncd.search import PARSE_CACHE_BYTES, parse

    for i in range(3000):  # long distinct queries: ~70 MB of parses if kept by count
        parse(" ".join(f"w{i}x{k}" * 8 for k in range(16)))
    assert 0.9 * PARSE_CACHE_BYTES < parse.cache.currsize <= PARSE_CACHE_BYTES  # type: ignore[attr-defined]
    assert parse("lantern") is parse("lantern")  # still a cache
