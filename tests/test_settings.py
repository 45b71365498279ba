"""A user's settings: one `settings` entity per user, LWW per key by HLC, theirs alone,
written by push or `PATCH /v1/settings`, received by pull, snapshot and the sync socket."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from tests.fix_server import ServerProcess
from tests.helpers import Api, Device
from tests.test_rebuild import run_cli
from tests.ws_client import events_until, hello, open_socket


def settings_op(d: Device, hlc: str | None = None, **values: Any) -> dict[str, Any]:
    return d.set("settings", d.user_id, hlc, **values)


def statuses(response: dict[str, Any]) -> list[str]:
    return [r["status"] for r in response["results"]]


def test_two_devices_editing_different_keys_offline_both_survive(api: Api) -> None:
    laptop = api.user()
    phone = laptop.login_again("phone")
    # Both offline: each queued its own key, the phone's clock is earlier.
    t = int(time.time() * 1000) - 60_000  # in the past: a future clock is canonicalised
    laptop_op = settings_op(laptop, laptop.hlc(t + 10), theme="dark")
    phone_op = settings_op(phone, phone.hlc(t), font_size=14)
    assert statuses(laptop.push([laptop_op])) == ["applied"]
    assert statuses(phone.push([phone_op])) == ["applied"]
    got = laptop.get("/v1/settings").json()
    assert got["values"] == {"theme": "dark", "font_size": 14}
    assert set(got["clocks"]) == {"theme", "font_size"}
    assert got["id"] == laptop.user_id
    assert phone.snapshot()["settings"]["values"] == {"theme": "dark", "font_size": 14}


def test_the_same_key_resolves_by_hlc_whatever_the_arrival_order(api: Api) -> None:
    laptop = api.user()
    phone = laptop.login_again("phone")
    t = int(time.time() * 1000) - 60_000  # in the past: a future clock is canonicalised
    later = settings_op(laptop, laptop.hlc(t + 5), theme="dark")
    earlier = settings_op(phone, phone.hlc(t), theme="light")
    laptop.push([later])
    phone.push([earlier])  # arrives last, written first: it loses
    assert laptop.get("/v1/settings").json()["values"] == {"theme": "dark"}
    # A clear is a write too: null, with a clock, which an older write cannot undo.
    laptop.push([settings_op(laptop, laptop.hlc(t + 20), theme=None)])
    phone.push([settings_op(phone, phone.hlc(t + 15), theme="blue")])
    got = laptop.get("/v1/settings").json()
    assert got["values"] == {} and "theme" in got["clocks"]


def test_settings_reach_another_device_through_pull_and_the_socket(
        server: ServerProcess, api: Api) -> None:
    laptop = api.user()
    phone = laptop.login_again("phone")
    with open_socket(server.ws_url, phone) as ws:
        head = hello(ws, 0)
        laptop.push([settings_op(laptop, timezone="Europe/Paris",
                                 notify={"mentions": True, "digest": "daily"})])
        live = events_until(ws, head + 1)
    assert [(e["entity"], e["id"], e["kind"]) for e in live] == [
        ("settings", laptop.user_id, "set")]
    assert live[0]["fields"] == {"timezone": "Europe/Paris",
                                 "notify": {"mentions": True, "digest": "daily"}}
    pulled = phone.pull()
    assert [e["fields"] for e in pulled if e["entity"] == "settings"] == [live[0]["fields"]]
    # A REST write is a server-made op on the same log: devices receive it the same way.
    r = laptop.api.patch("/v1/settings", json={"values": {"font_size": 16}},
                         headers=laptop.headers)
    assert r.status_code == 200, r.text
    assert r.json()["values"]["font_size"] == 16
    last = phone.pull(head + 1)
    assert [(e["entity"], e["fields"]) for e in last] == [("settings", {"font_size": 16})]


def test_another_user_can_never_read_or_write_your_settings(api: Api,
                                                             db: psycopg.Connection[Any]) -> None:
    alice, mallory = api.user(), api.user()
    alice.push([settings_op(alice, theme="dark")])
    # Writing alice's settings, existing or not: refused, nothing written.
    bob = api.user()
    forged = [mallory.set("settings", alice.user_id, theme="pwned"),
              mallory.set("settings", bob.user_id, theme="pwned")]
    response = mallory.push(forged)
    assert statuses(response) == ["rejected", "rejected"]
    assert {r["code"] for r in response["results"]} == {"forbidden"}
    assert alice.get("/v1/settings").json()["values"] == {"theme": "dark"}
    assert db.execute("SELECT count(*) FROM settings WHERE user_id = %s",
                      (bob.user_id,)).fetchone() == (0,)
    # Reading: mallory sees her own (empty) settings and nothing of alice's, anywhere.
    assert mallory.get("/v1/settings").json()["values"] == {}
    assert mallory.snapshot()["settings"]["values"] == {}
    assert all(e["entity"] != "settings" for e in mallory.pull())
    assert all(e["entity"] != "settings" for e in bob.pull())


def test_oversize_and_malformed_values_are_refused_and_change_nothing(api: Api) -> None:
    d = api.user()
    d.push([settings_op(d, theme="dark")])
    bad = [
        settings_op(d, big="x" * 9000),  # one value past 8 KiB
        d.set_fields("settings", d.user_id, {"k" * 65: 1}),  # a key past 64 characters
        settings_op(d, nul="a\x00b"),
        d.op("settings", d.user_id, "delete"),
    ]
    response = d.push(bad)
    assert statuses(response) == ["rejected"] * 4
    assert {r["code"] for r in response["results"]} == {"validation"}
    # The total over all keys is bounded too: 8 values of 8 KiB fit, a ninth does not.
    fill = [settings_op(d, **{f"k{i}": "y" * 8000}) for i in range(8)]
    assert statuses(d.push(fill)) == ["applied"] * 8
    over = d.push([settings_op(d, k8="y" * 8000)])
    assert over["results"][0]["code"] == "validation"
    # Replacing a key in place still fits: the bound is on what the settings would hold.
    assert statuses(d.push([settings_op(d, k0="z" * 8000)])) == ["applied"]
    got = d.get("/v1/settings").json()["values"]
    assert "k8" not in got and got["theme"] == "dark" and got["k0"] == "z" * 8000
    # REST: the same rules, a 4xx with the code, nothing written.
    version = d.get("/v1/settings").json()["version"]
    for body in ({"values": {"big": "x" * 9000}}, {"values": {"": 1}}):
        r = d.api.patch("/v1/settings", json=body, headers=d.headers)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation", r.text
    r = d.api.patch("/v1/settings", json={"values": {"k8": "y" * 8000}}, headers=d.headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation", r.text
    r = d.api.patch("/v1/settings", json={"theme": "light"}, headers=d.headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", r.text
    assert d.get("/v1/settings").json()["version"] == version


def test_rest_settings_honour_if_match(api: Api) -> None:
    d = api.user()
    r = d.get("/v1/settings")
    assert r.status_code == 200 and r.headers["etag"] == 'W/"0"'
    r = d.api.patch("/v1/settings", json={"values": {"theme": "dark"}},
                    headers={**d.headers, "If-Match": 'W/"0"'})
    assert r.status_code == 200, r.text
    etag = r.headers["etag"]
    assert etag != 'W/"0"'
    r = d.api.patch("/v1/settings", json={"values": {"theme": "light"}},
                    headers={**d.headers, "If-Match": 'W/"0"'})
    assert r.status_code == 412, r.text
    assert d.get("/v1/settings").json()["values"] == {"theme": "dark"}


def test_rebuild_verify_covers_settings(api: Api, pg_url: str,
                                        db: psycopg.Connection[Any]) -> None:
    d = api.user()
    d.push([settings_op(d, theme="dark", font_size=12), settings_op(d, font_size=None)])
    assert run_cli(pg_url, "rebuild", "--verify").returncode == 0
    db.execute("""UPDATE settings SET fields = '{"theme": "tampered"}' WHERE user_id = %s""",
               (d.user_id,))
    r = run_cli(pg_url, "rebuild", "--verify")
    assert r.returncode == 1
    assert f"settings {d.user_id}: values is {{'theme': 'tampered'}}" in r.stdout, r.stdout
    assert run_cli(pg_url, "rebuild").returncode == 0
    assert d.get("/v1/settings").json()["values"] == {"theme": "dark"}


def test_a_note_named_by_a_users_id_keeps_apart_from_their_settings(
        api: Api, pg_url: str) -> None:
    """Devices pick entity ids, so a note may carry another user's id, which is also the
    id of that user's settings: the two never stand in for each other, live or rebuilt.
    A note under the pushing user's own id is refused (it would meet their settings in
    one batch)."""
    owner, other = api.user(), api.user()
    other.push([settings_op(other, theme="dark")])
    r = owner.push([owner.set("note", other.user_id, None, title="named like a user")])
    assert statuses(r) == ["applied"]
    own = owner.push([owner.set("note", owner.user_id, None, title="mine")])
    assert statuses(own) == ["rejected"] and own["results"][0]["code"] == "validation"
    assert other.get("/v1/settings").json()["values"] == {"theme": "dark"}
    verify = run_cli(pg_url, "rebuild", "--verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
