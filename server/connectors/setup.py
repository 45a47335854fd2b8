"""Building a connector from the clinic's settings and the environment.

Settings live in the clinic's settings under `pms` (`waitroom sync --pms ezyvet --configure
key=value`): which system, its ids, which statuses mean what. Secrets never do: the client
secret or API token comes from the environment of the `waitroom sync` process, so a database
backup or a support copy of the file carries none.

    WAITROOM_EZYVET_CLIENT_SECRET     ezyVet's client secret
    WAITROOM_PROVET_API_TOKEN         a Provet Cloud API token, or
    WAITROOM_PROVET_CLIENT_SECRET     a Provet Cloud OAuth client's secret
    WAITROOM_PROVET_WEBHOOK_SECRET    the secret part of our webhook URL (16+ characters)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from server.connectors.core import Connector
from server.connectors.ezyvet import EzyVetConnector, EzyVetSettings
from server.connectors.http import AuthError
from server.connectors.loop import LoopSettings
from server.connectors.provet import ProvetConnector, ProvetSettings

SYSTEMS = ("ezyvet", "provet")
SECRET_WORDS = ("secret", "token", "password")


def pms_settings(clinic_settings: Mapping[str, Any], pms: str) -> dict[str, Any]:
    block = clinic_settings.get("pms")
    if not isinstance(block, dict):
        return {}
    mine = block.get(pms)
    return dict(mine) if isinstance(mine, dict) else {}


def configure(clinic_settings: dict[str, Any], pms: str, pairs: list[str]) -> dict[str, Any]:
    """Settings with `key=value` pairs applied (a value that reads as JSON is taken as JSON:
    lists, numbers, objects). ValueError for a malformed pair or a secret."""
    block = clinic_settings.setdefault("pms", {})
    if not isinstance(block, dict):
        block = clinic_settings["pms"] = {}
    mine = block.setdefault(pms, {})
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{pair!r}: expected key=value")
        if any(word in key.lower() for word in SECRET_WORDS):
            raise ValueError(f"{key}: secrets are not kept in the database; set it in the environment of "
                             "`waitroom sync` (see README, Practice-management systems)")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        if value is None or value == "":
            mine.pop(key, None)
        else:
            mine[key] = value
    return clinic_settings


def make_connector(pms: str, clinic_settings: Mapping[str, Any], env: Mapping[str, str]) -> Connector:
    """The connector for `pms` (ezyvet or provet); AuthError naming what is missing."""
    cfg = pms_settings(clinic_settings, pms)
    if pms == "ezyvet":
        secret = env.get("WAITROOM_EZYVET_CLIENT_SECRET", "")
        settings = EzyVetSettings.from_dict(cfg, secret)
        missing = [name for name, value in (("partner_id", settings.partner_id), ("client_id", settings.client_id),
                                            ("WAITROOM_EZYVET_CLIENT_SECRET", secret)) if not value]
        if missing:
            raise AuthError(f"ezyVet: not set up: {', '.join(missing)} missing")
        return EzyVetConnector(settings)
    if pms == "provet":
        token = env.get("WAITROOM_PROVET_API_TOKEN") or None
        secret = env.get("WAITROOM_PROVET_CLIENT_SECRET", "")
        settings_p = ProvetSettings.from_dict(cfg, secret=secret, api_token=token)
        if not settings_p.base_url:
            raise AuthError("Provet Cloud: not set up: provet_id (or base_url) missing")
        if not token and not (settings_p.client_id and secret):
            raise AuthError("Provet Cloud: not set up: WAITROOM_PROVET_API_TOKEN, or client_id and "
                            "WAITROOM_PROVET_CLIENT_SECRET, missing")
        return ProvetConnector(settings_p)
    raise AuthError(f"unknown practice-management system {pms!r} (expected one of {', '.join(SYSTEMS)})")


def loop_settings(clinic_settings: Mapping[str, Any], pms: str) -> LoopSettings:
    cfg = pms_settings(clinic_settings, pms)
    out = LoopSettings()
    days = cfg.get("days")
    if isinstance(days, int) and not isinstance(days, bool) and 0 <= days <= 14:
        out.days = days
    interval = cfg.get("interval_s")
    if isinstance(interval, int | float) and not isinstance(interval, bool) and 5 <= interval <= 3600:
        out.interval_s = float(interval)
    full = cfg.get("full_every_s")
    if isinstance(full, int | float) and not isinstance(full, bool) and 60 <= full <= 86400:
        out.full_every_s = float(full)
    return out
