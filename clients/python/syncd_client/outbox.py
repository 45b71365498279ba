"""The queue of ops a device has made and the server has not consumed yet.

Ops are numbered 1, 2, 3, ... when the user makes them and keep their number
when a push is retried, so a push whose response was lost comes back as
`duplicate` and is simply dropped (its effect is already in the local store).
The only renumbering happens on `client_seq_gap` when the server expects a
number *below* the head of the queue (it never saw those numbers, e.g. a
store restored from an old backup); numbers below `expected` were consumed
and are dropped. Transport-free: HTTP push and the sync socket both use it.
"""

from __future__ import annotations

import logging

from syncd_client import merge
from syncd_client.messages import PushResponse
from syncd_client.projection import Projection
from syncd_client.store import Store
from syncd_client.types import EntityName, Json

log = logging.getLogger(__name__)

MAX_BATCH = 1000


class Outbox:
    def __init__(self, store: Store, projection: Projection) -> None:
        self.store = store
        self.projection = projection

    def add(self, op: Json) -> int:
        """Queue an op (everything but `client_seq`); return its `client_seq`."""
        return self.store.enqueue(op)

    def __len__(self) -> int:
        return self.store.outbox_size()

    def next_batch(self, limit: int = MAX_BATCH) -> list[Json]:
        """The next ops to push; remembered as sent so their canonical clock can be adopted."""
        with self.store.transaction():
            ops = self.store.pending(min(limit, MAX_BATCH))
            for op in ops:
                self.store.remember_sent(op["client_seq"], op["entity"], op["id"], op["hlc"])
            return ops

    def on_response(self, ops: list[Json], resp: PushResponse) -> None:
        """Consume the results of a push of `ops` (HTTP response or socket `ack`)."""
        by_seq = {op["client_seq"]: op for op in ops}
        with self.store.transaction():
            done: list[int] = []
            for res in resp.results:
                op = by_seq.get(res.client_seq)
                if op is None:
                    continue
                done.append(res.client_seq)
                entity: EntityName = op["entity"]
                if res.status == "applied":
                    # The log holds the op at the canonical clock (the one sent when the
                    # result names none); the device moves its field and its own clock to it.
                    canonical = res.hlc or op["hlc"]
                    self.projection.observe_clock(canonical)
                    if self.store.take_sent(res.client_seq) is not None:
                        self._settle(entity, op, canonical)
                elif res.status == "rejected":
                    if self.store.take_sent(res.client_seq) is not None:
                        # The server kept nothing of this op: the field goes back to what
                        # the server holds.
                        self._settle(entity, op, None)
                    self.store.reject(op, res.code or "rejected", res.message or "")
                    log.warning("op %s rejected: %s %s", res.client_seq, res.code, res.message)
                # duplicate: already consumed by an earlier push whose response was lost;
                # keep the `sent` entry so the pulled event can still canonicalise its clock.
            self.store.drop_ops(done)
            # Everything up to `acked` is consumed, whether or not a result named it.
            self.store.drop_ops_below(resp.acked + 1)
            self.store.set("acked", max(resp.acked, self.store.get_int("acked")))
            if self.store.get_int("next_seq", 1) <= resp.acked:
                self.store.set("next_seq", resp.acked + 1)

    def on_gap(self, expected: int) -> None:
        """Recover from `409 client_seq_gap {expected}` before pushing again."""
        with self.store.transaction():
            dropped = self.store.drop_ops_below(expected)
            self.store.forget_sent_from(expected)
            head = self.store.pending(1)
            if head and head[0]["client_seq"] != expected:
                log.warning("renumbering outbox from %s to %s", head[0]["client_seq"], expected)
                self.store.renumber_from(expected)
            elif not head:
                self.store.set("next_seq", expected)
            self.store.set("acked", expected - 1)
            if dropped:
                log.info("dropped %s ops the server had already consumed", dropped)

    def _settle(self, entity: EntityName, op: Json, canonical: str | None) -> None:
        if op["kind"] == "set":
            fields = dict(op.get("fields") or {})
        elif op["kind"] in ("delete", "restore"):
            fields = {"deleted": op["kind"] == "delete"}
        else:
            return
        row = self.projection.row(entity, op["id"])
        if row is not None:
            merge.settle(row, fields, op["hlc"], canonical)
            self.store.save(row)
