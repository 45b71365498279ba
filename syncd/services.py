"""The long-lived things a running server holds, built once at start-up and shared."""

from __future__ import annotations

from dataclasses import dataclass

from syncd.auth import Auth
from syncd.config import Settings
from syncd.db import Database
from syncd.fanout import Hub


@dataclass
class Services:
    settings: Settings
    db: Database
    auth: Auth
    hub: Hub
