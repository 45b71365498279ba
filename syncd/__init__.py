"""syncd: an offline-first sync server (per-user event log, LWW fields, CRDT text)."""

__version__ = "0.1.0"
