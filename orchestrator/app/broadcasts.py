"""Broadcasts (`settings.schedule: once MOMENT`): each member's moment, the claim a tick
enrols under (a `control.BROADCAST` record, so a campaign broadcasts once), the `missed`
record of a tick too late for everyone, and the status `campaign status` and the
dashboard show. The enrolment itself is `enrolment.enrol_broadcast`; the rules are in
docs/engine.md, "Broadcasts".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestrator.app import control
from orchestrator.app.control import BroadcastRecord
from orchestrator.app.service import Context
from orchestrator.language.spec import Campaign, broadcast_window as broadcast_window
from orchestrator.store import repo

BROADCAST_LATE = timedelta(hours=24)  # a member whose moment is longer ago is not sent it
BROADCAST_RESUME_AFTER = timedelta(minutes=15)  # a claim not finished by then is taken over

log = logging.getLogger("campaign.tick")


def broadcast_instant(moment: datetime, tz_name: str) -> datetime:
    """A member's moment: an instant as it is; a wall-clock moment in `tz_name`, read as the
    engine reads wall-clock times (`engine.timing`, fold 0): a time a daylight-saving change
    skips is read past the gap (02:30 on a 02:00→03:00 night is 03:30), a time it repeats is
    its first occurrence."""
    if moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=ZoneInfo(tz_name)).astimezone(UTC)


@lru_cache(maxsize=1024)
def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def zone_of(stored: str | None, campaign: Campaign) -> str:
    """The subscriber's timezone, else the campaign's (as the engine chooses)."""
    return stored if stored and _known_zone(stored) else campaign.settings.timezone


def written_moment(campaign: Campaign) -> str:
    """The broadcast's moment as the file writes it (after `once`)."""
    return campaign.settings.schedule.partition(" ")[2].strip()


def _moment(record: BroadcastRecord, fallback: datetime) -> datetime:
    return record.value if record.value is not None else fallback


def claim(
    ctx: Context, campaign: Campaign, moment: datetime, *, now: datetime
) -> BroadcastRecord | None:
    """The claim this tick enrols under, or None: sent already, being sent by another
    tick, or too late for every member (recorded once per moment as `missed`, with a
    warning; a new moment in the file is a new chance).

    The claim is written under a lock on `campaign_action`, so two ticks at once enrol
    once. A claim not finished BROADCAST_RESUME_AFTER after it was taken (its tick died)
    is taken over, with its own moment."""
    name = campaign.campaign
    with ctx.session() as s:  # the common case, without the lock: sent, or missed, already
        records = control.broadcast_records(s, name)
    if any(r.done for r in records) or any(
        r.kind == control.MISSED and r.value == moment for r in records
    ):
        return None
    with ctx.session() as s, s.begin():
        repo.lock_actions(s)
        records = control.broadcast_records(s, name)
        taken = next((r for r in records if r.kind == control.BROADCAST), None)
        if taken is not None:
            _, last = broadcast_window(_moment(taken, moment))
            if taken.done or now - taken.at < BROADCAST_RESUME_AFTER or now - last > BROADCAST_LATE:
                return None
            log.warning(
                "%s: the broadcast a tick began at %s UTC did not finish; this tick enrols the rest",
                name,
                f"{taken.at:%Y-%m-%d %H:%M}",
            )
            taken = replace(taken, at=now, value=_moment(taken, moment))
            control.update_broadcast(s, taken)
            return taken
        written = written_moment(campaign)
        _, last = broadcast_window(moment)
        if now - last <= BROADCAST_LATE:
            return control.write_broadcast(
                s, name, BroadcastRecord(0, control.BROADCAST, now, written, moment)
            )
        if not any(r.kind == control.MISSED and r.value == moment for r in records):
            control.write_broadcast(
                s, name, BroadcastRecord(0, control.MISSED, now, written, moment)
            )
            log.warning(
                "%s: broadcast once %s missed: this tick (%s UTC) is more than %d h after every "
                "member's moment; nothing sent (a new moment in the file sends it then)",
                name,
                written,
                f"{now:%Y-%m-%d %H:%M}",
                BROADCAST_LATE // timedelta(hours=1),
            )
        return None


def finish(ctx: Context, campaign: str, record: BroadcastRecord, *, late: int) -> BroadcastRecord:
    """Write the counts of a claimed broadcast whose journeys are in: its journeys (those
    of the campaign entered from its first moment on) and of them held out, and the
    members left out as too late."""
    assert record.value is not None
    first, _ = broadcast_window(record.value)
    with ctx.session() as s, s.begin():
        journeys, held = repo.entered_since(s, campaign=campaign, since=first)
        record = replace(record, enrolled=journeys, holdout=held, late=late)
        control.update_broadcast(s, record)
    return record


