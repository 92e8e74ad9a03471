"""The web service's limits on real parts: a group commit where one record is refused by
the database (SQLite file and PostgreSQL), and oversized bodies against a real
`campaign serve` process whose memory is read from /proc."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from orchestrator.app.service import open_context
from orchestrator.app.visitors import Subscribed, SubscribeRequest
from orchestrator.bench.web import wait_until_serving
from orchestrator.config import Config
from orchestrator.language.records import PushSubscriptionRecord
from orchestrator.store.models import Subscriber
from orchestrator.testing.fakes import RecordingDelivery
from orchestrator.testing.ports import free_port
from orchestrator.web.common import make_writers
from orchestrator.web.writer import StoreRefused
from tests.conftest import p256dh_key
from tests.helpers import API_KEY, ORIGIN, WEB_CAMPAIGN


def _request(i: int, attributes: dict[str, object]) -> SubscribeRequest:
    return SubscribeRequest(
        subscription=PushSubscriptionRecord(
            f"{ORIGIN}/fcm/send/g{i}", p256dh_key(), "MDEyMzQ1Njc4OWFiY2RlZg"
        ),
        id=f"g-{i}",
        attributes=attributes,
        backend=True,
    )


def test_a_record_the_database_refuses_fails_only_its_own_request(
    tmp_path: Path, db_url: str
) -> None:
    """30 good subscriptions and 3 that pass no database (NaN; on PostgreSQL also a NUL,
    which jsonb refuses), handed to the group writer at once as concurrent requests are:
    the 30 are stored and answered, each bad one gets StoreRefused (a 422) on its own."""
    ctx = open_context(Config(db=db_url, graphs=tmp_path), delivery=RecordingDelivery())
    bad = {5: {"score": float("nan")}, 17: {"score": float("inf")}}
    if db_url.startswith("postgresql"):
        bad[29] = {"note": "a\x00b"}
    requests = [_request(i, bad.get(i, {"n": i})) for i in range(33)]
    writers = make_writers(ctx)

    async def run() -> list[object]:
        try:
            return await asyncio.gather(
                *(writers.subscriptions.submit(r) for r in requests), return_exceptions=True
            )
        finally:
            await writers.subscriptions.close()

    results = asyncio.run(run())
    for i, result in enumerate(results):
        if i in bad:
            assert isinstance(result, StoreRefused), (i, result)
            assert "the database refused this record" in str(result)
        else:
            assert isinstance(result, Subscribed) and result.id == f"g-{i}", (i, result)
    with ctx.session() as s:
        stored = s.execute(select(func.count()).select_from(Subscriber)).scalar_one()
    assert stored == 33 - len(bad)
    ctx.engine.dispose()


# ------------------------------------------------------------------ a real server


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _send(port: int, head: bytes, chunk: bytes, total: int) -> tuple[bytes, int]:
    """Send the head, then up to `total` bytes of body as fast as the server takes them;
    return the server's answer and how much body it took before answering."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head)
        conn.settimeout(0.5)
        try:
            while sent < total:
                conn.sendall(chunk)
                sent += len(chunk)
        except (TimeoutError, OSError):
            pass  # the server stopped reading (or closed): it has answered
        conn.settimeout(10)
        answer = b""
        while b"\r\n\r\n" not in answer:
            try:
                data = conn.recv(65536)
            except OSError:  # reset by the server once it answered: what came is the answer
                break
            if not data:
                break
            answer += data
    return answer, sent


