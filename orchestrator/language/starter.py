"""A first campaign to start from (`campaign init`, the studio's new file): a welcome
series every new subscriber gets, valid as written."""

from __future__ import annotations

from orchestrator.language.scalars import ID_RE

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


def starter(campaign_id: str) -> str:
    """The starter campaign with its id (and title) set to `campaign_id` where that is a
    valid id; the welcome series as written otherwise."""
    if not ID_RE.fullmatch(campaign_id) or campaign_id == "end":
        return WELCOME
    return WELCOME.replace("campaign: welcome\n", f"campaign: {campaign_id}\n", 1)