def release(ctx: Context, campaign: str, record: BroadcastRecord) -> None:
    """Drop the claim of a broadcast whose journeys could not all be stored: the next tick
    begins again (those already in are not enrolled twice)."""
    try:
        with ctx.session() as s, s.begin():
            repo.delete_action(s, record.id)
    except Exception as exc:
        log.error(
            "%s: the broadcast's claim could not be dropped (%s); a tick takes it over %d min "
            "after it was taken",
            campaign,
            exc,
            BROADCAST_RESUME_AFTER // timedelta(minutes=1),
        )


# ------------------------------------------------------------------ status


@dataclass(frozen=True)
class BroadcastStatus:
    """Where a campaign's broadcast is: `scheduled` (its first moment to come, or come and
    no tick since), `sending` (claimed, its journeys not all in), `sent` or `missed`."""

    moment: str  # as written after `once`: the file's, or the one sent
    first: datetime  # when the first member's moment comes
    last: datetime  # when the last member's moment comes
    state: str
    at: datetime | None = None  # the tick that claimed, sent or missed it
    enrolled: int | None = None
    holdout: int | None = None
    late: int | None = None  # members not sent it: their moment too long before the tick
    note: str = ""

    @property
    def local(self) -> bool:
        return self.first != self.last

    def as_dict(self) -> dict[str, Any]:
        return {
            "moment": self.moment,
            "local": self.local,
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
            "state": self.state,
            "at": self.at.isoformat() if self.at else None,
            "enrolled": self.enrolled,
            "holdout": self.holdout,
            "late": self.late,
            "note": self.note,
        }

    def line(self) -> str:
        """The status in one line: when, whether it has been sent, how many enrolled."""
        when = (
            f"once {self.moment}, each subscriber's local time "
            f"({self.first:%Y-%m-%d %H:%M} to {self.last:%Y-%m-%d %H:%M} UTC)"
            if self.local
            else f"once {self.moment} ({self.first:%Y-%m-%d %H:%M} UTC)"
        )
        at = f"{self.at:%Y-%m-%d %H:%M} UTC" if self.at else ""
        hours = BROADCAST_LATE // timedelta(hours=1)
        if self.state == "sent":
            late = (
                f", {self.late:,} not (their moment more than {hours} h gone)" if self.late else ""
            )
            text = (
                f"sent by the tick at {at}: {self.enrolled or 0:,} enrolled "
                f"({self.holdout or 0:,} held out){late}"
            )
        elif self.state == "sending":
            text = f"being sent since the tick at {at}; its journeys not all in yet"
        elif self.state == "missed":
            text = (
                f"missed: no tick ran within {hours} h of any member's moment"
                + (f" (the first came at {at})" if at else "")
                + "; nothing sent"
            )
        else:
            text = f"not sent yet (it is sent to no one whose moment is more than {hours} h gone)"
        return f"{when}: {text}" + (f". {self.note}" if self.note else "")


def broadcast_status(
    ctx: Context, name: str, campaign: Campaign | None, *, now: datetime
) -> BroadcastStatus | None:
    """The broadcast of campaign `name` (`campaign`: its file's model, if it loads): None
    when the file is not a broadcast and none was ever sent."""
    with ctx.session() as s:
        records = control.broadcast_records(s, name)
    taken = next((r for r in records if r.kind == control.BROADCAST), None)
    moment = campaign.settings.broadcast_at if campaign is not None else None
    if taken is not None:
        sent = taken.value or moment or taken.at
        first, last = broadcast_window(sent)
        note = ""
        if not taken.done and now - taken.at >= BROADCAST_RESUME_AFTER:
            note = "The tick that began it stopped on the way; " + (
                "too late now to enrol the rest"
                if now - last > BROADCAST_LATE
                else "the next tick enrols the rest"
            )
        elif moment is None:
            note = "The file is no longer a broadcast"
        elif moment != sent:
            assert campaign is not None
            note = (
                f"The file now says once {written_moment(campaign)}: a campaign broadcasts "
                "once (give the file a new campaign id to send it again)"
            )
        return BroadcastStatus(
            taken.moment,
            first,
            last,
            "sent" if taken.done else "sending",
            taken.at,
            taken.enrolled,
            taken.holdout,
            taken.late,
            note,
        )
    if moment is None or campaign is None:
        return None
    first, last = broadcast_window(moment)
    written = written_moment(campaign)
    missed = next((r for r in records if r.kind == control.MISSED and r.value == moment), None)
    if missed is not None:
        return BroadcastStatus(written, first, last, "missed", missed.at)
    if now - last > BROADCAST_LATE:
        return BroadcastStatus(written, first, last, "missed")
    return BroadcastStatus(written, first, last, "scheduled")
