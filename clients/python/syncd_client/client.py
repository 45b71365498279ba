"""`SyncClient`: the offline-first API an application uses.

Local edits are applied to the local store and queued as ops in one SQLite
transaction, so they survive a crash and work without a network. `sync()`
pushes the outbox and pulls the log over HTTP; `live()` does the same over the
sync WebSocket. Remote events are merged by `projection.py` (LWW per field by
HLC, CRDT text), which is also why replays and stale events are harmless.
"""

from __future__ import annotations

import base64
import logging
import platform as _platform
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from syncd_client import queries, textdoc
from syncd_client.api import Api
from syncd_client.auth import store_tokens
from syncd_client.errors import ApiError, NotFound, NotLoggedIn
from syncd_client.hlc import Clock, wall_ms
from syncd_client.live import LiveSync
from syncd_client.messages import TokenResponse
from syncd_client.outbox import MAX_BATCH, Outbox
from syncd_client.projection import Projection
from syncd_client.store import Rejection, Store
from syncd_client.types import META, ChangeCallback, EntityId, EntityName, Json, writable

log = logging.getLogger(__name__)

DEFAULT_SERVER = "http://127.0.0.1:8000"
MAX_GAP_RETRIES = 3


@dataclass(frozen=True)
class SyncResult:
    pushed: int
    pulled: int
    changed: list[EntityId]


