"""Python client SDK for syncd: a local SQLite store that syncs with a syncd server.

from syncd_client import SyncClient
client = SyncClient.open("notes.db", "http://127.0.0.1:8000")
client.login("me@example.com", "secret", "laptop", "linux")
note = client.create_note(title="Groceries", tags=["home"])
client.set_body(note, "milk, eggs")
client.sync()
"""

from syncd_client.client import SyncClient, SyncResult
from syncd_client.errors import ApiError, AuthError, NotFound, NotLoggedIn, SyncdClientError

__all__ = [
    "ApiError",
    "AuthError",
    "NotFound",
    "NotLoggedIn",
    "SyncClient",
    "SyncResult",
    "SyncdClientError",
]
