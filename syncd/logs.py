"""The server's log: one JSON object per line, with secrets redacted from every line,
whichever library wrote it.

syncd's own request log holds no URL (route templates only), but others do: uvicorn logs
each WebSocket handshake with its path and query string at INFO, and at DEBUG the
websockets library logs the request line and every header. The sockets carry the access
token as `?token=` (browsers cannot set their headers), and the OpenID callback carries a
`code` and a `state`. So the values of those query parameters, bearer tokens, and
`Authorization`/`Cookie` header values are replaced with `[redacted]` in the message and
in any traceback, by a filter on the one handler (`setup_logging`) and on uvicorn's own
loggers (`redact_uvicorn`, for a server run with uvicorn's logging).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

REDACTED = "[redacted]"
SECRET_PARAMS = ("token", "access_token", "refresh_token", "id_token", "code", "state")
_QUERY = re.compile(rf"([?&;](?:{'|'.join(SECRET_PARAMS)})=)[^&;\s\"'#\\]*", re.I)
_BEARER = re.compile(r"\b(bearer\s+)[A-Za-z0-9._~+/=-]+", re.I)
# A header line as the websockets library logs it ("< authorization: Bearer …").
_HEADER = re.compile(r"\b((?:authorization|proxy-authorization|cookie|set-cookie):\s*)"
                     r"[^\r\n]*", re.I)


def redact(text: str) -> str:
    """`text` with secret query parameters, bearer tokens and credential headers masked."""
    if "=" in text:
        text = _QUERY.sub(rf"\1{REDACTED}", text)
    return _HEADER.sub(rf"\1{REDACTED}", _BEARER.sub(rf"\1{REDACTED}", text))


class Redact(logging.Filter):
    """Rewrites a record's message (and traceback) with `redact` before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra={"fields": {...}}` adds structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(), "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(getattr(record, "fields", {}))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, default=str)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(Redact())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def redact_uvicorn() -> None:
    """The filter on the loggers uvicorn (and the websockets library under it) write to, so
    their lines are redacted whatever handlers uvicorn's logging configuration sets up."""
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, Redact) for f in logger.filters):
            logger.addFilter(Redact())
