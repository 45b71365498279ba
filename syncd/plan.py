"""Pure batch planning: (entities, memberships, ops) → per-op results and events to append.

The push, the REST writes and the collab endpoint all hand their ops to a `Batch`; the
async code in sync.py loads state, drives the batch and writes what it planned. Nothing
here does I/O, which is what lets the property tests and `rebuild` share this path.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from syncd.errors import OpRejected
from syncd.fields import check_total, validate
from syncd.merge import (
    Entity,
    apply_fields,
    apply_text,
    apply_text_run,
    check_update,
)
from syncd.messages import Op, OpResult
from syncd.projection import SOURCE_KINDS, contribution, field_changes, settle_words
from syncd.types import WRITE_ROLES
from syncd.words import Runs, quarter

MILESTONES = (25, 50, 75, 100)


@dataclass
class Planned:
    """One event: a single op id, copied into the log of every user in `audience`."""

    audience: set[UUID]
    entity: str
    entity_id: UUID
    kind: str
    hlc: str
    author_id: UUID
    device_id: UUID | None
    client_seq: int | None = None
    fields: dict[str, Any] | None = None
    payload: bytes | None = None
    op_id: int = 0


Members = dict[UUID, dict[UUID, str]]  # project id → user id → role


@dataclass(frozen=True)
class Writer:
    """Who wrote a field's current value, as the pushing user's log has it."""

    seq: int
    device_id: UUID | None
    author_id: UUID


class Batch:
    def __init__(
        self,
        author: UUID,
        device: UUID | None,
        entities: dict[UUID, Entity],
        members: Members,
        server_hlc: Callable[[], str],
        writers: dict[int, Writer] | None = None,
        vouched: frozenset[UUID] = frozenset(),
    ) -> None:
        self.author = author
        # Collab rooms' notes: their text ops were admitted by a room from an author who
        # could write the note then; a role change since does not refuse them (see
        # _vouches).
        self.vouched = vouched
        self.device = device
        self.entities = entities
        self.members = members
        self.server_hlc = server_hlc
        self.writers = writers or {}
        self.events: list[Planned] = []
        self.new_members: list[tuple[UUID, UUID, str]] = []
        # (entity, event, fields it won) for every event of an op that changes an entity, in
        # order: once op ids exist, they are recorded (projection.record), so the last
        # write of a field is its writer.
        self.changes: list[tuple[Entity, Planned, tuple[str, ...]]] = []
        self.conflicts: list[dict[str, Any]] = []
        # Each note's contribution to a project's word count before the batch.
        self._baseline = {e.id: contribution(e) for e in entities.values() if e.entity == "note"}
        self._goal_touched: set[UUID] = set()
        self.words = Runs()  # words.py: what the batch's text ops wrote

    # --- access ---------------------------------------------------------------------------

    def role(self, project_id: UUID | None) -> str | None:
        if project_id is None:
            return None
        return self.members.get(project_id, {}).get(self.author)

    def can_see(self, ent: Entity) -> bool:
        if ent.entity == "settings":  # one per user, theirs alone
            return ent.owner_id == self.author
        if ent.entity == "project":
            return self.role(ent.id) is not None
        return ent.owner_id == self.author or self.role(ent.project_id) is not None

    def can_write(self, ent: Entity) -> bool:
        if ent.entity == "settings":
            return ent.owner_id == self.author
        if ent.entity == "project":
            return self.role(ent.id) in WRITE_ROLES
        return ent.owner_id == self.author or self.role(ent.project_id) in WRITE_ROLES

    def audience(self, ent: Entity) -> set[UUID]:
        if ent.entity == "settings":
            return {ent.owner_id}
        if ent.entity == "project":
            return set(self.members.get(ent.id, {}))
        return {ent.owner_id, *self.members.get(ent.project_id, {})} if ent.project_id else {
            ent.owner_id
        }

    # --- ops ------------------------------------------------------------------------------

    def apply(self, op: Op, hlc: str) -> OpResult:
        """Apply one op; a refusal leaves every entity as it was and is reported, not raised."""
        try:
            self._apply(op, hlc)
        except OpRejected as r:
            return OpResult(op.client_seq, "rejected", code=r.code, message=r.message)
        return OpResult(op.client_seq, "applied", hlc=hlc if hlc != op.hlc else None)

    def apply_all(self, ops: list[tuple[Op, str]]) -> list[OpResult]:
        """Apply ops in order. Consecutive text ops on one note in one quarter hour (an
        offline device's typing) go into its document in one transaction when every one
        of them would be applied (merge.apply_text_run); otherwise one by one."""
        results: list[OpResult] = []
        i = 0
        while i < len(ops):
            j = _run_end(ops, i)
            if j - i > 1 and self._text_run(ops[i:j], quarter(ops[i][1])):
                results += [OpResult(o.client_seq, "applied", hlc=h if h != o.hlc else None)
                            for o, h in ops[i:j]]
            else:
                results += [self.apply(o, h) for o, h in ops[i:j]]
            i = j
        return results

    def _text_run(self, run: list[tuple[Op, str]], when: datetime) -> bool:
        """Apply a run of text ops on one note at once, if each would be applied alone."""
        try:
            ent = self._existing(run[0][0])
            for op, _ in run:
                if op.entity != "note" or op.field != "body" or op.update is None:
                    return False
                check_update(op.update)
        except OpRejected:
            return False
        self._start_run(ent, when)
        if not apply_text_run(ent, [op.update for op, _ in run if op.update is not None]):
            return False
        for op, hlc in run:
            self._emit(ent, op, hlc, fields=None, payload=op.update)
        return True

    def _vouches(self, op: Op, ent: Entity) -> bool:
        """A text op on the note a collab room serves, written behind: the room relayed it
        to every peer when it admitted it, so it is judged by the access its author had
        then. Refusing it now would leave text in every peer's document the log never
        holds (docs/protocol-notes.md, collab)."""
        return (op.kind == "text" and op.id in self.vouched and ent.entity == "note"
                and op.entity == "note")

    def _existing(self, op: Op) -> Entity:
        ent = self.entities.get(op.id)
        if ent is None:
            raise OpRejected("not_found", f"{op.entity} {op.id} does not exist")
        if self._vouches(op, ent):
            return ent
        if ent.entity != op.entity or not self.can_see(ent):
            raise OpRejected("forbidden", f"no access to {op.entity} {op.id}")
        if not self.can_write(ent):
            raise OpRejected("forbidden", f"no write access to {op.entity} {op.id}")
        return ent

    def _apply(self, op: Op, hlc: str) -> None:
        if op.kind == "set":
            self._set(op, hlc)
            return
        if op.entity == "settings":
            raise OpRejected("validation", "settings take set ops only")
        ent = self._existing(op)
        if op.kind == "text":
            if op.entity != "note" or op.field != "body" or op.update is None:
                raise OpRejected("validation", "a text op needs entity note, field body, update")
            self._start_run(ent, quarter(hlc))
            # The room measured a vouched update against its document; a push that grew
            # the note meanwhile does not refuse it (the overshoot is what the room
            # admitted before it saw the push).
            apply_text(ent, op.update, bounded=not self._vouches(op, ent))
            self._emit(ent, op, hlc, fields=None, payload=op.update)
            return
        if ent.entity == "project" and self.role(ent.id) != "owner":
            raise OpRejected("forbidden", "only the owner deletes or restores a project")
        self._write(ent, op, hlc, field_changes(op.kind, None), None, None)

    def _set(self, op: Op, hlc: str) -> None:
        if op.field is not None or op.update is not None:
            raise OpRejected("validation", "a set op carries fields only")
        fields = validate(op.entity, op.fields or {})
        ent = self.entities.get(op.id)
        creates = ent is None
        if ent is None:
            if op.entity == "settings" and op.id != self.author:
                raise OpRejected("forbidden", "a user's settings have the user's id")
            if op.entity != "settings" and op.id == self.author:
                # The user's id names their settings: a note or project under it would
                # share a batch's entity map with them.
                raise OpRejected("validation", "this id is the user's own; pick another")
            ent = Entity.new(op.entity, op.id, self.author)
        elif ent.entity != op.entity or not self.can_see(ent):
            raise OpRejected("forbidden", f"no access to {op.entity} {op.id}")
        elif not self.can_write(ent):
            raise OpRejected("forbidden", f"no write access to {op.entity} {op.id}")
        check_total(op.entity, ent.fields, fields)
        if "project_id" in fields and hlc > ent.clocks.get("project_id", ""):
            self._check_move(ent, fields["project_id"])
        before = None if creates else self.audience(ent)
        if creates:
            self.entities[ent.id] = ent
            if ent.entity == "project":
                self.members[ent.id] = {self.author: "owner"}
                self.new_members.append((ent.id, self.author, "owner"))
        if "word_goal" in fields:
            self._goal_touched.add(ent.id)
        after = self._write(ent, op, hlc, fields, fields, before)
        ent.dirty = True
        if before is None:
            return
        # A move sends newcomers the whole entity (`put`) and tells those who lost it: one
        # event each, copied into every such user's log, so the document is stored once.
        if after - before:
            self._put(ent, after - before)
        if before - after:
            self.events.append(Planned(before - after, ent.entity, ent.id, "revoke", hlc,
                                       self.author, self.device))

    def _write(self, ent: Entity, op: Op, hlc: str, changes: dict[str, Any],
               event_fields: dict[str, Any] | None, before: set[UUID] | None) -> set[UUID]:
        """Apply LWW field changes, log the op (to those who saw the entity before and
        still do; to all who see it, for a creation), and record any conflict it makes.
        Returns who sees the entity now."""
        conflicts = self._conflicts(ent, op, hlc, changes)
        won = apply_fields(ent, changes, hlc)
        # Who sees a note changes with its project alone, and a project's members do not
        # change here.
        if before is not None and "project_id" not in won:
            after = audience = before
        else:
            after = self.audience(ent)
            audience = after if before is None else before & after
        self._emit(ent, op, hlc, fields=event_fields, audience=audience, won=tuple(won))
        for c in conflicts:
            self.conflicts.append(c)
            self.events.append(Planned({self.author}, ent.entity, ent.id, "conflict",
                                       self.server_hlc(), self.author, self.device, fields=c))
        return after

    def _conflicts(self, ent: Entity, op: Op, hlc: str,
                   changes: dict[str, Any]) -> list[dict[str, Any]]:
        """A write conflicts when the value it meets was written by another device in an
        event past the op's `base`: one the device had not seen when the user made it."""
        if op.base is None or ent.is_new:
            return []
        out = []
        for name, value in changes.items():
            writer = self.writers.get(ent.writers.get(name, 0))
            # ent.unsaved: the fields this batch's writes won so far (its entities come
            # to it loaded, and are saved after it), so a check per op is no scan of
            # what the batch did.
            if (writer is None or writer.seq <= op.base or writer.device_id == self.device
                    or name in ent.unsaved or ent.fields.get(name) == value):
                continue
            out.append({
                "id": str(uuid.uuid4()), "entity": ent.entity, "entity_id": str(ent.id),
                "field": name, "winner": "mine" if hlc > ent.clocks.get(name, "") else "theirs",
                "mine": {"value": value, "hlc": hlc, "device_id": _str(self.device),
                         "user_id": str(self.author)},
                "theirs": {"value": ent.fields.get(name), "hlc": ent.clocks.get(name),
                           "device_id": _str(writer.device_id),
                           "user_id": str(writer.author_id), "seq": writer.seq},
            })
        return out

    def _start_run(self, ent: Entity, when: datetime) -> None:
        self.words.start(ent, self.author, when)

    def _check_move(self, ent: Entity, target: str | None) -> None:
        old = ent.project_id
        new = UUID(target) if target else None
        if new == old:
            return
        if old is not None and self.role(old) not in WRITE_ROLES and ent.owner_id != self.author:
            raise OpRejected("forbidden", "moving a note needs write access to its project")
        if new is not None:
            project = self.entities.get(new)
            if project is None or project.entity != "project":
                raise OpRejected("not_found", f"project {new} does not exist")
            if self.role(new) not in WRITE_ROLES:
                raise OpRejected("forbidden", f"no write access to project {new}")

    def _emit(self, ent: Entity, op: Op, hlc: str, fields: dict[str, Any] | None,
              payload: bytes | None = None, audience: set[UUID] | None = None,
              won: tuple[str, ...] = ()) -> None:
        event = Planned(
            self.audience(ent) if audience is None else audience, ent.entity, ent.id, op.kind,
            hlc, self.author, self.device, op.client_seq if op.client_seq > 0 else None, fields,
            payload,
        )
        self.events.append(event)
        if op.kind in SOURCE_KINDS:
            self.changes.append((ent, event, won))
            # Its op id is the entity's version now, as a replay of the log says, even
            # when every field it wrote lost to a newer clock: the row is saved.
            ent.dirty = True

    def _put(self, ent: Entity, users: set[UUID]) -> None:
        if not ent.state_loaded:
            raise RuntimeError(f"note {ent.id} was loaded without its document")
        state = ent.document_state()
        self.events.append(Planned(
            users, ent.entity, ent.id, "put", self.server_hlc(), self.author, self.device,
            fields={"fields": dict(ent.fields), "clocks": dict(ent.clocks)}, payload=state,
        ))

    # --- derived values -------------------------------------------------------------------

    def finish(self) -> None:
        """Fold documents, then update project word counts and emit first-reached milestones."""
        self.words.end_all(self.entities)
        changed = [e for e in self.entities.values() if e.entity == "note" and e.dirty]
        touched = self._goal_touched | settle_words(self.entities, changed, self._baseline)
        for pid in sorted(touched):
            self._milestones(self.entities[pid])

    def _milestones(self, project: Entity) -> None:
        goal = project.fields.get("word_goal") or 0
        if goal <= 0:
            return
        for pct in MILESTONES:
            key = str(pct)
            if key not in project.milestones and project.word_count * 100 >= pct * goal:
                project.milestones[key] = {"seq": 0, "at": None}
                project.dirty = True
                self.events.append(Planned(
                    self.audience(project), "project", project.id, "milestone",
                    self.server_hlc(), self.author, self.device,
                    fields={"milestone": pct, "word_count": project.word_count,
                            "word_goal": goal},
                ))


def _run_end(ops: list[tuple[Op, str]], i: int) -> int:
    """Where the run of text ops on ops[i]'s note in its quarter hour ends (i + 1 for any
    other op)."""
    op, hlc = ops[i]
    j = i + 1
    if op.kind == "text":
        when = quarter(hlc)
        while (j < len(ops) and ops[j][0].kind == "text" and ops[j][0].id == op.id
               and quarter(ops[j][1]) == when):
            j += 1
    return j


def _str(v: UUID | None) -> str | None:
    return None if v is None else str(v)

