"""Storage helpers on the hot path: the driver-level UPDATE on SQLite stores exactly what
SQLAlchemy's compiled statement stores, and both dialects read back the same values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text

from orchestrator.store import repo
from orchestrator.store.db import create_all, make_engine, session
from orchestrator.store.models import CampaignVersion, Journey, Send

T = datetime(2026, 3, 29, 0, 59, 59, 999999, tzinfo=UTC)


def _world(url: str) -> object:
    engine = make_engine(url)
    create_all(engine)
    with session(engine) as s, s.begin():
        s.execute(
            insert(CampaignVersion.__table__),  # type: ignore[attr-defined]
            [{"campaign": "c", "content_hash": "h", "source": {}, "created_at": T}],
        )
        s.execute(
            insert(Journey.__table__),  # type: ignore[attr-defined]
            [
                {
                    "campaign": "c",
                    "version_id": 1,
                    "subcampaign": "s",
                    "subscriber_id": f"p{i}",
                    "node": "a",
                    "phase": "arrive",
                    "due_at": T,
                    "claim_at": T,
                    "entered_at": T,
                }
                for i in range(4)
            ],
        )
    return engine


CHANGES = [
    {"id": 1, "node": "b", "phase": "await", "due_at": T + timedelta(days=2), "claim_at": None},
    {"id": 2, "node": "c", "phase": "wait", "due_at": T.replace(microsecond=0), "claim_at": T},
    {"id": 3, "phase": "ended", "ended_at": T, "exit_reason": "completed", "claim_at": None},
    {"id": 4, "pending_followup": True, "followups": 2, "sends": 3, "arm": "x", "last_send_at": T},
]


def test_the_sqlite_fast_update_stores_what_sqlalchemy_stores(tmp_path: Path, db_url: str) -> None:
    fast = _world(f"sqlite:///{tmp_path / 'fast.db'}")
    compiled = _world(db_url)
    with session(fast) as s, s.begin():  # type: ignore[arg-type]
        repo.update_by_id(s, Journey, CHANGES)
    with session(compiled) as s, s.begin():  # type: ignore[arg-type]
        for row in CHANGES:  # one statement per row: SQLAlchemy's own binding
            values = {k: v for k, v in row.items() if k != "id"}
            s.execute(
                Journey.__table__.update()  # type: ignore[attr-defined]
                .where(Journey.__table__.c.id == row["id"])  # type: ignore[attr-defined]
                .values(values)
            )
    columns = "id, node, phase, due_at, claim_at, ended_at, exit_reason, followups, pending_followup, sends, arm, last_send_at"
    query = text(f"SELECT {columns} FROM journey ORDER BY id")
    with fast.connect() as a, compiled.connect() as b:  # type: ignore[attr-defined]
        if db_url.startswith("sqlite"):  # the stored text itself, byte for byte
            assert a.execute(query).all() == b.execute(query).all()
        typed = select(Journey.__table__).order_by(Journey.__table__.c.id)  # type: ignore[attr-defined]
        assert [tuple(r) for r in a.execute(typed)] == [tuple(r) for r in b.execute(typed)]
    fast.dispose()  # type: ignore[attr-defined]
    compiled.dispose()  # type: ignore[attr-defined]


def test_a_time_in_another_zone_is_stored_in_utc_and_a_naive_one_refused(tmp_path: Path) -> None:
    engine = _world(f"sqlite:///{tmp_path / 'c.db'}")
    local = datetime(2026, 3, 29, 3, 0, tzinfo=timezone(timedelta(hours=2)))
    with session(engine) as s, s.begin():  # type: ignore[arg-type]
        repo.update_by_id(s, Journey, [{"id": 1, "due_at": local}])
        repo.update_by_id(s, Send, [])  # nothing to do is fine
    with engine.connect() as c:  # type: ignore[attr-defined]
        stored = c.execute(text("SELECT due_at FROM journey WHERE id = 1")).scalar()
    assert stored == "2026-03-29 01:00:00.000000"
    with session(engine) as s, s.begin(), pytest.raises(ValueError, match="aware"):  # type: ignore[arg-type]
        repo.update_by_id(s, Journey, [{"id": 1, "due_at": datetime(2026, 3, 29, 3, 0)}])
    engine.dispose()  # type: ignore[attr-defined]


def test_insert_returning_stores_what_sqlalchemy_stores_and_names_each_row(
    tmp_path: Path, db_url: str
) -> None:
    rows = [
        {
            "journey_id": j,
            "step": st,
            "campaign": "c",
            "node": "a",
            "subscriber_id": f"p{j}",
            "claimed_at": T,
            "outcome": "claimed",
            "attempts": 1,
            "retry_at": T + timedelta(minutes=10),
        }
        for j in (1, 2, 3, 4)
        for st in (1, 2)
    ]
    fast, compiled = _world(f"sqlite:///{tmp_path / 'fast.db'}"), _world(db_url)
    with session(fast) as s, s.begin():  # type: ignore[arg-type]
        got = repo.insert_returning(s, Send, rows, ("id", "journey_id", "step"))
    with session(compiled) as s, s.begin():  # type: ignore[arg-type]
        s.execute(insert(Send.__table__), rows)  # type: ignore[attr-defined]
    assert sorted((j, st) for _, j, st in got) == sorted((r["journey_id"], r["step"]) for r in rows)
    query = text("SELECT id, journey_id, step, claimed_at, retry_at, outcome FROM send ORDER BY id")
    with fast.connect() as a, compiled.connect() as b:  # type: ignore[attr-defined]
        stored = a.execute(query).all()
        if db_url.startswith("sqlite"):
            assert stored == b.execute(query).all()
        typed = select(Send.__table__).order_by(Send.__table__.c.id)  # type: ignore[attr-defined]
        assert [tuple(r) for r in a.execute(typed)] == [tuple(r) for r in b.execute(typed)]
    assert {(i, j, st) for i, j, st, *_ in stored} == set(got)
    fast.dispose()  # type: ignore[attr-defined]
    compiled.dispose()  # type: ignore[attr-defined]


def test_the_sqlite_plain_read_gives_what_sqlalchemy_reads(tmp_path: Path) -> None:
    """claim_due, events and subscribers read through the driver on SQLite: the same
    values SQLAlchemy's compiled statement gives (times aware in UTC, JSON decoded,
    booleans as booleans, NULLs as None)."""
    from orchestrator.store import plain
    from orchestrator.store.models import Event, Subscriber

    engine = _world(f"sqlite:///{tmp_path / 'r.db'}")
    trigger = {"event": "viewed", "properties": {"n": 1.5, "tags": ["a"], "none": None}}
    with session(engine) as s, s.begin():  # type: ignore[arg-type]
        repo.update_by_id(s, Journey, CHANGES)
        s.execute(
            Journey.__table__.update()  # type: ignore[attr-defined]
            .where(Journey.__table__.c.id == 2)  # type: ignore[attr-defined]
            .values(trigger=trigger, holdout=True, claim_at=T - timedelta(hours=1))
        )
        s.execute(
            insert(Subscriber.__table__),  # type: ignore[attr-defined]
            [
                {
                    "id": "p1",
                    "timezone": "Asia/Tokyo",
                    "attributes": {"x": [1, "é"]},
                    "tags": ["t"],
                    "status": "active",
                    "paused_until": T,
                    "created_at": T,
                    "updated_at": T,
                },
                {
                    "id": "p2",
                    "timezone": "UTC",
                    "attributes": {},
                    "tags": [],
                    "status": "active",
                    "paused_until": None,
                    "created_at": T,
                    "updated_at": T,
                },
            ],
        )
        s.execute(
            insert(Event.__table__),  # type: ignore[attr-defined]
            [
                {
                    "subscriber_id": "p1",
                    "name": "viewed",
                    "at": T,
                    "properties": {"k": True},
                    "send_id": None,
                },
                {"subscriber_id": "p1", "name": "click", "at": T, "properties": {}, "send_id": 7},
            ],
        )
    journey = Journey.__table__  # type: ignore[attr-defined]
    with session(engine) as s, s.begin():  # type: ignore[arg-type]
        fast = repo.claim_due(s, campaign="c", now=T + timedelta(days=9), limit=10)
        compiled = s.execute(
            select(journey)
            .where(journey.c.claim_at <= T + timedelta(days=9))
            .order_by(journey.c.claim_at, journey.c.id)
        ).all()
        assert [tuple(r) for r in fast] == [
            tuple(repo.aware(v) if isinstance(v, datetime) else v for v in r) for r in compiled
        ]
        assert fast[0].id == 2 and fast[0].trigger == trigger and fast[0].holdout is True
        assert fast[0]._mapping["due_at"] == T.replace(microsecond=0)
        assert fast[0].due_at.tzinfo is UTC
        people = repo.profiles(s, ["p1", "p2", "nobody"])
        assert people["p1"].attributes == {"x": [1, "é"]} and people["p2"].tags == []
        views = repo.subscribers(s, ["p1", "p2"])
        assert views["p1"].paused_until == T and views["p2"].paused_until is None
        events = repo.events_for(s, ["p1"], since=T, until=T)["p1"]
        assert [(e.name, e.at, e.send_id) for e in events] == [("viewed", T, None), ("click", T, 7)]
        assert "properties" not in events[0]._fields  # the engine does not read them
        # more ids than one statement may bind: split, nothing lost
        many = [f"x{i}" for i in range(plain.VARIABLES + 5)] + ["p2"]
        assert set(repo.subscribers(s, many)) == {"p2"}
    engine.dispose()  # type: ignore[attr-defined]


def test_a_failing_driver_statement_raises_sqlalchemys_error(tmp_path: Path) -> None:
    """Statements run on the sqlite3 connection itself still fail as SQLAlchemy's errors
    (the CLI and the tick handle those), and inside the session's transaction."""
    from sqlalchemy.exc import IntegrityError

    engine = _world(f"sqlite:///{tmp_path / 'e.db'}")
    row = {
        "journey_id": 1,
        "step": 1,
        "campaign": "c",
        "node": "a",
        "subscriber_id": "p1",
        "claimed_at": T,
        "outcome": "claimed",
        "attempts": 1,
    }
    with session(engine) as s, s.begin():  # type: ignore[arg-type]
        repo.insert_returning(s, Send, [row], ("id",))
    with (
        pytest.raises(IntegrityError, match="UNIQUE"),
        session(engine) as s,  # type: ignore[arg-type]
        s.begin(),
    ):
        repo.update_by_id(s, Journey, [{"id": 1, "node": "rolled back"}])
        repo.insert_returning(s, Send, [row], ("id",))  # the same (journey, step)
    with engine.connect() as c:  # type: ignore[attr-defined]
        assert c.execute(text("SELECT node FROM journey WHERE id = 1")).scalar() == "a"
        assert c.execute(text("SELECT count(*) FROM send")).scalar() == 1
    engine.dispose()  # type: ignore[attr-defined]


