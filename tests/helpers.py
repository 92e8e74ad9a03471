"""Constants and small helpers the test folders share (fixtures live in the conftest files)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from sqlmodel import col

from orchestrator.app.service import Context
from orchestrator.delivery import SendOutcome, SendRequest
from orchestrator.store.models import Event, Subscriber
from orchestrator.testing.receiver import b64url_decode
from tests.conftest import ROOT, p256dh_key

CORPUS = ROOT / "tests" / "corpus"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

# A segment sub-campaign with a follow-up and a triggered one: the tick tests' campaign.
TICK_CAMPAIGN = """
campaign: launch
title: Launch
goal: signup
settings: {spacing: 1h, window: 1d, followup_cap: 1}
segments:
  pros: {match: {attr: plan, eq: pro}}
subcampaigns:
  pros:
    segment: pros
    start: hello
    nodes:
      hello:
        notification: {title: "Hi {{ subscriber.attributes.name }}", body: "Try it", url: "https://example.com/a"}
        on_convert: thanks
        on_no_convert: {to: again, delay: 1h}
      again: {notification: {title: Again, url: "https://example.com/b"}}
      thanks: {notification: {title: Thanks}}
  carts:
    trigger: {event: cart_abandoned, delay: 1h}
    start: nudge
    nodes:
      nudge: {notification: {title: "Still want {{ trigger.properties.product }}?"}}
"""

# The web tests' campaign: templates that read attributes, an action, two segments.
WEB_CAMPAIGN = """
campaign: launch
title: Launch
goal: click
settings: {spacing: 1h, window: 1d, followup_cap: 1}
segments:
  pros: {match: {attr: plan, eq: pro}}
  stargazers: {match: {tag: "topic:space"}}
subcampaigns:
  pros:
    segment: pros
    start: hello
    nodes:
      hello:
        notification:
          title: "Hi {{ subscriber.attributes.first_name }}"
          url: "https://example.com/pro?who={{ subscriber.id }}"
          actions:
            - {action: docs, title: Read the docs, url: "https://example.com/docs"}
        on_convert: thanks
        on_no_convert: {to: again, delay: 1h}
      again: {notification: {title: Again, url: "https://example.com/b"}}
      thanks: {notification: {title: Thanks}}
"""

API_KEY = "k" * 40
PASSWORD = "correct horse battery staple"
ORIGIN = "https://fcm.googleapis.com"
AUTH = base64.urlsafe_b64encode(b"0123456789abcdef").decode().rstrip("=")


def subscription(name: str = "a", p256dh: str | None = None) -> dict[str, object]:
    """A browser's PushSubscription JSON for a subscription at ORIGIN."""
    return {
        "endpoint": f"{ORIGIN}/fcm/send/{name}",
        "expirationTime": None,
        "keys": {"p256dh": p256dh or p256dh_key(), "auth": AUTH},
    }


def row_count(ctx: Context, model: type) -> int:
    with ctx.session() as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


# RFC 8291's worked example (section 5)
PLAINTEXT = b"When I grow up, I want to be a watermelon"
RFC8291: dict[str, str] = {  # RFC 8291 §5, base64url as published
    "ua_private": "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94",
    "ua_public": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
    "as_private": "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw",
    "auth_secret": "BTBZMqHH6r4Tts7J_aSIgg",
    "salt": "DGv6ra1nlYgDCS1FRnbzlw",
    "body": "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml"
    "mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT"
    "pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
}


def private_key(raw: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from its base64url scalar."""
    return ec.derive_private_key(int.from_bytes(b64url_decode(raw), "big"), ec.SECP256R1())


@dataclass
class ScriptedDelivery:
    """Answers each send by a rule; keeps every request it was given."""

    answer: Callable[[SendRequest], SendOutcome]
    requests: list[SendRequest] = field(default_factory=list)

    def deliver(self, requests: Sequence[SendRequest]) -> list[SendOutcome]:
        self.requests.extend(requests)
        return [self.answer(r) for r in requests]


def opt_events(ctx: Context) -> list[tuple[str, str, str | None]]:
    """(subscriber, event name, source) of every opt-in and opt-out, in the order stored."""
    with ctx.session() as s:
        rows = s.execute(
            select(col(Event.subscriber_id), col(Event.name), col(Event.properties))
            .where(col(Event.name).in_(("subscribed", "imported", "unsubscribed")))
            .order_by(col(Event.id))
        ).all()
    return [(sid, name, props.get("source")) for sid, name, props in rows]


def subscriber_status(ctx: Context, sid: str) -> str:
    with ctx.session() as s:
        row = s.get(Subscriber, sid)
        assert row is not None
        return row.status
