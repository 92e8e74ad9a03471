"""Isolation: one bad subscription, payload or journey row never stops a tick, a campaign or
another send. Real components throughout: a SQLite file or PostgreSQL, the real push client
(`WebPushDelivery`, `PushClient`) and the local push service, which decrypts what it accepts.
Bad rows are written straight into the tables, past the checks at intake."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st
from sqlalchemy import select, text, update
from sqlmodel import col
from typer.testing import CliRunner

from orchestrator.app import outcomes, pacing
from orchestrator.app.service import Context, add_events, import_subscribers, open_context, status
from orchestrator.app.ticking import tick
from orchestrator.config import Config
from orchestrator.delivery import SendOutcome, SendRequest, Target
from orchestrator.language.records import EventRecord
from orchestrator.language.urls import endpoint_problem
from orchestrator.push.client import PushClient
from orchestrator.push.setup import WebPushDelivery
from orchestrator.push.vapid import TokenCache, VapidKey
from orchestrator.store.models import Journey, PushSubscription, Send, Subscriber
from orchestrator.testing.receiver import Receiver
from tests.conftest import push_request, write_people
from tests.helpers import T0, TICK_CAMPAIGN

SUBJECT = "mailto:ops@example.com"
GRACE = outcomes.CLAIM_GRACE + timedelta(minutes=1)

# A triggered campaign whose click destination is a template: what an event carries.
CARTS = """
campaign: carts
title: Carts
goal: purchase
settings: {window: 1d}
subcampaigns:
  carts:
    trigger: {event: cart_abandoned}
    start: nudge
    nodes:
      nudge:
        notification:
          title: "{{ subscriber.attributes.name | default('Hi') }}: still want {{ trigger.properties.product }}?"
          url: "{{ trigger.properties.link }}"
        on_no_convert: {to: later, delay: 1h}
      later: {notification: {title: "Last call"}}
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(seed=7) as r:
        yield r


class World:
    """Campaign files, a VAPID key, `people` pro subscribers p0, p1, … with subscriptions on
    the receiver, and a context whose audit trace is kept in `trace`."""

    def __init__(
        self,
        tmp_path: Path,
        db_url: str,
        receiver: Receiver,
        *,
        people: int,
        campaigns: dict[str, str],
        wrap: Callable[[WebPushDelivery], Any] | None = None,
    ) -> None:
        graphs = tmp_path / "graphs"
        graphs.mkdir()
        for name, body in campaigns.items():
            (graphs / f"{name}.yaml").write_text(textwrap.dedent(body), encoding="utf-8")
        key = tmp_path / "vapid.pem"
        VapidKey.generate().save(key)
        self.config = Config(
            db=db_url,
            graphs=graphs,
            vapid_private_key=str(key),
            vapid_subject=SUBJECT,
            push_allowed_origins=(receiver.origin, f"http://localhost:{receiver.port}"),
            delivery_processes=0,
        )
        self.real = WebPushDelivery(self.config)
        self.trace: list[dict[str, Any]] = []
        delivery = wrap(self.real) if wrap else self.real
        self.ctx = open_context(self.config, delivery=delivery, audit=self.trace.extend)
        self.sqlite = db_url.startswith("sqlite")
        import_subscribers(self.ctx, write_people(tmp_path / "people.jsonl", receiver, people))
        with self.ctx.session() as s:
            self.endpoints = dict(
                s.execute(
                    select(col(PushSubscription.subscriber_id), col(PushSubscription.endpoint))
                ).all()
            )

    def close(self) -> None:
        self.real.close()
        self.ctx.engine.dispose()

    def sql(self, statement: Any, **params: Any) -> None:
        with self.ctx.engine.begin() as c:
            c.execute(text(statement) if isinstance(statement, str) else statement, params)

    def sends(self, campaign: str | None = None) -> dict[tuple[str, str], Any]:
        """(subscriber, node) -> the ledger row."""
        with self.ctx.session() as s:
            rows = s.execute(select(Send)).scalars().all()
        return {(r.subscriber_id, r.node): r for r in rows if campaign in (None, r.campaign)}

    def journeys(self, campaign: str) -> dict[str, Journey]:
        with self.ctx.session() as s:
            rows = s.execute(select(Journey).where(col(Journey.campaign) == campaign)).scalars()
            return {j.subscriber_id: j for j in rows}

    def traced(self, kind: str, reason: str) -> set[str]:
        """Subscribers whose trace has an action of this type with this reason."""
        return {
            line["subscriber"]
            for line in self.trace
            if line["type"] == kind and line.get("reason") == reason
        }


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    made: list[World] = []

    def make(db_url: str, receiver: Receiver, **options: Any) -> World:
        made.append(World(tmp_path, db_url, receiver, **options))
        return made[-1]

    yield make
    for world in made:
        world.close()


