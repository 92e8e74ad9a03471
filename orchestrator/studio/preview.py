"""The notification preview: a node's notification as a person would see it, rendered by
the real template engine for a sample subscriber, with its payload size against the Web
Push limit and any template error.

Sample subscribers come from the campaign's synthetic population (the people `campaign
simulate` walks: segment members, trigger events with their properties), so a preview
needs no database; a subscriber of the configured database can be given instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import PayloadTooLargeError, TemplateRenderError
from orchestrator.language import payload, urls
from orchestrator.language.spec import Campaign
from orchestrator.sim.population import synthesize
from orchestrator.studio.checking import notification_node, valid_campaign
from orchestrator.studio.overlay import START
from orchestrator.studio.workspace import StudioError, Workspace

SAMPLES = 12
CLICK_URL = "https://your-service.example/c/preview-token"  # the signed link a send carries


@dataclass
class Sample:
    """A subscriber to preview with: who they are and the event that started the journey."""

    id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    timezone: str = "UTC"
    trigger: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "attributes": self.attributes,
            "tags": self.tags,
            "timezone": self.timezone,
            "trigger": self.trigger,
        }


def samples(campaign: Campaign, subcampaign: str, *, count: int = SAMPLES) -> list[Sample]:
    """Up to `count` people of the campaign's synthetic population for a node of
    `subcampaign`: for a triggered sub-campaign, people with its trigger event (which
    the templates read as `trigger`)."""
    event = campaign.subcampaigns[subcampaign].trigger
    out = []
    for line in synthesize(campaign, count=count * 8, seed=0, start=START):
        trigger = None
        if event is not None:
            found = next((e for e in line.get("events", []) if e.get("name") == event.event), None)
            if found is None:
                continue
            trigger = {
                "event": found["name"],
                "properties": found.get("properties", {}),
                "at": found["at"],
            }
        out.append(
            Sample(
                id=str(line["id"]),
                attributes=dict(line.get("attributes", {})),
                tags=list(line.get("tags", [])),
                timezone=str(line.get("timezone", "UTC")),
                trigger=trigger,
            )
        )
        if len(out) >= count:
            break
    return out


def preview(
    workspace: Workspace,
    name: str,
    text: str,
    *,
    node_id: str,
    sample: int = 0,
    person: Sample | None = None,
) -> dict[str, Any]:
    """The node's notification for sample subscriber number `sample` (or for `person`, a
    subscriber of the database): the rendered fields, the actions, the payload size and
    limit, and the problem that would skip the send."""
    campaign = valid_campaign(workspace, name, text, to="preview it")
    node = notification_node(campaign, node_id)
    people = samples(campaign, campaign.subcampaign_of(node_id))
    if person is None:
        if not 0 <= sample < len(people):
            raise StudioError(f"sample: from 0 to {max(len(people) - 1, 0)}")
        person = people[sample]
    context = payload.send_context(
        campaign,
        node_id,
        subscriber_id=person.id,
        attributes=person.attributes,
        tags=person.tags,
        timezone=person.timezone,
        trigger=person.trigger,
    )
    answer: dict[str, Any] = {
        "node": node_id,
        "sample": person.as_dict(),
        "samples": [p.id for p in people],
        "limit": payload.MAX_PLAINTEXT_BYTES,
        "fields": {},
        "actions": [
            {"action": a.action, "title": a.title, "url": a.url, "icon": a.icon}
            for a in node.notification.actions
        ],
        "size": None,
        "problem": None,
    }
    try:
        rendered = payload.render_fields(node, context)
        answer["fields"] = rendered
        if rendered.get("url", "").strip():
            answer["fields"]["url"] = urls.click_target(rendered["url"])
        raw = payload.encode(node, rendered, click_url=CLICK_URL, send_id="0")
        answer["size"] = len(raw)
        payload.build(node, rendered, click_url=CLICK_URL, send_id="0")
    except TemplateRenderError as exc:
        answer["problem"] = {"reason": "template_error", "detail": str(exc)}
    except PayloadTooLargeError as exc:
        answer["problem"] = {"reason": "payload_too_large", "detail": str(exc)}
    except urls.UrlError as exc:
        answer["problem"] = {"reason": "bad_url", "detail": str(exc)}
    return answer
