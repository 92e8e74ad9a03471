"""Configuration from the environment or a `.env` file in the working directory."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

from orchestrator.errors import ConfigurationError

DEFAULT_ALLOWED_ORIGINS = (
    "https://fcm.googleapis.com",
    "https://updates.push.services.mozilla.com",
    "https://*.push.apple.com",
    "https://*.notify.windows.com",
)


@dataclass(frozen=True)
class Config:
    db: str = "sqlite:///campaign.db"
    graphs: Path = Path("campaign_graphs")
    vapid_private_key: str = "vapid_private.pem"
    vapid_subject: str | None = None
    push_allowed_origins: tuple[str, ...] = DEFAULT_ALLOWED_ORIGINS
    secret: str | None = None
    api_key: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    audit_log: Path | None = None
    # attributes a subscriber may correct on their own profile page
    profile_editable: tuple[str, ...] = ("first_name", "name", "city", "language")
    dashboard_password: str | None = None
    # processes that encrypt and send large batches (None: one per core beyond the tick's, ≤ 4)
    delivery_processes: int | None = None
    # the Prefect server the dashboard links to (its API, read for deployment and run ids,
    # and its UI); the UI's address defaults to the API's without its `/api`
    prefect_api_url: str | None = None
    prefect_ui_url: str | None = None
    # credentials for that API: a Prefect Cloud key, or a self-hosted server's "user:password"
    prefect_api_key: str | None = None
    prefect_api_auth_string: str | None = None
    # sends a minute for the whole installation, every campaign together (None: no limit)
    max_sends_per_minute: int | None = None
    extra: dict[str, str] = field(default_factory=dict)


def graphs_setting(
    env: dict[str, str] | None = None, *, dotenv: Path | None = Path(".env")
) -> Path | None:
    """CAMPAIGN_GRAPHS when it is set (environment or `.env`), else None: for commands whose
    campaigns default to something other than `./campaign_graphs` (the demo's examples)."""
    value = _settings(env, dotenv).get("CAMPAIGN_GRAPHS")
    return Path(value) if value else None


def _settings(env: dict[str, str] | None, dotenv: Path | None) -> dict[str, str]:
    """The environment over `.env`."""
    values: dict[str, str] = {}
    if dotenv is not None and dotenv.is_file():
        values.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
    values.update(os.environ if env is None else env)
    return values


def load_config(env: dict[str, str] | None = None, *, dotenv: Path | None = Path(".env")) -> Config:
    """Environment wins over `.env`; `.env` wins over the defaults."""
    values = _settings(env, dotenv)

    def get(name: str) -> str | None:
        value = values.get(name)
        return value if value not in (None, "") else None

    origins = get("CAMPAIGN_PUSH_ALLOWED_ORIGINS")
    audit = get("CAMPAIGN_AUDIT_LOG")
    return Config(
        db=get("CAMPAIGN_DB") or Config.db,
        graphs=Path(get("CAMPAIGN_GRAPHS") or Config.graphs),
        vapid_private_key=get("CAMPAIGN_VAPID_PRIVATE_KEY") or Config.vapid_private_key,
        vapid_subject=get("CAMPAIGN_VAPID_SUBJECT"),
        push_allowed_origins=(
            tuple(o.strip() for o in origins.split(",") if o.strip())
            if origins
            else DEFAULT_ALLOWED_ORIGINS
        ),
        secret=get("CAMPAIGN_SECRET"),
        api_key=get("CAMPAIGN_API_KEY"),
        public_url=(get("CAMPAIGN_PUBLIC_URL") or Config.public_url).rstrip("/"),
        audit_log=Path(audit) if audit else None,
        profile_editable=(
            tuple(a.strip() for a in editable.split(",") if a.strip())
            if (editable := get("CAMPAIGN_PROFILE_EDITABLE")) is not None
            else Config.profile_editable
        ),
        dashboard_password=get("CAMPAIGN_DASHBOARD_PASSWORD"),
        delivery_processes=_count(
            "CAMPAIGN_DELIVERY_PROCESSES", get("CAMPAIGN_DELIVERY_PROCESSES")
        ),
        prefect_api_url=_web_address("PREFECT_API_URL", get("PREFECT_API_URL")),
        prefect_ui_url=_web_address("PREFECT_UI_URL", get("PREFECT_UI_URL")),
        prefect_api_key=get("PREFECT_API_KEY"),
        prefect_api_auth_string=get("PREFECT_API_AUTH_STRING"),
        max_sends_per_minute=_rate(
            "CAMPAIGN_MAX_SENDS_PER_MINUTE", get("CAMPAIGN_MAX_SENDS_PER_MINUTE")
        ),
    )


def _web_address(name: str, value: str | None) -> str | None:
    """An http(s) address with a host, without its trailing slash; None when not set."""
    if value is None:
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigurationError(
            f"{name}={value!r}: expected an http:// or https:// address with a host "
            "and no query (e.g. http://127.0.0.1:4200/api)"
        )
    return value.strip().rstrip("/")


MAX_SENDS_PER_MINUTE = 1_000_000  # as a campaign's settings.rate_limit


def _rate(name: str, value: str | None) -> int | None:
    """Sends a minute: a whole number from 1 to MAX_SENDS_PER_MINUTE; None when not set."""
    if value is None:
        return None
    text = value.strip()
    number = int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else 0
    if not 1 <= number <= MAX_SENDS_PER_MINUTE:
        raise ConfigurationError(
            f"{name}={value!r}: expected sends a minute, a whole number from 1 to "
            f"{MAX_SENDS_PER_MINUTE:,} (leave it unset for no limit)"
        )
    return number


def _count(name: str, value: str | None) -> int | None:
    """A non-negative whole number from the environment; None when not set."""
    if value is None or value.strip().lower() == "auto":
        return None
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 0 <= number <= 64:
        raise ConfigurationError(f"{name}={value!r}: expected a whole number from 0 to 64, or auto")
    return number
