"""`campaign bench-scale`: import, enrolment and ticks at scale, on SQLite or PostgreSQL.

Prints `{"subscribers", "import_s", "enroll_s", "idle_tick_s", "tick_sends_per_s",
"peak_rss_mb", "db"}` (interfaces spec). Sends go to a counting sink, so the
figure is the tick path itself: claim, advance, render, ledger, outcome write.

Then `campaign simulate` of an example campaign (`simulate_*`: journey steps per
second on the virtual clock, the issue's other speed figure), after the peak RSS
is read, so that figure stays the import's and enrolment's.
"""

from __future__ import annotations

import base64
import json
import os
import random
import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from orchestrator.app.enrolment import enrol
from orchestrator.app.service import Context, import_subscribers, load_current, open_context
from orchestrator.app.ticking import run_batch
from orchestrator.config import Config
from orchestrator.delivery import Outcome, SendOutcome, SendRequest
from orchestrator.sim.simulate import default_workers, simulate

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ORIGIN = "https://push.bench.invalid"
CAMPAIGN = """
campaign: bench
title: Bench
goal: signup
settings: {spacing: 1h, window: 1d, followup_cap: 1}
segments:
  everyone: {match: {attr: plan, exists: true}}
subcampaigns:
  all:
    segment: everyone
    start: hello
    nodes:
      hello:
        notification:
          title: "Hello {{ subscriber.attributes.first_name | default('there') }}"
          body: "A short body of a realistic length for a push notification."
          url: https://example.com/hello
        on_no_convert: {to: again, delay: 1h}
      again: {notification: {title: Again, url: https://example.com/again}}
"""


@dataclass
class CountingDelivery:
    sent: int = 0

    def deliver(self, requests: Sequence[SendRequest]) -> list[SendOutcome]:
        self.sent += len(requests)
        return [SendOutcome(r.send_id, Outcome.DELIVERED, 201) for r in requests]


def _keys(count: int) -> list[str]:
    out = []
    for _ in range(count):
        point = (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        )
        out.append(base64.urlsafe_b64encode(point).decode().rstrip("="))
    return out


def write_population(path: Path, count: int, *, seed: int = 0) -> None:
    rng = random.Random(seed)
    keys = _keys(32)
    auth = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            line = {
                "id": f"b{i:08d}",
                "timezone": "UTC",
                "attributes": {
                    "plan": rng.choice(["free", "pro"]),
                    "first_name": "Ana",
                    "company_size": rng.randint(1, 500),
                },
                "tags": ["bench"],
                "subscription": {
                    "endpoint": f"{ORIGIN}/s/{i}",
                    "keys": {"p256dh": keys[i % len(keys)], "auth": auth},
                },
            }
            out.write(json.dumps(line) + "\n")


def fresh_world(
    folder: Path, *, name: str, campaign: str, subscribers: int, db_url: str | None
) -> tuple[Context, CountingDelivery, Path, str]:
    """In `folder`: a graphs folder holding `campaign` as NAME.yaml, a population file of
    `subscribers`, and a context over `db_url` (default a fresh SQLite file there) that
    delivers to a counting sink. Returns the context, the sink, the population file and
    the database URL."""
    graphs = folder / "graphs"
    graphs.mkdir()
    (graphs / f"{name}.yaml").write_text(campaign, encoding="utf-8")
    people = folder / "people.jsonl"
    write_population(people, subscribers)
    url = db_url or f"sqlite:///{folder / 'bench.db'}"
    delivery = CountingDelivery()
    ctx = open_context(
        Config(db=url, graphs=graphs, push_allowed_origins=(ORIGIN,)), delivery=delivery
    )
    return ctx, delivery, people, url


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def bench_scale(
    *,
    subscribers: int,
    db_url: str | None = None,
    batch_size: int = 1000,
    simulate_path: Path | None = None,
    simulate_subscribers: int = 0,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="campaign-bench-") as tmp:
        ctx, delivery, people, url = fresh_world(
            Path(tmp), name="bench", campaign=CAMPAIGN, subscribers=subscribers, db_url=db_url
        )
        import_s, report = _timed(lambda: import_subscribers(ctx, people, batch_size=5000))
        assert not report.bad, report.bad[:3]
        load = load_current(ctx, ctx.config.graphs / "bench.yaml")
        assert (
            load.loaded is not None
            and load.loaded.campaign is not None
            and load.version_id is not None
        )
        campaign, version = load.loaded.campaign, load.version_id
        enroll_s, (enrolled, _) = _timed(
            lambda: enrol(ctx, campaign=campaign, version_id=version, now=T0)
        )

        def full_tick(now: datetime) -> None:
            enrol(ctx, campaign=campaign, version_id=version, now=now)
            while (
                run_batch(ctx, campaign=campaign.campaign, now=now, batch_size=batch_size)
                is not None
            ):
                pass

        tick_s, _ = _timed(lambda: full_tick(T0))
        sends = delivery.sent
        idle_s, _ = _timed(lambda: full_tick(T0 + timedelta(minutes=5)))
        ctx.engine.dispose()
    figures = {
        "subscribers": subscribers,
        "import_s": round(import_s, 2),
        "enroll_s": round(enroll_s, 2),
        "enrolled": enrolled,
        "idle_tick_s": round(idle_s, 3),
        "tick_sends": sends,
        "tick_s": round(tick_s, 2),
        "tick_sends_per_s": round(sends / tick_s, 1) if tick_s else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "db": "postgresql" if url.startswith("postgresql") else "sqlite",
    }
    if simulate_path is not None and simulate_subscribers:
        figures.update(_simulate(simulate_path, simulate_subscribers))
    return figures


def _simulate(path: Path, subscribers: int) -> dict[str, Any]:
    result = simulate(path, subscribers=subscribers, start=T0, resolution=timedelta(hours=1))
    return {
        "simulate_campaign": result.campaign,
        "simulate_subscribers": subscribers,
        "simulate_workers": default_workers(subscribers),
        "simulate_steps": result.steps,
        "simulate_s": round(result.seconds, 2),
        "simulate_steps_per_s": round(result.steps / result.seconds, 1) if result.seconds else None,
    }
