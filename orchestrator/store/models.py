"""Tables (SQLModel). Journey state lives here, not in running processes.

Finding due work is one index range scan on `ix_journey_claim` (campaign, claim_at).
`due_at` is the engine's own schedule; `claim_at` is when a tick should look at
the journey: normally the same instant, earlier when an event of the subscriber
arrives (a conversion is acted on at once). An ended journey has
`claim_at = NULL` and drops out of that index's range.
The sends ledger is unique per (journey, step): a step is claimed before any
byte leaves the process, so a retried batch can never send a step twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, SmallInteger, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

JsonType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Subscriber(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=128)
    timezone: str = Field(default="UTC", max_length=64)
    attributes: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JsonType, nullable=False)
    )
    tags: list[str] = Field(default_factory=list, sa_column=Column(JsonType, nullable=False))
    # active | unsubscribed | unreachable (the push services reported every subscription
    # gone) | deleted | merged (an anonymous id linked to a site's own id)
    status: str = Field(default="active", max_length=16)
    paused_until: datetime | None = None
    # profile links carry the version they were made for: raising it revokes every earlier one
    token_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)


class PushSubscription(SQLModel, table=True):
    __tablename__ = "push_subscription"

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: str = Field(foreign_key="subscriber.id", index=True, max_length=128)
    endpoint: str = Field(unique=True, max_length=2048)
    p256dh: str = Field(max_length=256)
    auth: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class Event(SQLModel, table=True):
    __table_args__ = (
        Index("ix_event_subscriber_at", "subscriber_id", "at"),
        Index("ix_event_name_id", "name", "id"),
        # a sender's idempotency key: a repeated event is stored once (NULLs never clash)
        Index("uq_event_client_id", "subscriber_id", "client_id", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: str = Field(max_length=128)
    name: str = Field(max_length=64)
    at: datetime
    properties: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JsonType, nullable=False)
    )
    send_id: int | None = None  # a click names the exact send it came from
    client_id: str | None = Field(default=None, max_length=128)
    recorded_at: datetime = Field(default_factory=utcnow)


class CampaignVersion(SQLModel, table=True):
    __tablename__ = "campaign_version"
    __table_args__ = (UniqueConstraint("campaign", "content_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign: str = Field(index=True, max_length=63)
    content_hash: str = Field(max_length=64)
    source: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JsonType, nullable=False)
    )  # {"main": name, "files": {path: text}}
    created_at: datetime = Field(default_factory=utcnow)


class Journey(SQLModel, table=True):
    __table_args__ = (
        Index("ix_journey_claim", "campaign", "claim_at"),
        Index("ix_journey_subscriber", "subscriber_id", "campaign"),
        # At most one journey in flight per subscriber and campaign, even with two ticks at once.
        Index(
            "uq_journey_active",
            "campaign",
            "subscriber_id",
            unique=True,
            sqlite_where=text("phase != 'ended'"),
            postgresql_where=text("phase != 'ended'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign: str = Field(max_length=63)
    version_id: int = Field(foreign_key="campaign_version.id")
    subcampaign: str = Field(max_length=64)
    subscriber_id: str = Field(max_length=128)
    node: str = Field(max_length=64)
    phase: str = Field(default="arrive", max_length=16)  # arrive | timed | wait | await | ended
    due_at: datetime | None = None
    claim_at: datetime | None = None
    entered_at: datetime
    ended_at: datetime | None = None
    exit_reason: str | None = Field(default=None, max_length=32)
    followups: int = 0
    pending_followup: bool = False
    sends: int = 0
    step: int = 0
    last_send_at: datetime | None = None
    last_send_id: int | None = None
    arm: str | None = Field(default=None, max_length=64)
    holdout: bool = False
    via: str | None = Field(default=None, max_length=16)  # edge kind that brought it to `node`
    seen_until: datetime | None = None
    trigger_event_id: int | None = None
    trigger: dict[str, Any] | None = Field(default=None, sa_column=Column(JsonType, nullable=True))


class Send(SQLModel, table=True):
    """The sends ledger: one row per (journey, step), claimed before delivery."""

    __table_args__ = (
        UniqueConstraint("journey_id", "step"),
        Index("ix_send_subscriber_claimed", "subscriber_id", "claimed_at"),
        Index("ix_send_campaign_node", "campaign", "node"),
        Index("ix_send_retry", "campaign", "retry_at"),
        # a rate limit's sliding window: a campaign's sends claimed after a moment
        Index("ix_send_campaign_claimed", "campaign", "claimed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    journey_id: int = Field(foreign_key="journey.id")
    step: int
    campaign: str = Field(max_length=63)
    node: str = Field(max_length=64)
    subscriber_id: str = Field(max_length=128)
    claimed_at: datetime
    outcome: str = Field(
        default="claimed", max_length=16
    )  # claimed | delivered | failed | gone | skipped
    status_code: int | None = None
    detail: str | None = Field(default=None, max_length=1024)
    finished_at: datetime | None = None
    payload: str | None = None  # the notification JSON, so a retry sends exactly the same message
    target_url: str | None = Field(default=None, max_length=2048)  # where its click link leads
    converted_at: datetime | None = None  # the conversion credited to this send
    attempts: int = 0
    retry_at: datetime | None = None  # when an unfinished send (crash, 5xx, 429) goes out again
    timing: str | None = Field(default=None, max_length=16)  # send_time arm: best|explore|immediate
    local_slot: int | None = Field(default=None, sa_type=SmallInteger)  # hour of the local week


class NodeStat(SQLModel, table=True):
    """Running per-node counters of a campaign: entered, sent, converted, no_convert, exit:REASON, …"""

    __tablename__ = "node_stat"

    campaign: str = Field(primary_key=True, max_length=63)
    node: str = Field(primary_key=True, max_length=64)
    metric: str = Field(primary_key=True, max_length=48)
    count: int = 0


class EnrolMark(SQLModel, table=True):
    """How far segment enrolment of a sub-campaign has looked: a tick re-evaluates only
    subscribers changed (or with new events) since, plus a full pass now and then for
    rules that change with time alone (`event … within`)."""

    __tablename__ = "enrol_mark"

    campaign: str = Field(primary_key=True, max_length=63)
    subcampaign: str = Field(primary_key=True, max_length=64)
    full_at: datetime | None = None  # the tick time (`now`) of the last full pass
    subscribers_at: datetime | None = None  # newest subscriber.updated_at seen
    event_id: int = 0  # newest event id seen


class Cursor(SQLModel, table=True):
    """How far a campaign's trigger enrolment has read the events table."""

    campaign: str = Field(primary_key=True, max_length=63)
    subcampaign: str = Field(primary_key=True, max_length=64)
    last_event_id: int = 0