@pytest.mark.slow
def test_an_800_mb_body_never_fills_the_servers_memory(server: tuple[int, int]) -> None:
    port, pid = server
    baseline = _peak_rss_mb(pid)
    size = 800 * 1024 * 1024
    chunk = b"x" * (1024 * 1024)
    declared = (
        f"POST /api/subscriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    answer, taken = _send(port, declared, chunk, size)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # chunked: no length declared, counted while it streams
    head = (
        "POST /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {API_KEY}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    chunked_answer, chunked_taken = _send(port, head, framed, size)
    assert chunked_answer.startswith(b"HTTP/1.1 413"), chunked_answer[:200]
    peak = _peak_rss_mb(pid)
    assert peak - baseline < 100, (baseline, peak, taken, chunked_taken)
    assert chunked_taken < 64 * 1024 * 1024, chunked_taken  # it stopped reading early


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A real `campaign serve` on a SQLite file: (port, pid)."""
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "launch.yaml").write_text(textwrap.dedent(WEB_CAMPAIGN), encoding="utf-8")
    port = free_port()
    env = {
        **os.environ,
        "CAMPAIGN_DB": f"sqlite:///{tmp_path / 'c.db'}",
        "CAMPAIGN_GRAPHS": str(graphs),
        "CAMPAIGN_API_KEY": API_KEY,
        "CAMPAIGN_DASHBOARD_PASSWORD": "right-password",
    }
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "campaign"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}")
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_a_huge_request_head_is_refused_with_431(server: tuple[int, int]) -> None:
    port, pid = server
    baseline = _peak_rss_mb(pid)
    head = b"GET /thanks HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
    answer, taken = _send(port, head, b"x" * 65536, 200 * 1024 * 1024)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(10_000))
    answer, _ = _send(port, b"GET /thanks HTTP/1.1\r\nHost: 127.0.0.1\r\n" + many + b"\r\n", b"", 0)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:  # still serving
        conn.sendall(b"GET /thanks HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert conn.recv(100).startswith(b"HTTP/1.1 200")
    assert _peak_rss_mb(pid) - baseline < 50, (baseline, _peak_rss_mb(pid), taken)


@pytest.mark.slow
def test_concurrent_log_in_attempts_pass_the_throttle_no_more_than_five_times(
    server: tuple[int, int],
) -> None:
    """40 connections send their head, wait, then their guess at once: each guess is
    judged after its form is read, so at most five of one client's are checked."""
    port, _ = server
    body = b"password=wrong-guess"
    head = (
        b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-"
        b"urlencoded\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    conns = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(40)]
    for conn in conns:
        conn.sendall(head)
    time.sleep(1)
    for conn in conns:
        conn.sendall(body)
    statuses = []
    for conn in conns:
        answer = b""
        while b"\r\n" not in answer:
            data = conn.recv(4096)
            if not data:
                break
            answer += data
        statuses.append(answer.split(b" ", 2)[1] if answer else b"?")
        conn.close()
    assert statuses.count(b"303") <= 5 and statuses.count(b"429") >= 35, statuses


@pytest.mark.slow
def test_an_event_id_stored_by_another_process_meanwhile_is_a_repeat_not_an_error(
    tmp_path: Path, pg_url: str
) -> None:
    """Two workers storing the same event id: the second's insert waits on the unique
    index until the first commits, fails, and is tried again, when it sees the stored
    event. Its other event is stored; nothing is refused."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    from orchestrator.app.service import StoredEvents
    from orchestrator.language.records import EventRecord, SubscriberRecord
    from orchestrator.store import repo

    ctx = open_context(Config(db=pg_url, graphs=tmp_path), delivery=RecordingDelivery())
    with ctx.session() as s, s.begin():
        repo.upsert_subscribers(s, [SubscriberRecord("ann")])
    now = datetime.now(UTC)
    other = ctx.engine.connect()
    held = other.begin()
    first = other.execute(
        text(
            "INSERT INTO event (subscriber_id, name, at, properties, client_id, recorded_at)"
            " VALUES ('ann', 'purchase', :t, '{}', 'order-1', :t) RETURNING id"
        ),
        {"t": now},
    ).scalar_one()
    writers = make_writers(ctx)
    request = [
        EventRecord("ann", "purchase", now, {}, client_id="order-1"),
        EventRecord("ann", "purchase", now, {}, client_id="order-2"),
    ]

    async def run() -> tuple[bool, object]:
        try:
            waiting = asyncio.ensure_future(writers.events.submit(request))
            await asyncio.sleep(1.0)  # our insert now waits on the other's uncommitted row
            waited = not waiting.done()
            await asyncio.to_thread(held.commit)
            return waited, await waiting
        finally:
            await writers.events.close()

    try:
        waited, result = asyncio.run(run())
    finally:
        other.close()  # rolls back if the commit was never reached
    assert waited
    assert isinstance(result, StoredEvents), result
    assert result.repeated == 1 and result.ids[0] == first
    with ctx.session() as s:
        stored = s.execute(text("SELECT client_id FROM event ORDER BY id")).scalars().all()
    assert stored == ["order-1", "order-2"]
    ctx.engine.dispose()
