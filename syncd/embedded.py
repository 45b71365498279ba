"""The embedded PostgreSQL for zero-configuration runs (the `pgserver` package)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("syncd.embedded")


def start_postgres(data_dir: Path) -> tuple[str, Any]:
    """Start (or reuse) a PostgreSQL whose data lives in data_dir/pg. Returns (url, handle)."""
    from pgserver.postgres_server import get_server  # only zero-config runs need it

    pg_dir = data_dir / "pg"
    pg_dir.mkdir(parents=True, exist_ok=True)
    # cleanup_mode="stop": pgserver stops PostgreSQL when the last process using this data
    # directory exits, and the next start reuses the same data.
    server = get_server(pg_dir, cleanup_mode="stop")
    return server.get_uri(), server
