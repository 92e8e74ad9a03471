"""Reliability (docs/reliability.md): crashes, concurrent ticks and a dropped database
connection, against the local push service, on SQLite and PostgreSQL.

Each scenario checks what the push service actually received, not only our ledger:
nobody is lost, and the only repeat allowed is the very same message sent again with
the same Topic header (a device shows it once)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from orchestrator.app import outcomes
from orchestrator.testing.receiver import Delivered, Receiver
from tests.conftest import ROOT, campaign_world, pg_schema
from tests.helpers import T0

CAMPAIGN_BIN = str(Path(sys.executable).parent / "campaign")
AFTER_GRACE = T0 + outcomes.CLAIM_GRACE + timedelta(minutes=1)


@contextmanager
def database(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'c.db'}"
        return
    with pg_schema() as url:
        yield url


def _campaign(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CAMPAIGN_BIN, *args], env=env, capture_output=True, text=True, timeout=300
    )


def _tick(env: dict[str, str], now: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return _campaign(env, "tick", "--now", now, *extra)


def _ledger(url: str) -> tuple[int, int, dict[str, int]]:
    """(rows, distinct (journey, step), rows by outcome)."""
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            rows, distinct = c.execute(
                text("SELECT count(*), count(DISTINCT journey_id || ':' || step) FROM send")
            ).one()
            by = dict(c.execute(text("SELECT outcome, count(*) FROM send GROUP BY outcome")).all())
    finally:
        engine.dispose()
    return int(rows), int(distinct), {str(k): int(v) for k, v in by.items()}


def _by_endpoint(messages: list[Delivered]) -> dict[str, list[Delivered]]:
    out: dict[str, list[Delivered]] = {}
    for m in messages:
        out.setdefault(m.endpoint, []).append(m)
    return out


def _settle(receiver: Receiver, quiet_s: float = 0.5) -> None:
    """Until the receiver has taken no request for `quiet_s`."""
    seen, since = receiver.stats()["requests"], time.monotonic()
    while time.monotonic() - since < quiet_s:
        time.sleep(0.05)
        now = receiver.stats()["requests"]
        if now != seen:
            seen, since = now, time.monotonic()


# ------------------------------------------------------------------ kill -9 mid-batch

PEOPLE, BATCH, CRASH_BATCH = 120, 40, 2
POINTS = ("in_claim", "after_claim", "during_sends", "before_outcome")


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_tick_killed_mid_batch_then_the_next_tick_loses_and_doubles_nothing(
    tmp_path: Path, kind: str, point: str
) -> None:
    with database(kind, tmp_path) as url, Receiver() as receiver:
        env = campaign_world(tmp_path, receiver, db=url, people=PEOPLE)
        crashed = subprocess.run(
            [
                *(sys.executable, "-m", "tests.integration.crashing_tick", point),
                *(T0.isoformat(), str(BATCH), str(CRASH_BATCH)),
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
        _settle(receiver)  # pushes written to sockets before the kill still arrive
        first = receiver.take()  # shown on the devices: a repeat can no longer replace them
        rows, _, by = _ledger(url)
        recorded = by.get("delivered", 0)
        unanswered = by.get("claimed", 0)
        # the kill came where it was meant to
        if point == "in_claim":  # the batch's transaction rolled back: batch 1 only
            assert rows == BATCH
        else:
            assert rows >= CRASH_BATCH * BATCH and unanswered >= BATCH
        if point == "during_sends":
            assert len(first) >= recorded + BATCH // 2
        if point == "before_outcome":
            assert len(first) >= recorded + BATCH
        # every send recorded as delivered really arrived; what arrived beyond that is
        # exactly the claimed-but-unanswered sends that had left before the kill
        assert recorded <= len(first) <= recorded + unanswered
        # the scheduled tick five minutes on leaves claimed steps alone (claim grace)
        # and sends what was never claimed
        soon = _tick(env, (T0 + timedelta(minutes=5)).isoformat())
        assert soon.returncode == 0, soon.stderr[-3000:]
        assert len(receiver.received()) == PEOPLE - rows
        later = _tick(env, AFTER_GRACE.isoformat())
        assert later.returncode == 0, later.stderr[-3000:]
        second = receiver.take()
        stats = receiver.stats()
        rows, distinct, by = _ledger(url)

    everything = _by_endpoint(first + second)
    assert len(everything) == PEOPLE  # nobody lost
    repeats = 0
    for messages in everything.values():
        # a repeat is the same message: same Topic, same decrypted payload (same send id)
        assert len({m.headers["Topic"] for m in messages}) == 1
        assert len({m.payload for m in messages}) == 1
        repeats += len(messages) - 1
    assert repeats == len(first) - recorded  # only what had left unrecorded went twice
    assert stats["delivered"] == PEOPLE + repeats
    assert rows == distinct == PEOPLE and by == {"delivered": PEOPLE}


# ------------------------------------------------------------------ two ticks at once


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_ticks_started_at_the_same_moment_send_each_step_once(
    tmp_path: Path, kind: str
) -> None:
    people = 600
    # ~30 batches of 20 at 100 ms each: a tick lasts seconds, far longer than the
    # difference between the two processes' start-up, so they really overlap
    with database(kind, tmp_path) as url, Receiver(latency_ms=100) as receiver:
        env = campaign_world(tmp_path, receiver, db=url, people=people)
        procs = [
            subprocess.Popen(
                [CAMPAIGN_BIN, "tick", "--now", T0.isoformat(), "--batch-size", "20", "--json"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        reports = []
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err[-3000:]
            reports.append(json.loads(out)["campaigns"][0])
        stats = receiver.stats()
        messages = receiver.received()
        rows, distinct, by = _ledger(url)
        engine = create_engine(url)
        with engine.connect() as c:
            journeys, subscribers = c.execute(
                text("SELECT count(*), count(DISTINCT subscriber_id) FROM journey")
            ).one()
        engine.dispose()
    assert sum(r["sends"] for r in reports) == people
    assert all(r["sends"] > 0 for r in reports), reports  # both really worked
    assert stats["requests"] == stats["delivered"] == people
    assert len(_by_endpoint(messages)) == people
    assert rows == distinct == people and by == {"delivered": people}
    assert journeys == subscribers == people  # enrolled once each, though both ticks enrolled


# ------------------------------------------------------------------ connection dropped


def test_a_dropped_postgresql_connection_fails_the_tick_cleanly_and_the_next_tick_finishes(
    tmp_path: Path,
) -> None:
    people = 600
    with pg_schema() as base, Receiver(latency_ms=60) as receiver:
        url = f"{base}&application_name=campaign-tick-under-test"
        env = campaign_world(tmp_path, receiver, db=url, people=people)
        proc = subprocess.Popen(
            [CAMPAIGN_BIN, "tick", "--now", T0.isoformat(), "--batch-size", "20"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        killed: list[int] = []

        def terminate_mid_transaction() -> None:
            """Once sends are flowing, end the tick's session while it is inside a
            transaction that has written. The moment is made, not waited for: holding an
            EXCLUSIVE lock on node_stat (reads go on, writes wait) stops the tick's next
            batch transaction at its counter upsert, after its other writes, so the session
            ended is certainly mid-transaction. (Ending a session seen writing a moment ago
            races its commit: an idle pooled connection is just replaced by pre-ping, and
            the tick would rightly go on.)"""
            admin = create_engine(base)
            try:
                for _ in range(600):
                    if receiver.stats()["requests"] >= 60:
                        break
                    time.sleep(0.05)
                with admin.connect() as locker, admin.connect() as c:
                    locker.execute(text("LOCK TABLE node_stat IN EXCLUSIVE MODE"))
                    try:
                        while proc.poll() is None and not killed:
                            ended = c.execute(
                                text(
                                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE application_name = 'campaign-tick-under-test' "
                                    "AND wait_event_type = 'Lock' "
                                    "AND backend_xid IS NOT NULL"
                                )
                            ).all()
                            c.commit()
                            killed.extend(1 for (ok,) in ended if ok)
                            time.sleep(0.01)
                    finally:
                        locker.rollback()
            finally:
                admin.dispose()

        killer = threading.Thread(target=terminate_mid_transaction)
        killer.start()
        out, err = proc.communicate(timeout=300)
        killer.join()
        assert killed, "the tick's session was not found"
        assert proc.returncode == 1, (out, err)
        assert "error: the database failed during the tick" in err
        assert "Traceback" not in err
        _settle(receiver)
        sent_before = receiver.stats()["delivered"]
        assert 0 < sent_before < people
        first = receiver.take()
        later = _tick(env, AFTER_GRACE.isoformat())
        assert later.returncode == 0, later.stderr[-3000:]
        second = receiver.take()
        rows, distinct, by = _ledger(base)
    everything = _by_endpoint(first + second)
    assert len(everything) == people
    for messages in everything.values():
        assert len({m.headers["Topic"] for m in messages}) == 1
        assert len({m.payload for m in messages}) == 1
    assert rows == distinct == people and by == {"delivered": people}


# ------------------------------------------------------------------ faults from outside


def test_a_run_against_a_faulty_push_service_accounts_for_every_send() -> None:
    """`campaign bench-faults` at 5,000 sends (docs/reliability.md has the 100,000 run)."""
    from orchestrator.bench.faults import bench_faults

    figures = bench_faults(sends=5000, seed=2)
    assert figures["checks"] == {
        "outcomes_add_up": True,
        "ledger_delivered_is_what_arrived": True,
        "no_duplicates": True,
        "pruned_journeys_ended": True,
        "nothing_waiting": True,
    }, figures
    answered = figures["push_service"]
    # the faults really happened, in about the asked shares
    assert 150 <= answered["answered_503"] <= 400
    assert answered["answered_429"] >= 40
    assert 20 <= answered["answered_410"] <= 90 and answered["answered_410"] == figures["pruned"]
    assert (
        figures["ledger_rows"] == 5000 and figures["subscriptions_left"] == 5000 - figures["pruned"]
    )


# ------------------------------------------------------------------ soak


def test_a_soak_over_every_example_ends_every_journey_within_the_invariants() -> None:
    """`campaign soak` at 3,000 subscribers a campaign (docs/reliability.md has 100,000)."""
    from orchestrator.sim.soak import soak

    figures = soak(ROOT / "campaign_graphs", subscribers=3000, start=T0)
    assert figures["ok"], figures
    assert len(figures["campaigns"]) == len(list((ROOT / "campaign_graphs").glob("*.yaml")))
    for c in figures["campaigns"]:
        assert c["journeys"] > 0 and c["sent"] > 0, c
        assert c["unfinished_journeys"] == 0 and c["invariant_violations"] == 0, c


def test_the_trace_checker_catches_each_broken_invariant() -> None:
    """The soak's checker is not a rubber stamp: each rule broken once is reported."""
    from orchestrator.engine.invariants import TraceChecker

    loaded = __import__("orchestrator.language.loader", fromlist=["load"]).load(
        ROOT / "campaign_graphs" / "cloud-storage-launch.yaml"
    )
    campaign = loaded.campaign
    sub_name, sub = next(iter(campaign.subcampaigns.items()))
    start = sub.start

    def line(t: str, kind: str, node: str, **extra: object) -> dict[str, object]:
        return {
            "t": t,
            "subscriber": "s1",
            "campaign": campaign.campaign,
            "subcampaign": sub_name,
            "type": kind,
            "node": node,
            **extra,
        }

    ok = [line("2026-01-05T10:00:00+00:00", "enroll", start)]
    checker = TraceChecker(campaign, {"s1": "UTC"})
    checker.feed(
        [
            *ok,
            line("2026-01-05T10:00:00+00:00", "send", start, step=1),
            line("2026-01-05T10:00:00+00:00", "send", start, step=2),
            line("2026-01-05T10:30:00+00:00", "exit", start, reason="completed"),
        ]
    )
    assert any("spacing" in p for p in checker.problems), checker.problems
    checker = TraceChecker(campaign, {"s1": "UTC"})
    checker.feed(
        [
            *ok,
            line("2026-01-05T10:00:00+00:00", "route", "nowhere", to="x"),
            line("2026-01-05T10:00:00+00:00", "exit", "x", reason="completed"),
        ]
    )
    assert any("journey is at" in p for p in checker.problems)
    checker = TraceChecker(campaign, {"s1": "UTC"})
    checker.feed(ok)
    assert checker.finish() == 1 and "never ended" in checker.problems[0]


