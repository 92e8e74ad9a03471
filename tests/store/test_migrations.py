"""Alembic migrations: a fresh database reaches the models' schema; an old one upgrades keeping its data."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlmodel import SQLModel

from orchestrator.store import db, migrate


def test_fresh_database_upgrades_to_exactly_the_models_schema(db_url: str) -> None:
    engine = db.make_engine(db_url)
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.head()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
    engine.dispose()


def test_upgrading_an_existing_database_keeps_its_journeys_and_backfills_claim_at(
    db_url: str,
) -> None:
    engine = db.make_engine(db_url)
    migrate.upgrade(engine, "0001")
    due = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO campaign_version (id, campaign, content_hash, source, created_at) VALUES (1, 'c', 'h', '{}', :t)"
            ),
            {"t": due},
        )
        conn.execute(
            text(
                "INSERT INTO journey (id, campaign, version_id, subcampaign, subscriber_id, node, phase, due_at, entered_at,"
                " followups, pending_followup, sends, step, holdout) VALUES"
                " (1, 'c', 1, 's', 'ann', 'a', 'arrive', :due, :due, 0, false, 0, 0, false)"
            ),
            {"due": due},
        )
    migrate.upgrade(engine)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT subscriber_id, due_at, claim_at FROM journey")).one()
        assert row[0] == "ann"
        assert row[1] == row[2]
        assert conn.execute(text("SELECT count(*) FROM node_stat")).scalar() == 0
    engine.dispose()


def test_upgrading_a_sqlite_database_heals_json_that_holds_nan(tmp_path: Path) -> None:
    """NaN stored as JSON by an older version fails every SQLite JSON function over its row;
    the upgrade rewrites such values with null and keeps everything else."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate.upgrade(engine, "0006")
    at = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO subscriber (id, timezone, attributes, tags, status, created_at, updated_at)"
                " VALUES ('ann', 'UTC', :a, '[]', 'active', :t, :t)"
            ),
            {"a": '{"score": NaN, "plan": "pro", "deep": [Infinity, 1]}', "t": at},
        )
        conn.execute(
            text(
                "INSERT INTO event (subscriber_id, name, at, properties, recorded_at)"
                " VALUES ('ann', 'viewed', :t, :p, :t)"
            ),
            {"p": '{"price": -Infinity}', "t": at},
        )
    migrate.upgrade(engine)
    with engine.connect() as conn:
        attributes = conn.execute(text("SELECT attributes FROM subscriber")).scalar_one()
        properties = conn.execute(text("SELECT properties FROM event")).scalar_one()
        plan = conn.execute(text("SELECT json_extract(attributes, '$.plan') FROM subscriber"))
        assert plan.scalar_one() == "pro"
    assert json.loads(attributes) == {"score": None, "plan": "pro", "deep": [None, 1]}
    assert json.loads(properties) == {"price": None}
    engine.dispose()
