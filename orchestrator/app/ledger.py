"""A batch's send ledger: one row per send the engine asked for, written before anything
leaves the process, then each send rendered into its Web Push payload. A send that cannot
be rendered or built is skipped (`template_error`, `bad_url`, `payload_too_large`) and
its journey takes the no-convert edge at once."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator import engine
from orchestrator.app import journeys, outcomes, tokens
from orchestrator.app.service import Context
from orchestrator.delivery import Outcome, SendRequest, Target, describe
from orchestrator.engine import Action, JourneyState
from orchestrator.engine.sendtime import slot_of
from orchestrator.errors import PayloadTooLargeError, TemplateRenderError
from orchestrator.language import payload, urls
from orchestrator.language.spec import Campaign, NotificationNode
from orchestrator.store import repo
from orchestrator.store.db import Row, Session
from orchestrator.store.models import Send

log = logging.getLogger("campaign.tick")


@dataclass
class PendingSend:
    """A send the engine asked for in this batch, waiting for its ledger row."""

    row: Row[Any]
    campaign: Campaign
    node_id: str
    node: NotificationNode
    step: int
    before: JourneyState  # just before the send (what a skip goes on from)
    actions: list[Action]  # the advance's actions, as traced (a skip replaces its send)
    timing: str | None = None  # the send-time arm of a `send_time: best` node's send
    send_id: int = 0
    payload: bytes = b""


def claim_sends(
    ctx: Context,
    s: Session,
    pending: list[PendingSend],
    *,
    subs: dict[str, Row[Any]],
    now: datetime,
    counts: Counter[tuple[str, str]],
    trace: list[tuple[Row[Any], list[Action]]],
    updates: dict[int, dict[str, Any]],
) -> list[SendRequest]:
    """Write the ledger rows, then render; a send that cannot be rendered or built is skipped
    (template_error — also for any unexpected exception —, bad_url, payload_too_large).

    Journey changes go into `updates` (written by the caller in one statement)."""
    if not pending:
        return []
    rows = [
        {
            "journey_id": p.row.id,
            "step": p.step,
            "campaign": p.row.campaign,
            "node": p.node_id,
            "subscriber_id": p.row.subscriber_id,
            "claimed_at": now,
            "outcome": Outcome.CLAIMED,
            "attempts": 1,
            "retry_at": now + outcomes.CLAIM_GRACE,  # sent again by a later tick if we die here
            "timing": p.timing,
            "local_slot": slot_of(now, _timezone(subs.get(p.row.subscriber_id))),
        }
        for p in pending
    ]
    ids = repo.insert_returning(s, Send, rows, ("id", "journey_id", "step"))
    by_key = {(j, st): i for i, j, st in ids}
    targets = repo.subscriptions_of(s, (p.row.subscriber_id for p in pending))
    # attributes and tags (JSON to decode) only for sends whose templates read `subscriber`
    profiles = repo.profiles(
        s, (p.row.subscriber_id for p in pending if "subscriber" in payload.names_used(p.node))
    )
    secret = ctx.secret()
    requests: list[SendRequest] = []
    skipped: list[dict[str, Any]] = []
    stored: list[dict[str, Any]] = []
    for p in pending:
        p.send_id = by_key[(p.row.id, p.step)]
        sub = subs.get(p.row.subscriber_id)
        problem: tuple[str, str] | None = None
        try:
            context = _template_context(p, profiles.get(p.row.subscriber_id), sub)
            click = f"{ctx.config.public_url}/c/{tokens.sign(secret, 'click', p.send_id)}"
            rendered = payload.render_fields(p.node, context)
            destination = _destination(rendered.get("url"))
            _check_images(rendered)
            p.payload = payload.build(
                p.node,
                rendered,
                click_url=click,
                send_id=str(p.send_id),
                timestamp_ms=int(now.timestamp() * 1000),
            )
        except TemplateRenderError as exc:
            problem = ("template_error", str(exc))
        except PayloadTooLargeError as exc:
            problem = ("payload_too_large", str(exc))
        except urls.UrlError as exc:
            problem = ("bad_url", str(exc))
        except Exception as exc:  # this send only: skipped like a template that fails
            log.error("send %s could not be built: %s", p.send_id, describe(exc), exc_info=exc)
            problem = ("template_error", describe(exc))
        if problem is not None:
            reason, detail = problem
            skipped.append(
                {
                    "id": p.send_id,
                    "outcome": Outcome.SKIPPED,
                    "detail": f"{reason}: {detail}"[:1024],
                    "finished_at": now,
                    "retry_at": None,
                }
            )
            try:
                updates[p.row.id] = _skip(p, reason=reason, now=now, counts=counts, sub=sub)
            except Exception as exc:
                end = journeys.end_with_error(p.row, exc, now=now, counts=counts, trace=trace)
                updates[p.row.id] = {k: v for k, v in end.items() if k != "id"}
            continue
        updates[p.row.id]["last_send_id"] = p.send_id
        stored.append({"id": p.send_id, "payload": p.payload.decode(), "target_url": destination})
        settings = p.campaign.settings
        requests.append(
            SendRequest(
                send_id=p.send_id,
                journey_id=p.row.id or 0,
                step=p.step,
                campaign=p.row.campaign,
                node=p.node_id,
                subscriber_id=p.row.subscriber_id,
                payload=p.payload,
                targets=tuple(
                    Target(t.endpoint, t.p256dh, t.auth)
                    for t in targets.get(p.row.subscriber_id, [])
                ),
                ttl=p.node.ttl if p.node.ttl is not None else settings.ttl,
                urgency=p.node.urgency or settings.urgency,
                topic=journeys.topic_for(p.row.id or 0, p.step),
            )
        )
    repo.update_by_id(s, Send, [*skipped, *stored])
    return requests


def _timezone(sub: Row[Any] | None) -> str:
    return (sub.timezone if sub is not None else None) or "UTC"


def _destination(url: str | None) -> str | None:
    """Where the send's click link leads: its rendered `url` as an absolute http(s) URL in
    normal form (`urls.click_target`, UrlError otherwise); None without one (a url that
    renders empty included)."""
    if url is None or not url.strip():
        return None
    return urls.click_target(url)


def _check_images(rendered: dict[str, str]) -> None:
    """The rendered icon, image and badge are what the browser fetches: absolute http(s)
    URLs in normal form (replaced by it), or UrlError (the send is skipped, `bad_url`)."""
    for name in ("icon", "image", "badge"):
        value = rendered.get(name)
        if value is not None and value.strip():
            try:
                rendered[name] = urls.click_target(value)
            except urls.UrlError as exc:
                raise urls.UrlError(f"{name}: {exc}") from None


def _template_context(
    p: PendingSend, profile: Row[Any] | None, sub: Row[Any] | None
) -> dict[str, Any]:
    return payload.send_context(
        p.campaign,
        p.node_id,
        subscriber_id=p.row.subscriber_id,
        attributes=dict(profile.attributes) if profile else {},
        tags=list(profile.tags) if profile else [],
        timezone=sub.timezone if sub else "UTC",
        trigger=p.row.trigger,
    )


def _skip(
    p: PendingSend,
    *,
    reason: str,
    now: datetime,
    counts: Counter[tuple[str, str]],
    sub: Row[Any] | None,
) -> dict[str, Any]:
    """The send never left: in the journey's trace and counts a `skip` takes the place of
    its `send`, and the journey takes its no-convert edge at once from the state before the
    send (`engine.skip_send`); the next batch of this tick goes on from there."""
    view = journeys.subscriber_view(sub, p.row.subscriber_id, None)
    result = engine.skip_send(
        p.before, campaign=p.campaign, subscriber=view, reason=reason, now=now
    )
    sent = next(i for i, a in enumerate(p.actions) if a.type == "send" and a.step == p.step)
    del p.actions[sent:]  # what followed the send in its advance assumed it was made
    counts[(p.node_id, "sent")] -= 1
    journeys.count(list(result.actions), counts)
    p.actions.extend(result.actions)
    return journeys.changes(result.state)
