"""What `campaign init` writes: a first campaign and the settings to run it."""

from __future__ import annotations

import secrets

WELCOME = """\
# A first campaign: every new subscriber gets a welcome ten minutes after subscribing;
# who does not click gets one reminder a day later; who clicks gets a next step.
# The language is described in campaign-flow's docs/language.md. Try it:
#   campaign validate campaign_graphs/                        every problem at once
#   campaign simulate campaign_graphs/welcome.yaml            what would happen, nothing sent
#   campaign render campaign_graphs/welcome.yaml --format html -o welcome.html
campaign: welcome
title: Welcome series
goal: click
settings:
  spacing: 12h
  followup_cap: 1
  window: 24h
  quiet_hours: {start: "21:00", end: "08:00"}
  frequency_cap: {max: 3, per: 7d}

subcampaigns:
  welcome:
    trigger: {event: subscribed, delay: 10m}
    start: hello
    nodes:
      hello:
        notification:
          title: "Welcome, {{ subscriber.attributes.first_name | default('and thanks') }}!"
          body: Here is where to start.
          url: "https://example.com/start?utm_source=push&utm_campaign={{ campaign.id }}"
        on_convert: next_step
        on_no_convert: {to: reminder, delay: 1d}
      reminder:
        notification:
          title: Still curious?
          body: Three things people like first.
          url: "https://example.com/tour?utm_source=push&utm_campaign={{ campaign.id }}"
        on_convert: next_step
        on_no_convert: end
      next_step:
        notification:
          title: One more thing
          body: Set up your profile in a minute.
          url: "https://example.com/profile?utm_source=push&utm_campaign={{ campaign.id }}"
"""


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