def _delivered(receiver: Receiver) -> Counter[str]:
    """Messages the push service accepted and decrypted, per endpoint."""
    return Counter(m.endpoint for m in receiver.received())


def _nothing_waits(world: World) -> None:
    sends = world.sends().values()
    assert [s for s in sends if s.outcome == "claimed"] == []
    assert max(s.attempts for s in sends) <= outcomes.MAX_ATTEMPTS


# ------------------------------------------------------------------ bad endpoints


def _bad_endpoints(endpoint: str, receiver: Receiver, *, nul: bool) -> dict[str, tuple[str, str]]:
    """Spellings of a subscriber's own endpoint that intake refuses: (stored, detail expected).
    Sent as stored, several of them would even reach the push service."""
    host = "127.0.0.1"
    bad = {
        "non-ASCII path": (endpoint + "€", "not in normal form"),
        "space": (endpoint.replace("/push/", "/push/a "), "a space"),
        "uppercase scheme": ("HTTP" + endpoint.removeprefix("http"), "not in normal form"),
        "uppercase host": (endpoint.replace(host, "LOCALHOST"), "not in normal form"),
        "origin not allowed": (
            endpoint.replace(receiver.origin, "https://push.evil.example"),
            "not an allowed push service origin",
        ),
        "user name": (endpoint.replace("//", "//ops@"), "user name or password"),
    }
    if nul:  # PostgreSQL text cannot hold a NUL: such a row exists only on SQLite
        bad["NUL in host"] = (endpoint.replace(host, host + "\x00.evil.example"), "NUL")
    return bad


def test_bad_endpoints_are_disallowed_and_every_other_subscriber_gets_one_push(
    db_url: str, receiver: Receiver, make_world: Callable[..., World]
) -> None:
    world = make_world(db_url, receiver, people=10, campaigns={"launch": TICK_CAMPAIGN})
    kinds = list(_bad_endpoints(world.endpoints["p1"], receiver, nul=world.sqlite))
    bad: dict[str, tuple[str, str]] = {}  # subscriber -> (stored endpoint, detail expected)
    for i, kind in enumerate(kinds, start=1):
        sid = f"p{i}"
        stored, detail = _bad_endpoints(world.endpoints[sid], receiver, nul=world.sqlite)[kind]
        world.sql(
            "UPDATE push_subscription SET endpoint = :e WHERE subscriber_id = :s", e=stored, s=sid
        )
        bad[sid] = (stored, detail)
    good = {sid: e for sid, e in world.endpoints.items() if sid not in bad}
    assert len(good) >= 2

    report = tick(world.ctx, now=T0)
    assert report.failed == {} and report.refused == {}
    assert report.campaigns[0].outcomes == {"delivered": len(good), "disallowed": len(bad)}
    assert _delivered(receiver) == Counter(good.values())  # each good one once, no other
    assert receiver.stats()["decrypted"] == receiver.stats()["requests"] == len(good)
    sends = world.sends()
    for sid, (_, detail) in bad.items():
        row = sends[(sid, "hello")]
        assert row.outcome == "disallowed" and detail in (row.detail or ""), (sid, row.detail)
        assert world.journeys("launch")[sid].node == "again"  # the no-convert edge, at once
    assert world.traced("no_convert", "disallowed") == set(bad)
    assert {sends[(sid, "hello")].outcome for sid in good} == {"delivered"}

    tick(world.ctx, now=T0 + GRACE)  # nothing is sent again
    assert receiver.stats()["requests"] == len(good)
    _nothing_waits(world)
    assert {s.attempts for s in world.sends().values()} == {1}


