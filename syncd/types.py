"""The vocabulary the rest of syncd is written in: ids, sequence numbers, roles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NewType
from uuid import UUID

UserId = NewType("UserId", UUID)
DeviceId = NewType("DeviceId", UUID)
Seq = NewType("Seq", int)

EntityKind = Literal["note", "project"]
OpKind = Literal["set", "text", "delete", "restore"]
Role = Literal["owner", "editor", "viewer"]
WRITE_ROLES: frozenset[str] = frozenset({"owner", "editor"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the user and the device their access token names."""

    user_id: UUID
    device_id: UUID
