"""What `campaign init` writes beside the first campaign (`language.starter`): the
settings to run it."""

from __future__ import annotations

import secrets


def env_file(*, graphs: str, key: str) -> str:
    """A `.env` for a new project: SQLite, the campaigns folder, a VAPID key, fresh secrets."""
    return f"""\
# campaign-flow settings (docs/interfaces.md lists them all); the environment wins over this file.
CAMPAIGN_DB=sqlite:///campaign.db
CAMPAIGN_GRAPHS={graphs}
CAMPAIGN_VAPID_PRIVATE_KEY={key}
# Push services want a contact: set your own before the first send.
CAMPAIGN_VAPID_SUBJECT=mailto:you@example.com
CAMPAIGN_PUBLIC_URL=http://127.0.0.1:8000
CAMPAIGN_DASHBOARD_PASSWORD={secrets.token_urlsafe(18)}
CAMPAIGN_API_KEY={secrets.token_urlsafe(32)}
"""
