"""Settings from flags and SYNCD_* environment variables, with documented defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


@dataclass
class Settings:
    host: str = field(default_factory=lambda: _env("SYNCD_HOST", "127.0.0.1") or "127.0.0.1")
    port: int = field(default_factory=lambda: int(_env("SYNCD_PORT", "8000") or 8000))
    data_dir: Path = field(
        default_factory=lambda: Path(
            _env("SYNCD_DATA_DIR") or platformdirs.user_data_dir("syncd", appauthor=False)
        )
    )
    # DATABASE_URL unset means: run the embedded PostgreSQL in data_dir.
    database_url: str | None = field(default_factory=lambda: _env("DATABASE_URL"))
    # REDIS_URL unset means single-node, in-process fan-out.
    redis_url: str | None = field(default_factory=lambda: _env("REDIS_URL"))
    secret: str | None = field(default_factory=lambda: _env("SYNCD_SECRET"))
    access_ttl: int = field(default_factory=lambda: int(_env("SYNCD_ACCESS_TTL", "900") or 900))
    refresh_ttl: int = field(
        default_factory=lambda: int(_env("SYNCD_REFRESH_TTL", str(60 * 86400)) or 0)
    )
    # How long a device read live is taken as live (syncd/auth.py); 0 reads it every time.
    device_check_ttl: float = field(
        default_factory=lambda: float(_env("SYNCD_DEVICE_CHECK_TTL", "2") or 0))
    pool_min: int = field(default_factory=lambda: int(_env("SYNCD_POOL_MIN", "2") or 2))
    pool_max: int = field(default_factory=lambda: int(_env("SYNCD_POOL_MAX", "10") or 10))
    cors_origins: list[str] = field(
        default_factory=lambda: [o for o in (_env("SYNCD_CORS_ORIGINS", "") or "").split(",") if o]
    )
    log_level: str = field(default_factory=lambda: _env("SYNCD_LOG_LEVEL", "info") or "info")
    # permessage-deflate on WebSockets: off by default, it costs ~40 KiB and CPU per socket.
    ws_compression: bool = field(
        default_factory=lambda: (_env("SYNCD_WS_COMPRESSION", "0") or "0") == "1")
    # Strict-Transport-Security's max-age in seconds (syncd/headers.py); 0 sends none. Set it
    # only when every client reaches syncd over HTTPS (behind a TLS-terminating proxy).
    hsts: int = field(default_factory=lambda: int(_env("SYNCD_HSTS", "0") or 0))
    # Rate limits per fixed window of rate_window seconds; 0 turns a limit off.
    # Login/register attempts per client IP and per email; requests per user.
    rate_auth: int = field(default_factory=lambda: int(_env("SYNCD_RATE_AUTH", "10") or 0))
    rate_user: int = field(default_factory=lambda: int(_env("SYNCD_RATE_USER", "600") or 0))
    rate_window: int = field(default_factory=lambda: int(_env("SYNCD_RATE_WINDOW", "60") or 60))
    # Connections (syncd/conns.py): seconds a request's headers, and then its body, may take
    # to arrive; seconds an idle keep-alive connection stays open; open connections overall
    # and per client IP (0: no cap per IP). Past a cap, /health is still answered.
    header_timeout: float = field(
        default_factory=lambda: float(_env("SYNCD_HEADER_TIMEOUT", "10") or 10))
    body_timeout: float = field(
        default_factory=lambda: float(_env("SYNCD_BODY_TIMEOUT", "60") or 60))
    keep_alive: int = field(default_factory=lambda: int(_env("SYNCD_KEEP_ALIVE", "5") or 5))
    max_connections: int = field(
        default_factory=lambda: int(_env("SYNCD_MAX_CONNECTIONS", "10000") or 10000))
    max_connections_per_ip: int = field(
        default_factory=lambda: int(_env("SYNCD_MAX_CONNECTIONS_PER_IP", "1000") or 0))
    # Expensive routes (syncd/fairness.py): requests in flight per user, seconds an excess
    # request waits for a slot before its 429, and their PostgreSQL statement_timeout (s).
    heavy_per_user: int = field(
        default_factory=lambda: int(_env("SYNCD_HEAVY_PER_USER", "2") or 0))
    heavy_wait: float = field(
        default_factory=lambda: float(_env("SYNCD_HEAVY_WAIT", "2") or 0))
    statement_timeout: float = field(
        default_factory=lambda: float(_env("SYNCD_STATEMENT_TIMEOUT", "10") or 0))
    # Collab: seconds a room's changes wait, from the first of them, before they are
    # written to the log (writebehind.py), and the bytes that may wait for one peer (its
    # queued updates merged) before it is closed with 4408.
    collab_coalesce: float = field(
        default_factory=lambda: float(_env("SYNCD_COLLAB_COALESCE", "0.5") or 0))
    collab_peer_bytes: int = field(
        default_factory=lambda: int(_env("SYNCD_COLLAB_PEER_BYTES", str(8 << 20)) or 0))
    # The kernel's send buffer of a collab socket (0: the kernel sizes it). What a lagging
    # peer has not read stays raw there; past it, its updates wait merged in the queue.
    collab_send_buffer: int = field(
        default_factory=lambda: int(_env("SYNCD_COLLAB_SEND_BUFFER", str(256 << 10)) or 0))
    # Idle collab documents kept in memory (a reconnect finds them warm), in bytes.
    collab_warm_bytes: int = field(
        default_factory=lambda: int(_env("SYNCD_COLLAB_WARM_BYTES", str(64 << 20)) or 0))
    # Mails asked for without an account (password reset) per client IP and per email.
    rate_mail: int = field(default_factory=lambda: int(_env("SYNCD_RATE_MAIL", "5") or 0))
    # Mail (syncd/mail.py): SMTP_URL unset prints each mail to the server's output.
    smtp_url: str | None = field(default_factory=lambda: _env("SMTP_URL"))
    mail_from: str = field(
        default_factory=lambda: _env("SYNCD_MAIL_FROM", "syncd <syncd@localhost>") or "")
    # First retry delay of a mail that failed to send (doubling, at most an hour), and
    # how many attempts before it is given up.
    mail_retry: float = field(
        default_factory=lambda: float(_env("SYNCD_MAIL_RETRY", "30") or 30))
    mail_attempts: int = field(
        default_factory=lambda: int(_env("SYNCD_MAIL_ATTEMPTS", "12") or 12))
    # Links in mails: the app's pages when SYNCD_APP_URL is set (`/reset-password?token=`,
    # `/verify-email?token=`), else this server's own routes at SYNCD_PUBLIC_URL.
    public_url: str | None = field(default_factory=lambda: _env("SYNCD_PUBLIC_URL"))
    app_url: str | None = field(default_factory=lambda: _env("SYNCD_APP_URL"))
    reset_ttl: int = field(default_factory=lambda: int(_env("SYNCD_RESET_TTL", "3600") or 0))
    verify_ttl: int = field(
        default_factory=lambda: int(_env("SYNCD_VERIFY_TTL", str(3 * 86400)) or 0))
    # Days an account may log in before its email is verified; unset: no limit, 0: not at
    # all (an unverified login is refused with 403 email_unverified).
    unverified_days: float | None = field(default_factory=lambda: _float_or_none(
        _env("SYNCD_UNVERIFIED_DAYS")))

    # Sign-in through an OpenID provider (syncd/oidc.py); off unless issuer and client id
    # are set. The redirect URL is syncd's /v1/auth/oidc/callback as the provider knows it;
    # the app URL receives `?code=` (a one-time code the app exchanges for tokens).
    oidc_issuer: str = field(default_factory=lambda: _env("SYNCD_OIDC_ISSUER", "") or "")
    oidc_client_id: str = field(default_factory=lambda: _env("SYNCD_OIDC_CLIENT_ID", "") or "")
    oidc_client_secret: str = field(
        default_factory=lambda: _env("SYNCD_OIDC_CLIENT_SECRET", "") or "")
    oidc_redirect_url: str = field(
        default_factory=lambda: _env("SYNCD_OIDC_REDIRECT_URL", "") or "")
    oidc_app_url: str = field(default_factory=lambda: _env("SYNCD_OIDC_APP_URL", "") or "")

    def base_url(self) -> str:
        """Where people reach this server (links in mails)."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


def _float_or_none(value: str | None) -> float | None:
    return float(value) if value else None