def test_the_next_claim_and_trigger_times_read_alike_on_both_dialects(
    tmp_path: Path, db_url: str
) -> None:
    """What the simulator and the demo ask between virtual ticks: when the next journey is
    due, and the times of trigger events stored since the last look."""
    from orchestrator.store.models import Event, Subscriber

    engine = _world(db_url)
    with session(engine) as s, s.begin():  # type: ignore[arg-type]
        s.execute(
            insert(Subscriber.__table__),
            [{"id": "p1", "timezone": "UTC", "attributes": {}, "tags": []}],
        )  # type: ignore[attr-defined]
        s.execute(
            insert(Event.__table__),  # type: ignore[attr-defined]
            [
                {
                    "subscriber_id": "p1",
                    "name": name,
                    "at": T + timedelta(hours=h),
                    "properties": {},
                }
                for name, h in [("order", 5), ("other", 1), ("order", -3), ("signup", 2)]
            ],
        )
        repo.update_by_id(
            s,
            Journey,
            [{"id": 1, "claim_at": None}, {"id": 3, "claim_at": T - timedelta(minutes=1)}],
        )
    with session(engine) as s:  # type: ignore[arg-type]
        assert repo.next_claim(s, campaign="c") == T - timedelta(minutes=1)
        assert repo.next_claim(s, campaign="nothing") is None
        assert repo.event_times(s, ["order", "signup"], after_id=0) == [
            (1, T + timedelta(hours=5)),
            (3, T - timedelta(hours=3)),
            (4, T + timedelta(hours=2)),
        ]
        assert repo.event_times(s, ["order"], after_id=1) == [(3, T - timedelta(hours=3))]
        assert all(at.tzinfo is not None for _, at in repo.event_times(s, ["order"], after_id=0))
    engine.dispose()  # type: ignore[attr-defined]


