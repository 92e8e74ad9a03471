"""Property tests: random and mutated bodies and lines never produce a 500, a traceback or a
lost good record (hypothesis, against the real app and the real import on SQLite)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select, text

from orchestrator.app.service import Context, import_subscribers, open_context
from orchestrator.app.ticking import tick
from orchestrator.app.visitors import profile_url
from orchestrator.config import Config
from orchestrator.language.records import RecordError, check_json, loads
from orchestrator.push.vapid import VapidKey
from orchestrator.store.models import Subscriber
from orchestrator.testing.fakes import RecordingDelivery
from orchestrator.web import create_app
from tests.helpers import API_KEY, PASSWORD, WEB_CAMPAIGN, subscription

pytestmark = pytest.mark.slow

SETTINGS = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)

# JSON-ish values with every hostile ingredient the validator must catch
hostile_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfff", "\u2028", "é" * 40, "ключ"]),
)
hostile_number = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1, 1e308]),
)
hostile_value = st.recursive(
    st.one_of(st.none(), st.booleans(), hostile_number, hostile_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(hostile_text, inner, max_size=4)
    ),
    max_leaves=25,
)


def _text_of(value: Any) -> str:
    """JSON text of any value, NaN and lone surrogates included (as a sloppy client sends)."""
    return json.dumps(value, ensure_ascii=True, allow_nan=True)


@given(hostile_value)
@SETTINGS
def test_the_validator_accepts_exactly_what_both_databases_can_store(value: Any) -> None:
    """Whatever `check_json` accepts encodes as strict JSON (no NaN, valid UTF-8, ≤ 2^53):
    what SQLite's JSON functions and PostgreSQL's jsonb accept."""
    try:
        check_json(value, "v", max_bytes=16_384)
    except RecordError as exc:
        assert str(exc).startswith("v")
        return
    encoded = json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    assert b"\\u0000" not in encoded
    assert loads(encoded, "v", max_depth=17) == value


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Context]]:
    tmp: Path = tmp_path_factory.mktemp("props")
    graphs = tmp / "graphs"
    graphs.mkdir()
    (graphs / "launch.yaml").write_text(textwrap.dedent(WEB_CAMPAIGN), encoding="utf-8")
    VapidKey.generate().save(tmp / "vapid.pem")
    config = Config(
        db=f"sqlite:///{tmp / 'p.db'}",
        graphs=graphs,
        api_key=API_KEY,
        dashboard_password=PASSWORD,
        vapid_private_key=str(tmp / "vapid.pem"),
        public_url="https://push.example.com",
    )
    ctx = open_context(config, delivery=RecordingDelivery())
    with TestClient(create_app(ctx), base_url="https://push.example.com") as client:
        yield client, ctx
    ctx.engine.dispose()


def _rows(ctx: Context) -> tuple[int, ...]:
    with ctx.engine.connect() as c:
        return tuple(
            c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("subscriber", "push_subscription", "event")
        )


FIELDS = st.sampled_from(
    ["id", "id_hash", "timezone", "attributes", "tags", "subscription", "endpoint", "x"]
)


@given(
    extra=st.dictionaries(FIELDS, hostile_value, max_size=4),
    backend=st.booleans(),
    cut=st.integers(min_value=0, max_value=400),
)
@SETTINGS
def test_random_subscription_bodies_never_get_a_server_error(
    app: tuple[TestClient, Context], extra: dict[str, Any], backend: bool, cut: int
) -> None:
    client, ctx = app
    body = {"subscription": subscription("p"), **extra}
    raw = _text_of(body)
    headers = {"content-type": "application/json"}
    if backend:
        headers["authorization"] = f"Bearer {API_KEY}"
    for content in (raw, raw[: len(raw) - cut]):  # whole, and truncated
        before = _rows(ctx)
        answer = client.post(
            "/api/subscriptions", content=content.encode("utf-8", "surrogatepass"), headers=headers
        )
        assert answer.status_code < 500, answer.text
        assert "Traceback" not in answer.text
        if answer.status_code >= 400:
            assert _rows(ctx) == before, answer.text


@given(
    events=st.lists(
        st.fixed_dictionaries(
            {"subscriber": st.sampled_from(["ann", "ann\n", "nobody"]), "name": hostile_text},
            optional={
                "properties": hostile_value,
                "at": st.one_of(hostile_text, st.datetimes().map(lambda d: d.isoformat())),
                "id": hostile_text,
                "send": hostile_number,
            },
        ),
        max_size=4,
    )
)
@SETTINGS
def test_random_event_bodies_never_get_a_server_error(
    app: tuple[TestClient, Context], events: list[dict[str, Any]]
) -> None:
    client, ctx = app
    client.post(
        "/api/subscriptions",
        json={"id": "ann", "subscription": subscription("ann")},
        headers={"authorization": f"Bearer {API_KEY}"},
    )
    before = _rows(ctx)
    answer = client.post(
        "/api/events",
        content=_text_of(events).encode("utf-8", "surrogatepass"),
        headers={"authorization": f"Bearer {API_KEY}", "content-type": "application/json"},
    )
    assert answer.status_code < 500, answer.text
    assert "Traceback" not in answer.text
    if answer.status_code >= 400:
        assert _rows(ctx) == before


def test_what_the_random_requests_stored_poisons_neither_a_tick_nor_the_dashboard(
    app: tuple[TestClient, Context],
) -> None:
    """Runs after the random requests above (same database): a tick over everything they
    stored, the dashboard and every profile page answer normally."""
    client, ctx = app
    report = tick(ctx, now=datetime.now(UTC))
    assert not report.refused
    assert client.post("/login", data={"password": PASSWORD}).status_code < 400
    for path in ("/", "/campaigns/launch"):
        assert client.get(path).status_code == 200, path
    with ctx.session() as s:
        ids = list(s.execute(select(Subscriber.id)).scalars())
    assert ids
    for sid in ids[:50]:
        link = profile_url(ctx, sid, now=datetime.now(UTC))
        assert client.get(link.removeprefix("https://push.example.com")).status_code == 200


@given(
    bad=st.lists(
        st.one_of(
            hostile_value.map(_text_of),
            st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
            st.builds(lambda v: _text_of({"id": "x", "attributes": {"a": v}}), hostile_value),
        ),
        min_size=1,
        max_size=8,
    )
)
@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_no_bad_import_line_loses_a_good_one(
    tmp_path_factory: pytest.TempPathFactory, bad: list[str]
) -> None:
    """Good lines interleaved with random ones: every good line is stored, every line is
    either stored or reported, and the import itself never fails."""
    tmp = tmp_path_factory.mktemp("imp")
    lines: list[bytes] = []
    good = []
    for i, junk in enumerate(bad):
        good.append(f"keep-{i}")
        lines.append(json.dumps({"id": f"keep-{i}", "attributes": {"n": i}}).encode())
        lines.append(junk.replace("\n", " ").encode("utf-8", "surrogatepass"))
    path = tmp / "people.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    ctx = open_context(
        Config(db=f"sqlite:///{tmp / 'i.db'}", graphs=tmp), delivery=RecordingDelivery()
    )
    try:
        report = import_subscribers(ctx, path)
        with ctx.session() as s:
            stored = set(s.execute(select(Subscriber.id)).scalars())
        assert set(good) <= stored
        nonblank = sum(1 for line in lines if line.strip())
        assert report.added + report.changed + report.unchanged + len(report.bad) == nonblank
    finally:
        ctx.engine.dispose()