# ------------------------------------------------------------------ an edit while in flight


def test_an_edit_deployed_mid_journey_keeps_versions_until_migrate_moves_them_as_planned(
    tmp_path: Path,
) -> None:
    people = 20
    with Receiver() as receiver:
        env = campaign_world(tmp_path, receiver, db=f"sqlite:///{tmp_path / 'c.db'}", people=people)
        assert _tick(env, T0.isoformat()).returncode == 0
        assert len(receiver.take()) == people
        path = Path(env["CAMPAIGN_GRAPHS"]) / "launch.yaml"
        path.write_text(path.read_text().replace("title: Again,", "title: Edited,"))
        # the edited file is deployed: ticks go on, in-flight journeys stay on their version
        assert _tick(env, (T0 + timedelta(hours=2)).isoformat()).returncode == 0
        engine = create_engine(env["CAMPAIGN_DB"])
        with engine.connect() as c:
            versions = c.execute(text("SELECT count(*) FROM campaign_version")).scalar_one()
            on = set(c.execute(text("SELECT DISTINCT version_id FROM journey")).scalars())
        assert versions == 2 and len(on) == 1
        planned = _campaign(env, "migrate", "launch", "--dry-run", "--json")
        assert planned.returncode == 0, planned.stderr
        plan = json.loads(planned.stdout)
        later = (T0 + timedelta(hours=2)).isoformat()
        applied = _campaign(env, "migrate", "launch", "--json", "--now", later)
        assert applied.returncode == 0, applied.stderr
        done = json.loads(applied.stdout)
        assert done["applied"] and not plan["applied"]
        assert done["moves"] == plan["moves"] and done["ends"] == plan["ends"]
        assert len(plan["moves"]) == people and plan["ends"] == []
        with engine.connect() as c:
            moved = set(c.execute(text("SELECT DISTINCT version_id FROM journey")).scalars())
        engine.dispose()
        assert moved == {plan["to_version"]}
        # the follow-up now goes out as the new version says
        assert _tick(env, (T0 + timedelta(days=1, hours=1)).isoformat()).returncode == 0
        titles = {json.loads(m.payload)["title"] for m in receiver.take()}
    assert titles == {"Edited"}
