"""The command line end to end on a SQLite file: import, events, tick, status, segments, migrate."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.push.vapid import VapidKey
from orchestrator.testing.receiver import Receiver
from tests.helpers import TICK_CAMPAIGN

runner = CliRunner()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def env(tmp_path: Path, receiver: Receiver) -> dict[str, str]:
    """A working directory as a user would set it up: campaigns, a VAPID key, a local push service."""
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "launch.yaml").write_text(textwrap.dedent(TICK_CAMPAIGN), encoding="utf-8")
    people = tmp_path / "people.jsonl"
    lines = [
        json.dumps({"id": sid, "attributes": attrs, "subscription": receiver.subscribe()})
        for sid, attrs in (
            ("ann", {"plan": "pro", "name": "Ann"}),
            ("bob", {"plan": "pro", "name": "Bob"}),
            ("cat", {"plan": "free"}),
        )
    ]
    people.write_text("\n".join([*lines, "{oops"]) + "\n")
    key = tmp_path / "vapid.pem"
    VapidKey.generate().save(key)
    return {
        "CAMPAIGN_DB": f"sqlite:///{tmp_path / 'c.db'}",
        "CAMPAIGN_GRAPHS": str(graphs),
        "CAMPAIGN_VAPID_PRIVATE_KEY": str(key),
        "CAMPAIGN_VAPID_SUBJECT": "mailto:ops@example.com",
        "CAMPAIGN_PUSH_ALLOWED_ORIGINS": receiver.origin,
        "PEOPLE": str(people),
    }


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_import_tick_status_round_trip_with_real_pushes(
    env: dict[str, str], receiver: Receiver
) -> None:
    code, out, err = run(env, "subscribers", "import", env["PEOPLE"])
    assert code == 1 and "3 added" in out and ":4: not JSON" in err
    code, out, _ = run(env, "tick", "--now", "2026-01-05T09:00:00Z", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["campaigns"][0]["sends"] == 2 and report["refused"] == {}
    titles = sorted(json.loads(m.payload)["title"] for m in receiver.received())
    assert titles == ["Hi Ann", "Hi Bob"]
    code, out, _ = run(env, "status", "launch", "--json")
    figures = json.loads(out)
    assert figures["nodes"]["hello"]["sent"] == 2 and figures["sends"] == {"delivered": 2}


def test_events_add_refuses_an_unknown_subscriber_and_records_a_known_one(
    env: dict[str, str],
) -> None:
    run(env, "subscribers", "import", env["PEOPLE"])
    code, _, err = run(env, "events", "add", "--subscriber", "zed", "--event", "signup")
    assert code == 1 and "unknown subscriber: zed" in err
    code, out, _ = run(
        env,
        "events",
        "add",
        "--subscriber",
        "ann",
        "--event",
        "cart_abandoned",
        "--prop",
        "product=Lamp",
        "--prop",
        "qty=2",
    )
    assert code == 0 and "recorded event" in out
    code, _, err = run(
        env, "events", "add", "--subscriber", "ann", "--event", "x", "--prop", "novalue"
    )
    assert code == 1 and "KEY=VALUE" in err


def test_segments_export_and_overlap(env: dict[str, str], tmp_path: Path) -> None:
    run(env, "subscribers", "import", env["PEOPLE"])
    out_file = tmp_path / "pros.jsonl"
    code, _, err = run(env, "segments", "export", "pros", "--format", "jsonl", "-o", str(out_file))
    assert code == 0 and "2 members of pros" in err
    assert [json.loads(line)["id"] for line in out_file.read_text().splitlines()] == ["ann", "bob"]
    code, out, _ = run(env, "segments", "overlap", "launch", "--json")
    assert json.loads(out) == {"segments": ["pros"], "counts": [[2]]}
    code, _, err = run(env, "segments", "export", "ghosts")
    assert code == 1 and "'ghosts' is not defined" in err


def test_migrate_dry_run_changes_nothing(env: dict[str, str]) -> None:
    run(env, "subscribers", "import", env["PEOPLE"])
    run(env, "tick", "--now", "2026-01-05T09:00:00Z")
    path = Path(env["CAMPAIGN_GRAPHS"]) / "launch.yaml"
    path.write_text(
        path.read_text().replace("start: hello", "start: hi").replace("      hello:", "      hi:")
    )
    code, out, _ = run(env, "migrate", "launch", "--dry-run")
    assert code == 0 and out.count("end   ") == 2 and "would end 2" in out
    code, out, _ = run(env, "migrate", "launch", "--dry-run", "--json")
    assert len(json.loads(out)["ends"]) == 2
    code, out, _ = run(env, "migrate", "launch")
    assert "ended 2" in out
    code, out, _ = run(env, "migrate", "launch", "--dry-run")
    assert "would move 0 journeys" in out and "would end 0" in out


def test_tick_without_a_vapid_subject_fails_before_claiming_anything(env: dict[str, str]) -> None:
    run(env, "subscribers", "import", env["PEOPLE"])
    code, _, err = run(
        {**env, "CAMPAIGN_VAPID_SUBJECT": ""}, "tick", "--now", "2026-01-05T09:00:00Z"
    )
    assert code == 1 and "CAMPAIGN_VAPID_SUBJECT is not set" in err
    code, out, _ = run(env, "status", "launch", "--json")
    assert json.loads(out)["sends"] == {}


def test_vapid_init_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    target = tmp_path / "k.pem"
    code, out, _ = run({}, "vapid", "init", "--path", str(target))
    assert code == 0 and len(out.strip()) == 87  # 65-byte point, base64url
    assert (target.stat().st_mode & 0o777) == 0o600
    assert "PRIVATE KEY" not in out
    code, _, err = run({}, "vapid", "init", "--path", str(target))
    assert code == 1 and "refusing to overwrite" in err


def test_tick_refuses_a_broken_campaign_with_exit_1(env: dict[str, str]) -> None:
    path = Path(env["CAMPAIGN_GRAPHS"]) / "launch.yaml"
    path.write_text(path.read_text().replace("to: again", "to: agian"))
    code, _, err = run(env, "tick", "--now", "2026-01-05T09:00:00Z")
    assert code == 1 and "refused" in err and "names no node" in err


@pytest.mark.slow
def test_a_bad_setting_or_an_unreachable_database_is_one_line_not_a_traceback(
    tmp_path: Path,
) -> None:
    """Through the installed `campaign` script (its `main` turns our errors into exit 1)."""
    import os
    import subprocess
    import sys

    script = str(Path(sys.executable).parent / "campaign")
    base = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    cases = {
        "CAMPAIGN_DELIVERY_PROCESSES=two": (
            {"CAMPAIGN_DELIVERY_PROCESSES": "two"},
            "error: CAMPAIGN_DELIVERY_PROCESSES='two': expected a whole number",
        ),
        "no database server": (
            {"CAMPAIGN_DB": "postgresql+psycopg://nobody@127.0.0.1:1/none"},
            "error: the database failed (connection failed",
        ),
    }
    for name, (extra, expected) in cases.items():
        done = subprocess.run(
            [script, "status", "launch"],
            env={**base, **extra},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1, name
        assert done.stderr.startswith(expected), (name, done.stderr)
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_pause_resume_and_stop_from_the_command_line(env: dict[str, str]) -> None:
    run(env, "subscribers", "import", env["PEOPLE"])
    code, out, _ = run(env, "pause", "launch", "--reason", "copy review", "--by", "ana")
    assert code == 0 and "launch: paused by ana (copy review)" in out
    code, _, err = run(env, "pause", "launch")
    assert code == 1 and "already paused" in err and "Traceback" not in err
    code, out, err = run(env, "tick", "--now", "2026-01-05T09:00:00Z")
    assert code == 0 and "paused; nothing enrolled or sent" in out + err, out + err
    code, out, _ = run(env, "resume", "launch", "--json")
    assert code == 0 and json.loads(out)["state"] == "running"
    run(env, "tick", "--now", "2026-01-05T09:05:00Z")
    code, out, _ = run(env, "stop", "launch", "--reason", "wrong offer")
    assert code == 0 and "journeys ended (stopped)" in out
    code, _, err = run(env, "stop", "nope")
    assert code == 1 and "no such campaign" in err