def test_every_query_through_the_seam_reads_on_sqlite_what_sqlalchemy_reads(
    tmp_path: Path,
) -> None:
    """`repo.fetch` runs a statement on SQLite through `plain` (compiled once, bound and
    read there): the same rows, in the same order, as SQLAlchemy executing that statement,
    for statements with expanding IN lists, constant IN lists, LIMIT, FOR UPDATE (left
    out on SQLite), JSON and boolean columns and labelled aggregates."""
    from sqlalchemy import bindparam, case, func

    from orchestrator.store import plain
    from orchestrator.store.models import Event

    engine = _world(f"sqlite:///{tmp_path / 'f.db'}")
    journey = Journey.__table__  # type: ignore[attr-defined]
    event = Event.__table__  # type: ignore[attr-defined]
    with session(engine) as s, s.begin():  # type: ignore[arg-type]
        repo.update_by_id(s, Journey, CHANGES)
        s.execute(
            insert(event),
            [
                {"subscriber_id": f"p{i % 3}", "name": n, "at": T + timedelta(minutes=i)}
                | {"properties": {"i": i, "ok": i % 2 == 0}, "send_id": i if i % 4 else None}
                for i, n in enumerate(["viewed", "click", "order", "viewed", "click"] * 3)
            ],
        )
    statements = [
        (
            select(journey)
            .where(journey.c.campaign == bindparam("c"), journey.c.claim_at <= bindparam("now"))
            .order_by(journey.c.claim_at, journey.c.id)
            .limit(bindparam("n"))
            .with_for_update(skip_locked=True),
            {"c": "c", "now": T + timedelta(days=9), "n": 3},
        ),
        (
            select(event)
            .where(
                event.c.subscriber_id.in_(bindparam("ids", expanding=True)),
                event.c.name.in_(("viewed", "click")),
                event.c.at >= bindparam("since"),
            )
            .order_by(event.c.at, event.c.id),
            {"ids": ["p0", "p2", "nobody"], "since": T + timedelta(minutes=2)},
        ),
        (
            select(
                journey.c.subscriber_id,
                func.max(case((journey.c.ended_at.is_(None), 1), else_=0)).label("in_flight"),
                func.max(journey.c.ended_at).label("ended_at"),
                func.max(journey.c.last_send_at),
            )
            .where(journey.c.subscriber_id.in_(bindparam("ids", expanding=True)))
            .group_by(journey.c.subscriber_id)
            .order_by(journey.c.subscriber_id),
            {"ids": ["p0", "p1", "p2", "p3"]},
        ),
    ]
    with session(engine) as s:  # type: ignore[arg-type]
        for stmt, params in statements:
            assert plain.plan(s.connection(), stmt) is not None  # the fast path is taken
            through_seam = repo.fetch(s, stmt, **params)
            compiled = s.connection().execute(stmt, params).all()
            assert through_seam, stmt
            assert [tuple(r) for r in through_seam] == [
                tuple(repo.aware(v) if isinstance(v, datetime) else v for v in r) for r in compiled
            ]
            assert through_seam[0]._mapping.keys() == compiled[0]._mapping.keys()
        # a JSON parameter is not one plain binds: SQLAlchemy runs that statement itself
        by_properties = select(event.c.id).where(event.c.properties == bindparam("p"))
        assert plain.plan(s.connection(), by_properties) is None
        assert repo.fetch(s, by_properties, p={"i": 0, "ok": True}) == list(
            s.connection().execute(by_properties, {"p": {"i": 0, "ok": True}})
        )
    engine.dispose()  # type: ignore[attr-defined]
