"""Prometheus metrics: one registry per app (so tests can run several apps in a process).

Counted where the facts are: requests and latencies in the request middleware, pushes and
op outcomes in the push handler, open sockets by the WebSocket code (`metrics.open_sockets`
.inc()/.dec()). Events fanned out (`Hub.published`) and pool usage are read at scrape time.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from syncd import docs, offload

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.0)


class _Live(Collector):
    """Values owned by other objects (the hub, the pool, the connection table), read when
    Prometheus scrapes."""

    def __init__(self, source: Callable[[], Any], connections: Any = None,
                 gate: Any = None) -> None:
        self.source = source
        self.connections = connections
        self.gate = gate

    def collect(self) -> Iterable[Metric]:
        yield from _planning()
        if self.connections is not None:
            yield from _connections(self.connections)
        if self.gate is not None:
            yield from _gate(self.gate)
        services = self.source()
        if services is None:
            return
        now, peak = services.hub.waiting_bytes()
        waiting = GaugeMetricFamily("syncd_ws_waiting_bytes",
                                    "Bytes queued or being written for this node's sync sockets")
        waiting.add_metric([], float(now))
        yield waiting
        most = GaugeMetricFamily("syncd_ws_waiting_bytes_peak",
                                 "The most bytes one sync socket has had waiting at once")
        most.add_metric([], float(peak))
        yield most
        fanned = CounterMetricFamily("syncd_events_fanned_out",
                                     "Events handed to the fan-out hub after commit")
        fanned.add_metric([], float(getattr(services.hub, "published", 0)))
        yield fanned
        subs = GaugeMetricFamily("syncd_hub_subscribers", "Live subscribers on this node")
        subs.add_metric([], float(services.hub.subscriber_count()))
        yield subs
        rooms = getattr(services, "rooms", None)
        if rooms is not None:
            for family, name, doc, value in _COLLAB:
                metric = family(name, doc)
                metric.add_metric([], float(value(rooms)))
                yield metric
        pool = GaugeMetricFamily("syncd_db_pool", "psycopg pool statistics", labels=["stat"])
        for stat, value in services.db.pool.get_stats().items():
            pool.add_metric([stat], float(value))
        yield pool


# The collab rooms' figures: (family, name, help, how to read it off `Rooms`).
_COLLAB: tuple[tuple[type[GaugeMetricFamily | CounterMetricFamily], str, str,
                     Callable[[Any], int]], ...] = (
    (GaugeMetricFamily, "syncd_collab_queued_bytes",
     "Bytes waiting to be sent to this node's collab peers", lambda r: r.tally.queued),
    (GaugeMetricFamily, "syncd_collab_peer_peak_bytes",
     "The most bytes ever waiting for one collab peer", lambda r: r.tally.peak),
    (CounterMetricFamily, "syncd_collab_peers_over_budget",
     "Collab peers closed with 4408: over their byte budget", lambda r: r.tally.over),
    (CounterMetricFamily, "syncd_collab_updates_merged",
     "Updates sent to a collab peer inside another's frame", lambda r: r.tally.merged),
    (CounterMetricFamily, "syncd_collab_frames_direct",
     "Frames written to an idle collab socket at once", lambda r: r.tally.direct),
    (CounterMetricFamily, "syncd_collab_messages_read_direct",
     "Collab messages handled as they arrived, not queued", lambda r: r.tally.read),
    (CounterMetricFamily, "syncd_collab_writes",
     "Write-behind transactions (writebehind.py)", lambda r: r.writes.transactions),
    (CounterMetricFamily, "syncd_collab_documents_read",
     "Stored note documents read into a collab room (one without an open peer)",
     lambda r: r.documents_read),
)


def _connections(table: Any) -> Iterable[Metric]:
    open_ = GaugeMetricFamily("syncd_connections", "Open TCP connections served")
    open_.add_metric([], float(table.open))
    yield open_
    refused = CounterMetricFamily("syncd_connections_refused",
                                  "Connections over a cap, by the cap", labels=["reason"])
    for reason, n in sorted(table.refused.items()):
        refused.add_metric([reason], float(n))
    yield refused
    late = CounterMetricFamily("syncd_requests_timed_out",
                               "Connections closed for a late request, by its part",
                               labels=["part"])
    for part, n in sorted(table.timed_out.items()):
        late.add_metric([part], float(n))
    yield late


def _planning() -> Iterable[Metric]:
    planned = CounterMetricFamily("syncd_batches_planned",
                                  "Batches of ops planned, on the event loop or in a thread",
                                  labels=["where"])
    for where in ("loop", "thread"):
        planned.add_metric([where], float(offload.tally.planned[where]))
    yield planned
    flight = GaugeMetricFamily("syncd_batches_planning_off_loop",
                               "Large batches being planned in a worker thread now")
    flight.add_metric([], float(offload.tally.in_flight))
    yield flight
    kept = CounterMetricFamily("syncd_note_documents_kept",
                               "Note documents a write found kept from the last one (docs.py): "
                               "taken, or stale (the row held another state)",
                               labels=["outcome"])
    kept.add_metric(["taken"], float(docs.cache.hits))
    kept.add_metric(["stale"], float(docs.cache.misses))
    yield kept


def _gate(gate: Any) -> Iterable[Metric]:
    decided = CounterMetricFamily("syncd_heavy_requests",
                                  "Expensive requests by the fairness gate's decision",
                                  labels=["decision"])
    for decision in ("admitted", "waited", "refused"):
        decided.add_metric([decision], float(gate.decisions[decision]))
    yield decided
    flight = GaugeMetricFamily("syncd_heavy_in_flight", "Expensive requests being served")
    flight.add_metric([], float(gate.in_flight))
    yield flight


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("syncd_http_requests", "HTTP requests by route template",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("syncd_http_request_duration_seconds",
                                 "HTTP request latency by route template", ["method", "route"],
                                 buckets=_BUCKETS, registry=r)
        self.pushes = Counter("syncd_pushes", "Push requests that committed", registry=r)
        self.ops = Counter("syncd_ops", "Pushed ops by outcome", ["status"], registry=r)
        self.open_sockets = Gauge("syncd_open_sockets", "Open WebSockets on this node",
                                  registry=r)
        self.rate_limited = Counter("syncd_rate_limited", "Requests refused with 429",
                                    ["limit"], registry=r)
        self._live: _Live | None = None

    def bind(self, source: Callable[[], Any], connections: Any = None,
             gate: Any = None) -> None:
        """Read hub and pool figures from `source()` (the app's Services, once started),
        connection counts from `connections` (conns.py), decisions from `gate` (fairness.py)."""
        if self._live is None:
            self._live = _Live(source, connections, gate)
            self.registry.register(self._live)

    def count_push(self, results: Iterable[Any]) -> None:
        self.pushes.inc()
        # One labelled increment per status, not per op: a push carries up to 1000.
        for status, n in Tally(r.status for r in results).items():
            self.ops.labels(status).inc(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)