def test_a_send_whose_encryption_raises_is_failed_and_its_journey_moves_on(
    tmp_path: Path, receiver: Receiver, make_world: Callable[..., World]
) -> None:
    """A subscription key stored as bytes (SQLite keeps what it is given) makes the encryptor
    raise TypeError, inside the push client: that send's outcome, not the batch's."""
    world = make_world(
        f"sqlite:///{tmp_path / 'i.db'}", receiver, people=4, campaigns={"launch": TICK_CAMPAIGN}
    )
    world.sql("UPDATE push_subscription SET p256dh = :k WHERE subscriber_id = 'p2'", k=b"\x04ab")
    report = tick(world.ctx, now=T0)
    assert report.failed == {}
    assert report.campaigns[0].outcomes == {"delivered": 3, "failed": 1}
    row = world.sends()[("p2", "hello")]
    assert row.outcome == "failed" and (row.detail or "").startswith("TypeError: ")
    assert world.traced("no_convert", "delivery_error") == {"p2"}
    assert world.journeys("launch")["p2"].node == "again"
    assert _delivered(receiver) == Counter(e for s, e in world.endpoints.items() if s != "p2")
    tick(world.ctx, now=T0 + GRACE)
    assert receiver.stats()["requests"] == 3
    _nothing_waits(world)


# ------------------------------------------------------------------ attempts and campaigns


class _Unreachable:
    """The real delivery, except that every batch of one campaign fails as a whole (as when
    the push service cannot be reached from a delivery process that then dies)."""

    def __init__(self, real: WebPushDelivery, campaign: str) -> None:
        self.real, self.campaign = real, campaign

    def deliver(self, requests: Sequence[SendRequest]) -> list[SendOutcome]:
        return self.submit(requests).result()

    def submit(self, requests: Sequence[SendRequest]) -> Future[list[SendOutcome]]:
        if any(r.campaign == self.campaign for r in requests):
            raise RuntimeError("the push service is unreachable")
        return self.real.submit(requests)


def test_a_failing_campaign_does_not_stop_the_next_and_its_sends_give_up_after_max_attempts(
    db_url: str, receiver: Receiver, make_world: Callable[..., World]
) -> None:
    world = make_world(
        db_url,
        receiver,
        people=3,
        campaigns={
            "alpha": TICK_CAMPAIGN.replace("campaign: launch", "campaign: alpha"),
            "beta": TICK_CAMPAIGN.replace("campaign: launch", "campaign: beta"),
        },
        wrap=lambda real: _Unreachable(real, "alpha"),
    )
    first = tick(world.ctx, now=T0)
    assert first.failed == {"alpha": "RuntimeError: the push service is unreachable"}
    assert [c.campaign for c in first.campaigns] == ["beta"]
    assert first.campaigns[0].outcomes == {"delivered": 3}
    assert {s.outcome for s in world.sends("alpha").values()} == {"claimed"}

    for n in range(1, outcomes.MAX_ATTEMPTS):  # each later tick sends alpha's again, and fails
        report = tick(world.ctx, now=T0 + n * GRACE)
        assert list(report.failed) == ["alpha"] and [c.campaign for c in report.campaigns] == [
            "beta"
        ]
        assert {s.attempts for s in world.sends("alpha").values()} == {n + 1}

    last = tick(world.ctx, now=T0 + outcomes.MAX_ATTEMPTS * GRACE)  # spent: never sent again
    assert last.failed == {}
    assert {c.campaign: dict(c.outcomes) for c in last.campaigns}["alpha"] == {"failed": 3}
    alpha = world.sends("alpha")
    assert {(s.outcome, s.detail, s.attempts) for s in alpha.values()} == {
        ("failed", f"gave up after {outcomes.MAX_ATTEMPTS} attempts", outcomes.MAX_ATTEMPTS)
    }
    assert {j.node for j in world.journeys("alpha").values()} == {"again"}
    assert world.traced("no_convert", "delivery_failed") == {"p0", "p1", "p2"}
    _nothing_waits(world)
    # beta's pushes went out once each; alpha's never reached the push service
    assert _delivered(receiver) == Counter(world.endpoints.values())
    assert all(json.loads(m.payload)["title"].startswith("Hi P") for m in receiver.received())