class SyncClient:
    """One device's view of one user's data, backed by a SQLite file."""

    def __init__(self, store: Store, server_url: str, now: Callable[[], int] = wall_ms) -> None:
        """`now`: the device's wall clock in ms (its HLC's physical part)."""
        self.store = store
        self.server_url = server_url.rstrip("/")
        self.api = Api(self.server_url, store)
        node = store.get("device_id") or "local"
        self._clock = Clock(node, store.get("last_hlc"), now)
        self.projection = Projection(store, self._clock.observe)
        self.outbox = Outbox(store, self.projection)
        self._callbacks: list[ChangeCallback] = []
        self._live: LiveSync | None = None
        self.outbox_changed = threading.Event()

    @classmethod
    def open(cls, path: str | Path, server_url: str | None = None,
             now: Callable[[], int] = wall_ms) -> SyncClient:
        """Open (or create) the store at `path`; `server_url` defaults to the stored one."""
        store = Store(path)
        url = server_url or store.get("server_url") or DEFAULT_SERVER
        store.set("server_url", url)
        return cls(store, url, now)

    def close(self) -> None:
        self.stop()
        self.api.close()
        self.store.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- state ----------------------------------------------------------------------------

    @property
    def device_id(self) -> str | None:
        return self.store.get("device_id")

    @property
    def user_id(self) -> str | None:
        return self.store.get("user_id")

    @property
    def cursor(self) -> int:
        return self.store.get_int("cursor")

    @property
    def acked(self) -> int:
        return self.store.get_int("acked")

    def pending(self) -> int:
        """How many ops wait in the outbox."""
        return len(self.outbox)

    # --- identity -------------------------------------------------------------------------

    def register(self, email: str, password: str, name: str | None = None) -> Json:
        user = self.api.register(email, password, name)
        return {"id": user.id, "email": user.email, "name": user.name}

    def login(
        self,
        email: str,
        password: str,
        device_name: str | None = None,
        platform: str | None = None,
    ) -> Json:
        """Log in as a new device of this store (every login creates a device)."""
        res = self.api.login(
            email,
            password,
            device_name or _platform.node() or "python",
            platform or f"python-{_platform.system().lower()}",
        )
        with self.store.transaction():
            previous_user = self.user_id
            if previous_user and previous_user != res.user.id:
                self._wipe()
            self._adopt_device(res.device_id)
            self.store.set("user_id", res.user.id)
            self.store.set("email", res.user.email)
            store_tokens(self.store, TokenResponse(res.access_token, res.refresh_token))
        return {
            "id": res.user.id,
            "email": res.user.email,
            "name": res.user.name,
            "device_id": res.device_id,
        }

    def logout(self) -> None:
        try:
            self.api.logout()
        finally:
            with self.store.transaction():
                for key in ("access_token", "refresh_token"):
                    self.store.set(key, None)

    def _adopt_device(self, device_id: str) -> None:
        """Number from 1 again and re-stamp queued ops: their clocks must name this device."""
        old_node = self._clock.node
        ops = self.store.pending(limit=1 << 62)
        self.store.drop_ops_below(1 << 62)
        self.store.forget_sent_from(0)
        self.store.set("next_seq", 1)
        self.store.set("acked", 0)
        self.store.set("device_id", device_id)
        self._clock.node = device_id
        for op in ops:
            if old_node != device_id:
                new_hlc = op["hlc"][: -len(old_node)] + device_id
                row = self.projection.row(op["entity"], op["id"])
                if row is not None:
                    for name, clock in row.clocks.items():
                        if clock == op["hlc"]:
                            row.clocks[name] = new_hlc
                    self.store.save(row)
                op["hlc"] = new_hlc
            op.pop("client_seq", None)
            self.outbox.add(op)
        self.store.set("last_hlc", self._clock.last)

    def _wipe(self) -> None:
        for entity in ("note", "project", "settings"):
            for row in self.store.rows(entity):
                self.projection.forget(row.entity, row.id)
        self.store.drop_ops_below(1 << 62)
        self.store.set("cursor", 0)

    # --- local edits ----------------------------------------------------------------------

    def _require_device(self) -> None:
        if not self.device_id:
            raise NotLoggedIn("log in first: ops are stamped with this device's id")

    def _queue(self, entity: EntityName, id: str, kind: str, **extra: Any) -> str:
        """Stamp, apply locally and queue one op; the caller holds a transaction."""
        hlc = self._clock.tick()
        self.store.set("last_hlc", hlc)
        op: Json = {
            "hlc": hlc,
            "entity": entity,
            "id": id,
            "kind": kind,
            "base": self.cursor,
            **extra,
        }
        if kind == "set":
            self.projection.local_set(entity, id, extra["fields"], hlc)
        elif kind in ("delete", "restore"):
            self.projection.local_set(entity, id, {"deleted": kind == "delete"}, hlc)
        self.outbox.add(op)
        self.outbox_changed.set()
        return hlc

    def _check_fields(self, entity: EntityName, fields: dict[str, Any]) -> None:
        """Unknown fields are refused here; a `meta={k: v}` argument becomes the `meta.<k>`
        fields that write it (v None clears k)."""
        meta = fields.pop("meta", None) or {}
        fields.update({META + str(k): v for k, v in meta.items()})
        unknown = {name for name in fields if not writable(entity, name)}
        if unknown:
            raise ValueError(f"unknown {entity} field(s): {', '.join(sorted(unknown))}")

    def _create(self, entity: EntityName, fields: dict[str, Any]) -> EntityId:
        self._require_device()
        body = fields.pop("body", None) if entity == "note" else None
        self._check_fields(entity, fields)
        id = str(uuid.uuid4())
        with self.store.transaction():
            self._queue(entity, id, "set", fields=fields)
            if body:
                self.set_body(id, body)
        return id

    def _update(self, entity: EntityName, id: str, fields: dict[str, Any]) -> None:
        self._require_device()
        body = fields.pop("body", None) if entity == "note" else None
        self._check_fields(entity, fields)
        with self.store.transaction():
            self._get(entity, id)
            if fields:
                self._queue(entity, id, "set", fields=fields)
            if body is not None:
                self.set_body(id, body)

    def _flag(self, entity: EntityName, id: str, kind: str) -> None:
        self._require_device()
        with self.store.transaction():
            self._get(entity, id)
            self._queue(entity, id, kind)

    def _get(self, entity: EntityName, id: str) -> Any:
        row = self.projection.row(entity, id)
        if row is None:
            raise NotFound(f"no {entity} {id}")
        return row

    def create_note(self, **fields: Any) -> EntityId:
        """Create a note (fields: title, tags, pinned, favorite, project_id, body, and
        `meta`, a map of the app's own keys to JSON values)."""
        return self._create("note", {"title": "", **fields})

    def update_note(self, id: str, **fields: Any) -> None:
        self._update("note", id, fields)

    def delete_note(self, id: str) -> None:
        self._flag("note", id, "delete")

    def restore_note(self, id: str) -> None:
        self._flag("note", id, "restore")

    def create_project(self, **fields: Any) -> EntityId:
        """Create a project (fields: title, description, word_goal, status, deadline
        (`YYYY-MM-DD` or None), meta)."""
        return self._create("project", {"title": "", **fields})

    def update_project(self, id: str, **fields: Any) -> None:
        self._update("project", id, fields)

    def delete_project(self, id: str) -> None:
        self._flag("project", id, "delete")

    def restore_project(self, id: str) -> None:
        self._flag("project", id, "restore")

    # --- settings -------------------------------------------------------------------------

    def settings(self) -> Json:
        """The user's settings as this device holds them: key → JSON value."""
        row = self.projection.row("settings", self.user_id or "")
        return {k: v for k, v in row.fields.items() if v is not None} if row else {}

    def set_settings(self, values: dict[str, Any]) -> None:
        """Set some of the user's settings (None clears a key); the others are left as they
        are. Each key is its own LWW register, so devices editing different keys both keep
        theirs."""
        self._require_device()
        user = self.user_id
        if not user:
            raise NotLoggedIn("log in first: settings are the user's")
        if values:
            with self.store.transaction():
                self._queue("settings", user, "set", fields=dict(values))

    # --- note bodies ----------------------------------------------------------------------

    def _text_op(self, note_id: str, edit: Any) -> None:
        self._require_device()
        with self.store.transaction():
            self._get("note", note_id)
            update = self.projection.local_text(note_id, edit)
            if update:
                self._queue(
                    "note",
                    note_id,
                    "text",
                    field="body",
                    update=base64.b64encode(update).decode("ascii"),
                )

    def set_body(self, note_id: str, text: str) -> None:
        """Make the body `text` by a minimal edit (common prefix/suffix kept)."""
        self._text_op(note_id, lambda doc: textdoc.replace_text(doc, text))

    def insert_text(self, note_id: str, index: int, text: str) -> None:
        self._text_op(note_id, lambda doc: textdoc.insert_text(doc, index, text))

    def delete_text(self, note_id: str, index: int, length: int) -> None:
        self._text_op(note_id, lambda doc: textdoc.delete_text(doc, index, length))

    # --- queries --------------------------------------------------------------------------

    def notes(
        self,
        project_id: str | None = None,
        tag: str | None = None,
        pinned: bool | None = None,
        query: str | None = None,
        include_deleted: bool = False,
    ) -> list[Json]:
        return queries.list_notes(self.store, project_id, tag, pinned, query, include_deleted)

    def note(self, id: str) -> Json | None:
        row = self.projection.row("note", id)
        return queries.view(row) if row else None

    def projects(self, include_deleted: bool = False) -> list[Json]:
        return queries.list_projects(self.store, include_deleted)

    def project(self, id: str) -> Json | None:
        row = self.projection.row("project", id)
        return queries.view(row) if row else None

    def rejections(self) -> list[Rejection]:
        """Ops the server refused, with its `code` and `message` (they are not retried)."""
        return self.store.rejections()

    def notifications(self, kind: str | None = None) -> list[Json]:
        """Milestone, member and conflict events, as the server sent them."""
        return self.store.notifications(kind)

    # --- sync -----------------------------------------------------------------------------

    def on_change(self, callback: ChangeCallback) -> None:
        """Call `callback(ids)` whenever remote events change local entities."""
        self._callbacks.append(callback)

    def _notify(self, changed: list[EntityId]) -> None:
        if not changed:
            return
        ids = list(dict.fromkeys(changed))
        for callback in self._callbacks:
            try:
                callback(ids)
            except Exception:  # an application callback must not break syncing
                log.exception("on_change callback failed")

    def push(self) -> int:
        """Push the whole outbox in batches; return how many ops the server answered."""
        self._require_device()
        pushed = gaps = 0
        while True:
            ops = self.outbox.next_batch(MAX_BATCH)
            if not ops:
                return pushed
            try:
                resp = self.api.push(ops)
            except ApiError as exc:
                if exc.status == 409 and exc.code == "client_seq_gap" and gaps < MAX_GAP_RETRIES:
                    gaps += 1
                    self.outbox.on_gap(int(exc.details["expected"]))
                    continue
                raise
            self.outbox.on_response(ops, resp)
            pushed += len(resp.results)

    def apply_events(self, events: list[Json]) -> list[EntityId]:
        """Apply events in log order, skipping those at or below the cursor.

        Advances the cursor and calls the `on_change` callbacks; returns the changed ids.
        """
        changed: list[EntityId] = []
        with self.store.transaction():
            cursor = self.cursor
            for raw in events:
                seq = int(raw["seq"])
                if seq <= cursor:
                    continue
                changed += self.projection.apply_event(raw, self.device_id)
                cursor = seq
            self.store.set("cursor", cursor)
            self.store.set("last_hlc", self._clock.last)
        self._notify(changed)
        return changed

    def pull(self, limit: int = 500) -> int:
        """Pull every event after the cursor; return how many were applied."""
        applied = 0
        while True:
            page = self.api.pull(self.cursor, limit)
            before = self.cursor
            self.apply_events(page.events)
            applied += self.cursor - before
            if not page.has_more or not page.events:
                return applied

    def sync(self) -> SyncResult:
        """Push the outbox, then pull until caught up."""
        pushed = self.push()
        changed: list[EntityId] = []
        self._callbacks.append(changed.extend)
        try:
            pulled = self.pull()
        finally:
            self._callbacks.remove(changed.extend)
        return SyncResult(pushed, pulled, changed)

    def bootstrap(self) -> SyncResult:
        """Load the snapshot (a fresh device), then pull from its cursor."""
        snap = self.api.snapshot()
        changed: list[EntityId] = []
        with self.store.transaction():
            settings = [snap.settings] if snap.settings else []
            for entity, items in (("project", snap.projects), ("note", snap.notes),
                                  ("settings", settings)):
                for flat in items:
                    for clock in (flat.get("clocks") or {}).values():
                        self._clock.observe(clock)
                    if self.projection.apply_entity(entity, flat):  # type: ignore[arg-type]
                        changed.append(str(flat["id"]))
            if snap.cursor > self.cursor:
                self.store.set("cursor", snap.cursor)
            self.store.set("last_hlc", self._clock.last)
        self._notify(changed)
        result = self.sync()
        return SyncResult(result.pushed, result.pulled, changed + result.changed)

    def live(self, background: bool = True) -> LiveSync:
        """Stay in sync over the WebSocket; in a thread unless `background` is False."""
        self._require_device()
        if self._live is None or not self._live.running:
            self._live = LiveSync(self)
        if background:
            self._live.start()
        else:
            self._live.run()
        return self._live

    def stop(self) -> None:
        """Stop `live()` and wait for its thread."""
        if self._live is not None:
            self._live.stop()
            self._live = None
