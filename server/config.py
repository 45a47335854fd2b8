"""Configuration and the clock: loaded at the edge and passed in, never read at import."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock tests and the demo move by hand (or that runs on from a chosen start)."""

    def __init__(self, start: datetime, *, running: bool = False) -> None:
        self._start = start
        self._offset = timedelta()
        self._running = running
        self._wall0 = datetime.now(UTC)

    def now(self) -> datetime:
        t = self._start + self._offset
        if self._running:
            t += datetime.now(UTC) - self._wall0
        return t

    def set(self, t: datetime) -> None:
        self._start, self._offset, self._wall0 = t, timedelta(), datetime.now(UTC)

    def advance(self, **kw: float) -> None:
        self._offset += timedelta(**kw)


@dataclass(slots=True)
class Config:
    db_path: str = "waitroom.db"
    host: str = "127.0.0.1"
    port: int = 8080
    # Signs status-page and reschedule links; set it in production so links survive restarts.
    secret: str = field(default_factory=lambda: secrets.token_hex(32))
    public_url: str = "http://127.0.0.1:8080"
    clock: Clock = field(default_factory=SystemClock)
    # One budget per kiosk token, shared by lookup, check-in, walk-in and urgent help: this many
    # requests per `kiosk_budget_window_s` (a lobby kiosk serves a client every minute or so).
    kiosk_lookups_per_minute: int = 20
    kiosk_budget_window_s: float = 60.0
    # Reverse proxies whose X-Forwarded-For is believed (their own address as the server sees it).
    trusted_proxies: tuple[str, ...] = ()
    max_body_bytes: int = 1024 * 1024
    sms_provider: str = "console"  # "console" or "twilio"
    console_sms_links: bool = False  # the console provider prints links unredacted (the demo)
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_base_url: str = "https://api.twilio.com"
    # The secret of a Twilio SharedKey, when a Webhook Rule signs our webhooks with it (HMAC-SHA256).
    twilio_shared_key_secret: str | None = None
    run_notifier: bool = True
    text_tick_s: float = 60.0  # re-decide delay texts this often with no new event


def sms_config_problem(config: Config) -> str | None:
    """What is missing for the configured SMS provider, in one line naming the variables;
    None when it can start."""
    if config.sms_provider == "console":
        return None
    if config.sms_provider != "twilio":
        return f"WAITROOM_SMS_PROVIDER={config.sms_provider!r} is not a provider: use console or twilio"
    missing = [env for env, value in (("WAITROOM_TWILIO_ACCOUNT_SID", config.twilio_account_sid),
                                      ("WAITROOM_TWILIO_AUTH_TOKEN", config.twilio_auth_token)) if not value]
    if not (config.twilio_from or config.twilio_messaging_service_sid):
        missing.append("WAITROOM_TWILIO_FROM or WAITROOM_TWILIO_MESSAGING_SERVICE_SID")
    if missing:
        return "WAITROOM_SMS_PROVIDER=twilio needs " + ", ".join(missing)
    return None
