"""Opt-ins and opt-outs, on SQLite and PostgreSQL: each counted once, with its source,
however the subscriber arrived (import, API) or left (API, profile); and the dashboard's
figures per day and per source."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from orchestrator.app import insights, visitors
from orchestrator.app.service import Context, add_events, import_subscribers, open_context
from orchestrator.config import Config
from orchestrator.language.records import EventRecord
from orchestrator.store import repo
from orchestrator.store.models import Event
from orchestrator.testing.fakes import RecordingDelivery
from tests.conftest import subscriber_line
from tests.helpers import opt_events, subscriber_status, subscription


@pytest.fixture
def ctx(tmp_path: Path, db_url: str) -> Iterator[Context]:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    context = open_context(Config(db=db_url, graphs=graphs), delivery=RecordingDelivery())
    yield context
    context.engine.dispose()


def _people(tmp_path: Path, *ids: str, name: str = "people.jsonl", **attributes: Any) -> Path:
    path = tmp_path / name
    path.write_text("".join(subscriber_line(sid, **attributes) + "\n" for sid in ids))
    return path


def _subscribe(ctx: Context, name: str, *, now: datetime, sid: str | None = None) -> str:
    body: dict[str, Any] = {"subscription": subscription(name)}
    if sid is not None:
        body["id"] = sid
    return visitors.subscribe(ctx, body, now=now, backend=True).id


def _unsubscribe(ctx: Context, name: str, *, now: datetime) -> bool:
    return visitors.unsubscribe(
        ctx, {"endpoint": subscription(name)["endpoint"]}, now=now, backend=True
    )


def test_a_file_imported_twice_counts_each_new_subscriber_once_with_source_import(
    ctx: Context, tmp_path: Path
) -> None:
    people = _people(tmp_path, "p0", "p1", "p2", plan="pro")
    assert import_subscribers(ctx, people).added == 3
    again = import_subscribers(ctx, people)
    assert (again.added, again.bad) == (0, [])
    changed = _people(tmp_path, "p0", "p1", "p2", "p3", name="more.jsonl", plan="team")
    report = import_subscribers(ctx, changed, batch_size=2)
    assert (report.added, report.changed) == (1, 3)  # p3 new; p0-p2 changed, not new
    assert sorted(opt_events(ctx)) == [(f"p{i}", "imported", "import") for i in range(4)]


def test_the_api_counts_a_new_subscriber_once_and_an_existing_one_not_again(
    ctx: Context, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    import_subscribers(ctx, _people(tmp_path, "p0"))
    anonymous = _subscribe(ctx, "browser", now=now)  # no id: a fresh anonymous subscriber
    assert _subscribe(ctx, "browser", now=now) == anonymous  # the same subscription again
    assert _subscribe(ctx, "acc-1", now=now, sid="acc-1") == "acc-1"  # a new id from the site
    _subscribe(ctx, "acc-1-phone", now=now, sid="acc-1")  # their second browser
    _subscribe(ctx, "p0-phone", now=now, sid="p0")  # an imported subscriber's browser
    assert opt_events(ctx) == [
        ("p0", "imported", "import"),
        (anonymous, "subscribed", "api"),
        ("acc-1", "subscribed", "api"),
    ]


def test_one_request_for_a_new_subscriber_with_two_browsers_counts_once(ctx: Context) -> None:
    now = datetime.now(UTC)
    requests = [
        visitors.parse_subscribe(
            {"id": "two", "subscription": subscription(name)},
            allowed=ctx.config.push_allowed_origins,
            backend=True,
        )
        for name in ("two-laptop", "two-phone")
    ]
    answers = visitors.subscribe_many(ctx, requests, now=now)
    assert [getattr(a, "id", a) for a in answers] == ["two", "two"]
    assert opt_events(ctx) == [("two", "subscribed", "api")]


def test_an_unsubscribed_subscriber_stays_out_on_reimport_and_counts_again_on_coming_back(
    ctx: Context, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    people = _people(tmp_path, "p0", "p1")
    import_subscribers(ctx, people)
    _subscribe(ctx, "p0-phone", now=now, sid="p0")
    assert _unsubscribe(ctx, "p0-phone", now=now)  # p0 still has the imported browser
    assert subscriber_status(ctx, "p0") == "active"
    assert visitors.unsubscribe(
        ctx, {"endpoint": "https://fcm.googleapis.com/fcm/send/p0"}, now=now, backend=True
    )
    assert subscriber_status(ctx, "p0") == "unsubscribed"
    # the old file again: p0's browser is stored again, but p0 stays unsubscribed, uncounted
    assert import_subscribers(ctx, people).added == 0
    assert subscriber_status(ctx, "p0") == "unsubscribed"
    assert not _unsubscribe(ctx, "p0-phone", now=now)  # gone already: nothing, no opt-out
    assert visitors.unsubscribe(  # the browser the re-import stored: p0 was out already
        ctx, {"endpoint": "https://fcm.googleapis.com/fcm/send/p0"}, now=now, backend=True
    )
    _subscribe(ctx, "p0-new", now=now, sid="p0")  # p0 subscribes again: a second opt-in
    _subscribe(ctx, "p0-new", now=now, sid="p0")
    assert subscriber_status(ctx, "p0") == "active"
    visitors.forget(ctx, "p1", now=now)  # an active subscriber deletes everything
    visitors.forget(ctx, "p1", now=now)
    _subscribe(ctx, "p1-again", now=now, sid="p1")  # and later subscribes again
    assert opt_events(ctx) == [  # p1's import opt-in went with everything else they deleted
        ("p0", "imported", "import"),
        ("p0", "unsubscribed", "api"),
        ("p0", "subscribed", "api"),
        ("p1", "unsubscribed", "profile"),
        ("p1", "subscribed", "api"),
    ]


def test_a_subscriber_already_out_who_deletes_everything_is_no_second_opt_out(
    ctx: Context,
) -> None:
    now = datetime.now(UTC)
    _subscribe(ctx, "q", now=now, sid="q")
    _unsubscribe(ctx, "q", now=now)
    visitors.forget(ctx, "q", now=now)
    assert subscriber_status(ctx, "q") == "deleted"
    # the deletion erased the opt-in and the opt-out with everything else
    assert opt_events(ctx) == []


def test_linking_an_anonymous_browser_to_a_subscriber_already_in_is_no_second_opt_in(
    ctx: Context, tmp_path: Path
) -> None:
    from orchestrator.app import tokens

    now = datetime.now(UTC)
    import_subscribers(ctx, _people(tmp_path, "p0"))
    anonymous = _subscribe(ctx, "laptop", now=now)
    proof = tokens.identity_proof(tokens.identity_key(ctx.secret()), "p0")
    linked = visitors.subscribe(
        ctx, {"subscription": subscription("laptop"), "id": "p0", "id_hash": proof}, now=now
    )
    assert linked.id == "p0" and subscriber_status(ctx, anonymous) == "merged"
    assert opt_events(ctx) == [("p0", "imported", "import")]


def test_two_requests_bringing_one_subscriber_back_at_once_revive_them_once(
    ctx: Context,
) -> None:
    now = datetime.now(UTC)
    _subscribe(ctx, "r", now=now, sid="r")
    _unsubscribe(ctx, "r", now=now)
    found: list[list[str]] = []
    with ctx.session() as first, first.begin():
        assert repo.revive(first, ["r"], now=now) == ["r"]

        def second() -> None:
            with ctx.session() as s, s.begin():
                found.append(repo.revive(s, ["r"], now=now))

        racer = threading.Thread(target=second)
        racer.start()
        time.sleep(0.3)  # the second waits on the first's write lock (row lock on PostgreSQL)
        assert not found
    racer.join(10)
    assert found == [[]]  # it saw the subscriber active once it could write


def test_the_dashboard_counts_opt_ins_and_opt_outs_per_day_and_per_source(
    ctx: Context, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    before, long_ago = now - timedelta(days=2), now - timedelta(days=40)
    _subscribe(ctx, "old", now=long_ago, sid="old")  # outside the 30 days shown
    _subscribe(ctx, "a1", now=before, sid="a1")
    _subscribe(ctx, "a2", now=before, sid="a2")
    _unsubscribe(ctx, "a2", now=before)
    import_subscribers(ctx, _people(tmp_path, "i1", "i2", "i3"))
    import_subscribers(ctx, _people(tmp_path, "i1", "i2", "i3"))  # counted once
    _unsubscribe(ctx, "a1", now=now)
    visitors.forget(ctx, "i3", now=now)
    add_events(ctx, [EventRecord("i1", "subscribed", now, {})])  # sent as an event
    with ctx.session() as s:
        at = s.execute(select(col(Event.at)).where(col(Event.subscriber_id) == "i2")).scalar_one()
    imported_day = repo.utc(at).date()  # the import's own clock
    figures = insights.metrics(ctx, now=now)
    expected_ins = {before.date(): 2}
    expected_ins[imported_day] = expected_ins.get(imported_day, 0) + 2  # i3's went with i3
    expected_ins[now.date()] = expected_ins.get(now.date(), 0) + 1  # the event sent
    assert dict(figures.opt_ins) == expected_ins
    assert [d for d, _ in figures.opt_ins] == sorted(expected_ins)
    assert dict(figures.opt_outs) == {before.date(): 1, now.date(): 2}
    assert figures.by_source == [
        ("import", 2, 0),
        ("api", 2, 2),
        ("profile", 0, 1),
        ("other", 1, 0),
    ]


WELCOME = """
campaign: welcome
title: Welcome
settings: {window: 1h}
subcampaigns:
  new:
    trigger: {event: subscribed}
    start: hello
    nodes:
      hello: {notification: {title: Welcome}}
"""


def test_a_welcome_series_triggered_by_subscribed_does_not_welcome_an_import(
    ctx: Context, tmp_path: Path
) -> None:
    """An import's opt-in is an `imported` event: counted as an opt-in, but a campaign
    triggered by `subscribed` welcomes only those who subscribed (API, site)."""
    from orchestrator.app.ticking import tick

    (ctx.config.graphs / "welcome.yaml").write_text(WELCOME, encoding="utf-8")
    now = datetime.now(UTC)
    import_subscribers(ctx, _people(tmp_path, "p0", "p1"))
    _subscribe(ctx, "acc-1", now=now, sid="acc-1")
    tick(ctx, now=now + timedelta(minutes=1))
    sent = [r.subscriber_id for r in ctx.delivery.requests]  # type: ignore[attr-defined]
    assert sent == ["acc-1"]
    opt_ins = sum(n for name, _, _, n in _days(ctx, now) if name == "subscribed")
    assert opt_ins == 3


def _days(ctx: Context, now: datetime) -> list[tuple[str, Any, str | None, int]]:
    with ctx.session() as s:
        return repo.subscription_days(s, since=now - timedelta(days=1))
