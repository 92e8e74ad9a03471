"""What the visitor use cases share: their errors, limits, the profile link and how a
subscriber's own choices (editable attributes, `topic:` tags) merge into what is stored."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from orchestrator.app import tokens
from orchestrator.app.service import Context
from orchestrator.language import loader
from orchestrator.language.records import RecordError
from orchestrator.language.spec import TagRule

SUBSCRIBE_FIELDS = {
    "id",
    "id_hash",
    "subscription",
    "timezone",
    "attributes",
    "tags",
    "endpoint",
    "keys",
    "expirationTime",
}
PAUSE_DAYS = 7
TOPIC_PREFIX = "topic:"
MAX_EDITABLE_CHARS = 200
ANONYMOUS_PREFIX = "v_"  # ids the service mints for browsers that subscribe anonymously


class Refused(RecordError):
    """The caller may not do this (answered 403): a site id without its proof, or a field
    only the site's backend may set."""


class Conflict(RecordError):
    """The endpoint is stored with other keys (answered 409): only the browser holding
    the subscription, or the site's backend, may change it."""


@dataclass(frozen=True)
class Subscribed:
    id: str
    created: bool
    profile_url: str


def profile_url(ctx: Context, subscriber_id: str, *, now: datetime, version: int = 0) -> str:
    expires = int((now + timedelta(days=tokens.PROFILE_DAYS)).timestamp())
    token = tokens.sign_profile(ctx.secret(), subscriber_id, expires=expires, version=version)
    return f"{ctx.config.public_url}/me/{token}"


def own_attributes(stored: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """What a subscriber sets themselves (their browser, their profile page) merged into
    the stored attributes: a text is kept trimmed, an empty one removes the attribute."""
    merged = dict(stored)
    for key, value in given.items():
        if str(value).strip():
            merged[key] = str(value).strip()
        else:
            merged.pop(key, None)
    return merged


def own_topics(stored: Iterable[str], picked: Iterable[str]) -> tuple[str, ...]:
    """The picked `topic:` tags in place of the stored topics; other tags kept."""
    kept = [t for t in stored if not t.startswith(TOPIC_PREFIX)]
    return (*kept, *dict.fromkeys(picked))


def topics(ctx: Context) -> list[str]:
    """Topics a subscriber can pick: the `topic:` tags the campaigns' segment rules look at."""
    found: set[str] = set()
    for path in loader.campaign_files([ctx.config.graphs]):
        try:
            loaded = loader.load_unchanged(path)
        except Exception:  # an unreadable file has no topics; `campaign validate` says why
            continue
        if loaded.campaign is None:
            continue
        for segment in loaded.campaign.segments.values():
            found.update(_tags(segment.match))
    return sorted(t.removeprefix(TOPIC_PREFIX) for t in found if t.startswith(TOPIC_PREFIX))


def _tags(rule: Any) -> set[str]:
    if isinstance(rule, TagRule):
        return {rule.tag}
    out: set[str] = set()
    for name in ("all", "any"):
        for child in getattr(rule, name, None) or []:
            out |= _tags(child)
    inner = getattr(rule, "not_", None) or getattr(rule, "negate", None)
    if inner is not None:
        out |= _tags(inner)
    return out
