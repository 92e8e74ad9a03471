"""`campaign bench`: delivery throughput against a local push service answering after `latency_ms`.

Measured in one run, against the same receiver process:
- naive: a plain loop of `pywebpush.webpush()` (what a user would write first);
- bare: the fastest encrypt + POST path, no database (our push client on ready requests);
- pipeline: the full tick (claim due journeys, render, encrypt, send, record the outcome),
  with this machine's default delivery processes (`orchestrator.push.processes`) and
  again with everything in one process;
- with Prefect (`flows/bench.py`): a whole tick (enrol, then the batches) called directly
  against the same tick run as the `campaign-tick` flow, and the flow's idle tick.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx

from orchestrator.app.enrolment import enrol
from orchestrator.app.service import (
    CampaignLoad,
    Context,
    import_subscribers,
    load_current,
    open_context,
)
from orchestrator.app.ticking import run_batches
from orchestrator.bench.naive import naive_sends_per_s
from orchestrator.bench.scale import CAMPAIGN
from orchestrator.config import Config
from orchestrator.delivery import SendRequest, Target
from orchestrator.push.client import PushClient
from orchestrator.push.setup import WebPushDelivery, default_processes
from orchestrator.push.vapid import TokenCache, VapidKey

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SUBJECT = "mailto:bench@example.com"
PAYLOAD = json.dumps(
    {
        "title": "Back up the whole team for $5 a seat",
        "body": "Never lose a file again.",
        "data": {"url": "http://127.0.0.1:8000/c/" + "x" * 30},
    }
).encode()


class PrefectLeg(Protocol):
    """Runs the tick directly and through the Prefect flow on worlds from `prepare`."""

    def __call__(
        self,
        prepare: Callable[[str], tuple[Context, CampaignLoad, Callable[[], None]]],
        *,
        now: datetime,
        batch_size: int,
        expected: int,
    ) -> dict[str, Any]: ...


class ReceiverProcess:
    """The local push service as a separate process (it must not share our core's GIL)."""

    def __init__(self, latency_ms: float, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator.testing.receiver",
                "--latency-ms",
                str(latency_ms),
                "--decrypt-every",
                "20",  # every 20th message decrypted: proof, not the bottleneck
                *extra,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.origin = self.proc.stdout.readline().strip()
        if not self.origin.startswith("http://"):
            self.close()
            raise RuntimeError("the local push service did not start")

    def subscriptions(self, count: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        with httpx.Client(base_url=self.origin, timeout=300) as client:
            while len(out) < count:
                chunk = min(5000, count - len(out))
                answer = client.post("/subscriptions", json={"count": chunk})
                answer.raise_for_status()
                out.extend(answer.json())
        return out

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.origin}/stats", timeout=10).json())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _bare(subs: list[dict[str, Any]], key: VapidKey, origin: str) -> float:
    client = PushClient(tokens=TokenCache(key=key, subject=SUBJECT), allowed_origins=(origin,))
    requests = [
        SendRequest(
            send_id=i,
            journey_id=i,
            step=1,
            campaign="bench",
            node="hello",
            subscriber_id=f"b{i}",
            payload=PAYLOAD,
            targets=(Target(s["endpoint"], s["keys"]["p256dh"], s["keys"]["auth"]),),
            ttl=timedelta(hours=1),
            urgency="normal",
            topic=f"t{i}",
        )
        for i, s in enumerate(subs)
    ]
    try:
        client.deliver(requests[:50])  # warm up: connections, token
        started = time.perf_counter()
        for i in range(0, len(requests), 1000):
            outcomes = client.deliver(requests[i : i + 1000])
            assert all(o.outcome == "delivered" for o in outcomes), outcomes[:3]
        return len(requests) / (time.perf_counter() - started)
    finally:
        client.close()


def _rss_mb() -> float:
    """This process's resident memory now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def world(
    subs: list[dict[str, Any]], key_path: Path, origin: str, folder: Path
) -> tuple[Context, CampaignLoad, Callable[[], None]]:
    """A fresh database in `folder` with one subscriber per subscription, the bench campaign loaded."""
    graphs = folder / "graphs"
    graphs.mkdir(parents=True)
    (graphs / "bench.yaml").write_text(CAMPAIGN, encoding="utf-8")
    people = folder / "people.jsonl"
    with people.open("w") as out:
        for i, sub in enumerate(subs):
            out.write(
                json.dumps(
                    {
                        "id": f"b{i:07d}",
                        "attributes": {"plan": "pro", "first_name": "Ana"},
                        "subscription": sub,
                    }
                )
                + "\n"
            )
    config = Config(
        db=f"sqlite:///{folder / 'bench.db'}",
        graphs=graphs,
        vapid_private_key=str(key_path),
        vapid_subject=SUBJECT,
        push_allowed_origins=(origin,),
    )
    delivery = WebPushDelivery(config)
    ctx = open_context(config, delivery=delivery)
    import_subscribers(ctx, people)
    load = load_current(ctx, graphs / "bench.yaml")
    assert load.loaded is not None and load.loaded.campaign is not None

    def close() -> None:
        delivery.close()
        ctx.engine.dispose()

    return ctx, load, close


def _pipeline(
    subs: list[dict[str, Any]],
    key_path: Path,
    origin: str,
    folder: Path,
    batch_size: int,
    *,
    processes: int | None,
) -> tuple[float, float]:
    """The full tick; `processes`: delivery processes (None: the default for this machine,
    0: encryption and HTTP in this process too). Returns (sends/s, the most this process's
    resident memory grew while sending: flat, whatever the number of batches)."""
    ctx, load, close = world(subs, key_path, origin, folder)
    try:
        assert load.loaded is not None and load.loaded.campaign is not None
        assert load.version_id is not None
        assert isinstance(ctx.delivery, WebPushDelivery)
        ctx.delivery.processes = processes
        ctx.delivery.start()  # like the bare leg's warm-up: children started, key loaded
        enrol(ctx, campaign=load.loaded.campaign, version_id=load.version_id, now=T0)
        sent = 0
        base = highest = _rss_mb()
        started = time.perf_counter()
        for batch in run_batches(ctx, campaign="bench", now=T0, batch_size=batch_size):
            sent += batch.outcomes.get("delivered", 0)
            highest = max(highest, _rss_mb())
        elapsed = time.perf_counter() - started
        assert sent == len(subs), f"{sent} of {len(subs)} delivered"
        return sent / elapsed, highest - base
    finally:
        close()


def bench(
    *,
    sends: int = 5000,
    latency_ms: float = 25.0,
    naive_sends: int = 200,
    batch_size: int = 1000,
    prefect_leg: PrefectLeg | None = None,
) -> dict[str, Any]:
    """The figures of `campaign bench`; with `prefect_leg` (the CLI passes
    `flows.bench.prefect_leg`: Prefect stays in `flows/`), the tick through the flow too."""
    receiver = ReceiverProcess(latency_ms)
    try:
        subs = receiver.subscriptions(sends)
        with tempfile.TemporaryDirectory(prefix="campaign-bench-") as tmp:
            folder = Path(tmp)
            key = VapidKey.generate()
            key_path = folder / "vapid.pem"
            key.save(key_path)
            naive = naive_sends_per_s(
                subs[: min(naive_sends, sends)],
                key_pem=str(key_path),
                subject=SUBJECT,
                payload=PAYLOAD,
            )
            bare = _bare(subs, key, receiver.origin)
            processes = default_processes()
            pipeline, growth = _pipeline(
                subs, key_path, receiver.origin, folder / "pipeline", batch_size, processes=None
            )
            one_process, _ = _pipeline(
                subs, key_path, receiver.origin, folder / "one-process", batch_size, processes=0
            )
            orchestrated: dict[str, Any] = {}
            if prefect_leg is not None:
                orchestrated = prefect_leg(
                    lambda name: world(subs, key_path, receiver.origin, folder / name),
                    now=T0,
                    batch_size=batch_size,
                    expected=sends,
                )
        stats = receiver.stats()
    finally:
        receiver.close()
    return {
        "sends": sends,
        "latency_ms": latency_ms,
        "pipeline_sends_per_s": round(pipeline, 1),
        "naive_sends_per_s": round(naive, 1),
        "speedup_vs_naive": round(pipeline / naive, 1),
        "bare_sends_per_s": round(bare, 1),
        "pipeline_vs_bare": round(pipeline / bare, 2),
        "delivery_processes": processes,
        "pipeline_one_process_sends_per_s": round(one_process, 1),
        "one_process_vs_bare": round(one_process / bare, 2),
        **orchestrated,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "pipeline_rss_growth_mb": round(growth, 1),
        "receiver": {k: stats.get(k) for k in ("delivered", "decrypted")},
        "cpus": os.cpu_count(),
    }
