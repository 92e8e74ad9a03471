"""`campaign bench-web`: POST /api/subscriptions and POST /api/events held for a while.

`campaign serve` runs as its own process (uvicorn, `--workers`) on a SQLite
file; a loopback load generator (aiohttp, `--concurrency` connections) sends
new subscriptions for `seconds`, then single events for `seconds`. Afterwards
the database is counted: every 201/202 must be exactly one stored row (nothing
lost, nothing doubled), and nothing else may be stored.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from orchestrator.app.service import open_context
from orchestrator.config import Config
from orchestrator.push.vapid import VapidKey
from orchestrator.store import repo
from orchestrator.testing.ports import free_port

API_KEY = "bench-" + "k" * 40


def wait_until_serving(base: str, *, seconds: float = 60.0) -> None:
    """Return once `campaign serve` at `base` answers (its /sw.js); RuntimeError after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            answered = httpx.get(f"{base}/sw.js", timeout=1).status_code == 200
        except httpx.HTTPError:
            answered = False  # not listening yet
        if answered:
            return
        time.sleep(0.25)
    raise RuntimeError(f"campaign serve at {base} did not answer within {seconds:.0f} s")


def _p256dh() -> str:
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return base64.urlsafe_b64encode(point).decode().rstrip("=")


async def _hammer(
    url: str, bodies: Any, *, seconds: float, concurrency: int, headers: dict[str, str]
) -> tuple[Counter[int], list[float], list[str]]:
    """Send the bodies `bodies()` yields for `seconds`; status counts, latencies, ids that got 2xx."""
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    accepted: list[str] = []
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                key, body = next(bodies)
                started = time.perf_counter()
                try:
                    async with session.post(url, data=body) as response:
                        await response.read()
                        status = response.status
                except aiohttp.ClientError:
                    status = 0
                latencies.append(time.perf_counter() - started)
                statuses[status] += 1
                if 200 <= status < 300:
                    accepted.append(key)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses, latencies, accepted


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def bench_web(*, seconds: float = 60.0, concurrency: int = 64, workers: int = 1) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="campaign-bench-web-") as tmp:
        folder = Path(tmp)
        graphs = folder / "graphs"
        graphs.mkdir()
        VapidKey.generate().save(folder / "vapid.pem")
        db = f"sqlite:///{folder / 'web.db'}"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "CAMPAIGN_DB": db,
            "CAMPAIGN_GRAPHS": str(graphs),
            "CAMPAIGN_VAPID_PRIVATE_KEY": str(folder / "vapid.pem"),
            "CAMPAIGN_API_KEY": API_KEY,
            "CAMPAIGN_SECRET": secrets.token_urlsafe(32),
        }
        campaign = str(Path(sys.executable).parent / "campaign")
        ready = open_context(Config(db=db, graphs=graphs))  # the schema, before workers race for it
        ready.engine.dispose()
        server = subprocess.Popen(
            [campaign, "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until_serving(base)
            keys = [_p256dh() for _ in range(500)]
            auth = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")

            def subscriptions() -> Any:
                n = 0
                while True:
                    n += 1
                    sid = f"b{n:08d}"
                    body = {
                        "id": sid,
                        "timezone": "Europe/Berlin",
                        "attributes": {"plan": "pro"},
                        "subscription": {
                            "endpoint": f"https://fcm.googleapis.com/fcm/send/bench-{n}",
                            "keys": {"p256dh": keys[n % len(keys)], "auth": auth},
                        },
                    }
                    yield sid, json.dumps(body)

            json_headers = {"content-type": "application/json"}
            backend = {**json_headers, "authorization": f"Bearer {API_KEY}"}
            subs = asyncio.run(
                _hammer(  # as the site's backend: it names its own ids and sets the plan
                    f"{base}/api/subscriptions",
                    subscriptions(),
                    seconds=seconds,
                    concurrency=concurrency,
                    headers=backend,
                )
            )
            ids = subs[2]

            def events() -> Any:
                n = 0
                while True:
                    n += 1
                    body = {
                        "subscriber": ids[n % len(ids)],
                        "name": "bench",
                        "properties": {"n": n},
                    }
                    yield str(n), json.dumps(body)

            evs = asyncio.run(
                _hammer(
                    f"{base}/api/events",
                    events(),
                    seconds=seconds,
                    concurrency=concurrency,
                    headers=backend,
                )
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
        after = open_context(Config(db=db, graphs=graphs))
        with after.session() as s:
            stored = repo.stored_counts(s, event_name="bench")
        after.engine.dispose()
        stored_subscribers, stored_subscriptions = stored["subscribers"], stored["subscriptions"]
        stored_events, distinct_events = stored["events"], stored["distinct_events"]
    sub_ok, ev_ok = len(subs[2]), len(evs[2])
    return {
        "seconds": seconds,
        "concurrency": concurrency,
        "workers": workers,
        "subscriptions_per_s": round(sub_ok / seconds, 1),
        "subscriptions_p50_ms": round(_percentile(subs[1], 0.5), 1),
        "subscriptions_p99_ms": round(_percentile(subs[1], 0.99), 1),
        "subscriptions_statuses": {str(k): v for k, v in sorted(subs[0].items())},
        "events_per_s": round(ev_ok / seconds, 1),
        "events_p50_ms": round(_percentile(evs[1], 0.5), 1),
        "events_p99_ms": round(_percentile(evs[1], 0.99), 1),
        "events_statuses": {str(k): v for k, v in sorted(evs[0].items())},
        "stored_subscribers": stored_subscribers,
        "stored_subscriptions": stored_subscriptions,
        "stored_events": stored_events,
        "lost_or_doubled": (
            (stored_subscribers or 0) != sub_ok
            or (stored_subscriptions or 0) != sub_ok
            or (stored_events or 0) != ev_ok
            or (distinct_events or 0) != ev_ok
        ),
        "cpus": os.cpu_count(),
    }
