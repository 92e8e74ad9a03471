"""What a website and its visitors do: subscribe, unsubscribe, click, and look after their
profile.

- `subscriptions`: subscribing (browser or backend, with the group commit the web
  service uses) and unsubscribing with the proof that the caller holds the subscription;
- `clicks`: a click on a signed link, recorded once, leading where the campaign says;
- `profile`: the subscriber's own page (their export, edits, pause, deletion);
- `common`: the errors, limits, profile link and merge rules they share.

The HTTP layer (`orchestrator.web`) is a thin edge over these functions; they validate
with `orchestrator.language.records`, so a record is judged the same way whichever door
it came through. Every change is one transaction.
"""

from orchestrator.app.visitors.clicks import click
from orchestrator.app.visitors.common import (
    ANONYMOUS_PREFIX,
    MAX_EDITABLE_CHARS,
    PAUSE_DAYS,
    TOPIC_PREFIX,
    Conflict,
    Refused,
    Subscribed,
    own_attributes,
    own_topics,
    profile_url,
    topics,
)
from orchestrator.app.visitors.profile import (
    export,
    forget,
    pause,
    resume,
    revoke_links,
    subscriber_of,
    update_profile,
)
from orchestrator.app.visitors.subscriptions import (
    SubscribeRequest,
    parse_subscribe,
    subscribe,
    subscribe_many,
    unsubscribe,
)

__all__ = [
    "ANONYMOUS_PREFIX",
    "MAX_EDITABLE_CHARS",
    "PAUSE_DAYS",
    "TOPIC_PREFIX",
    "Conflict",
    "Refused",
    "SubscribeRequest",
    "Subscribed",
    "click",
    "export",
    "forget",
    "own_attributes",
    "own_topics",
    "parse_subscribe",
    "pause",
    "profile_url",
    "resume",
    "revoke_links",
    "subscribe",
    "subscribe_many",
    "subscriber_of",
    "topics",
    "unsubscribe",
    "update_profile",
]