def test_the_tick_command_names_the_failed_campaign_and_its_cause_and_exits_1(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a database error is reported as the database failing; the rest ran."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from orchestrator.cli import app

    graphs = tmp_path / "graphs"
    graphs.mkdir()
    for name in ("alpha", "beta"):
        (graphs / f"{name}.yaml").write_text(
            textwrap.dedent(TICK_CAMPAIGN).replace("campaign: launch", f"campaign: {name}")
        )
    key = tmp_path / "vapid.pem"
    VapidKey.generate().save(key)
    env = {
        "CAMPAIGN_DB": f"sqlite:///{tmp_path / 'c.db'}",
        "CAMPAIGN_GRAPHS": str(graphs),
        "CAMPAIGN_VAPID_PRIVATE_KEY": str(key),
        "CAMPAIGN_VAPID_SUBJECT": SUBJECT,
        "CAMPAIGN_PUSH_ALLOWED_ORIGINS": receiver.origin,
        "CAMPAIGN_DELIVERY_PROCESSES": "0",
    }
    runner = CliRunner()
    people = write_people(tmp_path / "people.jsonl", receiver, 2)
    assert runner.invoke(app, ["subscribers", "import", str(people)], env=env).exit_code == 0
    real_enrol = pacing.enrol  # a campaign's tick enrols in pacing.begin_campaign
    errors: dict[str, Exception] = {
        "T0": KeyError("boom"),
        "T1": OperationalError(
            "UPDATE node_stat …", {}, sqlite3.OperationalError("disk I/O error")
        ),
    }
    moment = {"now": "T0"}

    def enrol(ctx: Context, *, campaign: Any, **kw: Any) -> tuple[int, int]:
        if campaign.campaign == "alpha":
            raise errors[moment["now"]]
        return real_enrol(ctx, campaign=campaign, **kw)

    monkeypatch.setattr(pacing, "enrol", enrol)
    done = runner.invoke(app, ["tick", "--now", T0.isoformat()], env=env)
    assert done.exit_code == 1
    assert "beta: 2 enrolled" in done.stdout and "2 delivered" in done.stdout
    assert "error: the tick of alpha failed (KeyError: 'boom')" in done.stderr
    assert "database" not in done.stderr
    moment["now"] = "T1"
    done = runner.invoke(app, ["tick", "--now", (T0 + GRACE).isoformat(), "--json"], env=env)
    assert done.exit_code == 1
    assert json.loads(done.stdout)["failed"] == {"alpha": "OperationalError: disk I/O error"}
    assert "error: the database failed during the tick of alpha (disk I/O error)" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(receiver.received()) == 2  # beta's, once each


# ------------------------------------------------------------------ journeys


def test_a_journey_whose_advance_raises_ends_with_error_and_the_others_advance(
    db_url: str,
    receiver: Receiver,
    make_world: Callable[..., World],
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = make_world(db_url, receiver, people=5, campaigns={"launch": TICK_CAMPAIGN})
    tick(world.ctx, now=T0)
    assert len(receiver.take()) == 5
    world.sql("UPDATE journey SET node = 'nowhere' WHERE subscriber_id = 'p1'")
    broken = {"p1"}
    if world.sqlite:  # a stored trigger that is not JSON (jsonb cannot hold one)
        world.sql("UPDATE journey SET \"trigger\" = '{not json' WHERE subscriber_id = 'p3'")
        broken.add("p3")
    report = tick(world.ctx, now=T0 + timedelta(days=1, hours=1))  # the window is over
    assert report.failed == {}
    journeys = world.journeys("launch")
    for sid in broken:
        assert (journeys[sid].phase, journeys[sid].exit_reason) == ("ended", "error")
    assert world.traced("exit", "error") == broken
    assert status(world.ctx, "launch")["exits"] == {"error": len(broken)}
    assert "ended with an error: KeyError: 'nowhere'" in caplog.text
    advanced = {sid for sid in world.endpoints if sid not in broken}
    assert {sid for sid, j in journeys.items() if j.node == "again"} == advanced
    assert _delivered(receiver) == Counter(world.endpoints[sid] for sid in advanced)
    _nothing_waits(world)


def test_a_row_that_breaks_the_batch_read_is_advanced_alone_and_ends_with_error(
    tmp_path: Path, receiver: Receiver, make_world: Callable[..., World]
) -> None:
    """A subscriber's stored attributes that are not JSON (SQLite) break the batch's read of
    the attributes its templates need: the batch is advanced again one row at a time."""
    world = make_world(
        f"sqlite:///{tmp_path / 'i.db'}", receiver, people=4, campaigns={"carts": CARTS}
    )
    world.sql("UPDATE subscriber SET attributes = '{not json' WHERE id = 'p2'")
    link = {"product": "Lamp", "link": "https://example.com/lamp"}
    add_events(world.ctx, [EventRecord(f"p{i}", "cart_abandoned", T0, link) for i in range(4)])
    report = tick(world.ctx, now=T0)
    assert report.failed == {} and report.campaigns[0].outcomes == {"delivered": 3}
    journeys = world.journeys("carts")
    assert (journeys["p2"].phase, journeys["p2"].exit_reason) == ("ended", "error")
    assert ("p2", "nudge") not in world.sends()  # its claim was rolled back with it
    assert _delivered(receiver) == Counter(e for s, e in world.endpoints.items() if s != "p2")
    _nothing_waits(world)


# ------------------------------------------------------------------ what a send renders


def test_click_destinations_are_checked_when_rendered_and_bad_ones_skip_the_send(
    db_url: str, receiver: Receiver, make_world: Callable[..., World]
) -> None:
    world = make_world(db_url, receiver, people=6, campaigns={"carts": CARTS})
    links = {
        "p0": "https://EXAMPLE.com/ö?q=1",
        "p1": "javascript:alert(1)",
        "p2": "//evil.example/x",
        "p3": "data:text/html,x",
        "p4": "",  # no destination: the click goes to the thank-you page
        "p5": "https://example.com/x",
    }
    # p5's attributes are a JSON list: building its template context raises TypeError
    world.sql(update(Subscriber).where(col(Subscriber.id) == "p5").values(attributes=[1, 2]))
    add_events(
        world.ctx,
        [
            EventRecord(sid, "cart_abandoned", T0, {"product": "Lamp", "link": link})
            for sid, link in links.items()
        ],
    )
    report = tick(world.ctx, now=T0)
    assert report.failed == {}
    sends = world.sends()
    assert sends[("p0", "nudge")].target_url == "https://example.com/%C3%B6?q=1"
    assert (sends[("p4", "nudge")].outcome, sends[("p4", "nudge")].target_url) == (
        "delivered",
        None,
    )
    for sid in ("p1", "p2", "p3"):
        row = sends[(sid, "nudge")]
        assert row.outcome == "skipped" and (row.detail or "").startswith("bad_url: url "), sid
        assert row.target_url is None and row.payload is None
    p5 = sends[("p5", "nudge")]
    assert p5.outcome == "skipped" and (p5.detail or "").startswith("template_error: TypeError: ")
    assert world.traced("no_convert", "bad_url") == {"p1", "p2", "p3"}
    assert world.traced("no_convert", "template_error") == {"p5"}
    figures = status(world.ctx, "carts")
    assert figures["sends"] == {"delivered": 2, "skipped": 4}
    assert figures["nodes"]["nudge"]["skipped"] == 4
    skipped = {"p1", "p2", "p3", "p5"}  # the no-convert edge at once
    assert {sid for sid, j in world.journeys("carts").items() if j.node == "later"} == skipped
    assert _delivered(receiver) == Counter([world.endpoints["p0"], world.endpoints["p4"]])


# ------------------------------------------------------------------ the push client alone


def _client(receiver: Receiver) -> PushClient:
    return PushClient(
        tokens=TokenCache(key=VapidKey.generate(), subject=SUBJECT),
        allowed_origins=(receiver.origin,),
    )


def test_an_exception_on_the_wire_is_that_sends_outcome_and_is_not_retried(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.push import http1

    subs = [receiver.subscribe() for _ in range(4)]
    broken = str(subs[1]["endpoint"])
    post = http1.Http1Client.post

    async def failing(self: http1.Http1Client, url: str, body: bytes, headers: Any) -> Any:
        if url == broken:
            raise RuntimeError("the connection pool is in a bad state")
        return await post(self, url, body, headers)

    monkeypatch.setattr(http1.Http1Client, "post", failing)
    client = _client(receiver)
    try:
        answers = client.deliver(
            [push_request(i, s) for i, s in enumerate(subs)]
            + [push_request(9, subs[1], subs[2])]  # two devices: the one that works counts
        )
    finally:
        client.close()
    by_id = {o.send_id: o for o in answers}
    assert (by_id[1].outcome, by_id[1].detail) == (
        "error",
        "RuntimeError: the connection pool is in a bad state",
    )
    assert {by_id[i].outcome for i in (0, 2, 3, 9)} == {"delivered"}
    assert receiver.stats()["requests"] == 4  # the broken one was tried once, never on the wire


def test_an_endpoint_on_an_origin_already_checked_passes_only_what_a_full_check_passes(
    receiver: Receiver,
) -> None:
    """The per-origin shortcut of the client's endpoint check never lets through an endpoint
    that `urls.endpoint_problem` refuses."""
    client = _client(receiver)
    try:
        seen: dict[str, str] = {}
        first = str(receiver.subscribe()["endpoint"])
        assert client._screen(first, seen) == (None, receiver.origin)
        assert seen == {receiver.origin: receiver.origin}
        alphabet = st.sampled_from(list("/?#%@:;[]\\ aZ09-._~€\x00\x7f\t\u2028"))

        @settings(max_examples=400, deadline=None)
        @given(rest=st.text(alphabet=alphabet, max_size=24))
        def check(rest: str) -> None:
            endpoint = f"{receiver.origin}/{rest}"
            problem, _ = client._screen(endpoint, dict(seen))
            assert (problem is None) == (endpoint_problem(endpoint, (receiver.origin,)) is None)

        check()
    finally:
        client.close()


@pytest.mark.slow  # starts a delivery process
def test_one_bad_target_in_a_delivery_process_is_that_sends_outcome(
    tmp_path: Path, receiver: Receiver
) -> None:
    from orchestrator.push.setup import PROCESSES_FROM

    key = tmp_path / "vapid.pem"
    VapidKey.generate().save(key)
    config = Config(
        db=f"sqlite:///{tmp_path / 'c.db'}",
        vapid_private_key=str(key),
        vapid_subject=SUBJECT,
        push_allowed_origins=(receiver.origin,),
        delivery_processes=1,
    )
    subs = [receiver.subscribe() for _ in range(PROCESSES_FROM)]
    requests = [push_request(i, s) for i, s in enumerate(subs)]
    good = requests[0].targets[0]
    requests[1] = push_request(1, Target(good.endpoint + "€", good.p256dh, good.auth))
    requests[2] = push_request(2, Target(str(subs[2]["endpoint"]), b"\x04ab", good.auth))  # type: ignore[arg-type]
    delivery = WebPushDelivery(config)
    try:
        answers = {o.send_id: o for o in delivery.deliver(requests)}
        assert delivery._pool is not None and delivery._pool.pids()
    finally:
        delivery.close()
    assert answers[1].outcome == "disallowed" and "normal form" in (answers[1].detail or "")
    assert answers[2].outcome == "error" and (answers[2].detail or "").startswith("TypeError: ")
    assert {answers[i].outcome for i in range(3, len(subs))} | {answers[0].outcome} == {"delivered"}
    assert receiver.stats()["decrypted"] == len(subs) - 2


# ------------------------------------------------------------------ the Prefect flow


@pytest.mark.slow  # Prefect's test harness
def test_the_flow_records_the_batch_on_the_wire_then_fails_naming_the_campaign(
    tmp_path: Path, receiver: Receiver, make_world: Callable[..., World]
) -> None:
    from prefect.testing.utilities import prefect_test_harness

    import flows.tick as flow_module

    failures = {"left": 1}

    class FirstBatchFails:
        def __init__(self, real: WebPushDelivery) -> None:
            self.real = real

        def deliver(self, requests: Sequence[SendRequest]) -> list[SendOutcome]:
            if failures["left"]:
                failures["left"] -= 1
                raise RuntimeError("the push service is unreachable")
            return self.real.deliver(requests)

    world = make_world(
        f"sqlite:///{tmp_path / 'f.db'}",
        receiver,
        people=25,
        campaigns={"launch": TICK_CAMPAIGN},
        wrap=FirstBatchFails,
    )
    with (
        prefect_test_harness(server_startup_timeout=120),
        pytest.raises(
            RuntimeError,
            match=r"launch: the tick failed \(RuntimeError: the push service is unreachable\)",
        ),
    ):
        flow_module.run_tick(campaign="launch", now=T0.isoformat(), batch_size=10, ctx=world.ctx)
    outcomes_ = Counter(s.outcome for s in world.sends().values())
    # batch 1 failed and waits for the claim grace; the batches claimed while it was on the
    # wire were sent and recorded; nothing more was claimed after the failure
    assert outcomes_["claimed"] == 10
    assert set(outcomes_) <= {"claimed", "delivered"}
    assert outcomes_["delivered"] == len(receiver.received()) < 25
