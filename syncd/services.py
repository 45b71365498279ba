"""The long-lived things a running server holds, built once at start-up and shared."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from syncd.auth import Auth
from syncd.config import Settings
from syncd.db import Database
from syncd.fanout import Hub
from syncd.metrics import Metrics
from syncd.rooms import Rooms

if TYPE_CHECKING:
    from syncd.accounts import Accounts


@dataclass
class Services:
    settings: Settings
    db: Database
    auth: Auth
    hub: Hub
    metrics: Metrics = field(default_factory=Metrics)  # metrics.open_sockets for the sockets
    rooms: Rooms | None = None  # collab rooms: a service the app's lifespan starts and stops
    accounts: Accounts | None = None  # password resets, verification, and their mail