class TriggerMark(SQLModel, table=True):
    """Trigger events beyond a sub-campaign's cursor that the cursor cannot simply pass.

    `handled`: read and decided (enrolled or refused) while the cursor stays behind them,
    because an event stored just before them may still be committing; a later read skips
    them. Not `handled`: dated later than the tick that passed them (`at`), enrolled by
    the first tick at or after `at`. Rows go once the cursor passes or the event is due."""

    __tablename__ = "trigger_mark"
    __table_args__ = (Index("ix_trigger_mark_due", "campaign", "subcampaign", "handled", "at"),)

    campaign: str = Field(primary_key=True, max_length=63)
    subcampaign: str = Field(primary_key=True, max_length=64)
    event_id: int = Field(primary_key=True)
    at: datetime
    handled: bool = False


class CampaignAction(SQLModel, table=True):
    """What an author did to a campaign as a whole: `pause`, `resume` or `stop`; who, when
    and why. The latest of those is the campaign's state (none: running). Other kinds leave
    the state as it is: a broadcast's records (`broadcast`, `missed`: their details as JSON
    in `reason`) and a split's winner promoted (`promote`: the split, the arm and the
    experiment's figures at that moment in `details`)."""

    __tablename__ = "campaign_action"
    __table_args__ = (Index("ix_campaign_action_latest", "campaign", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign: str = Field(max_length=63)
    action: str = Field(max_length=16)
    at: datetime
    by: str = Field(max_length=128)
    reason: str = Field(default="", max_length=1000)
    details: dict[str, Any] | None = Field(default=None, sa_column=Column(JsonType, nullable=True))


class SplitEntry(SQLModel, table=True):
    """A journey's entry into an arm of a split node: an experiment's unit. A goal event
    of the subscriber between `entered_at` and `horizon_end` converts it."""

    __tablename__ = "split_entry"
    __table_args__ = (Index("ix_split_entry_split", "campaign", "split", "arm"),)

    id: int | None = Field(default=None, primary_key=True)
    journey_id: int
    campaign: str = Field(max_length=63)
    split: str = Field(max_length=64)
    arm: str = Field(max_length=64)
    subscriber_id: str = Field(max_length=128)
    entered_at: datetime
    horizon_end: datetime


class Setting(SQLModel, table=True):
    """Generated secrets and other per-database values (e.g. the HMAC key)."""

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=4096)
