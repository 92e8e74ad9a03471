"""Integration with an independent Web Push implementation: npm's `web-push-testing`.

Subscribe there, import the subscription, tick a campaign, read back the
notification it decrypted; expire the subscription there and see the next send
prune it and end the journey.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from orchestrator.app.service import import_subscribers, open_context
from orchestrator.app.ticking import tick
from orchestrator.config import Config
from orchestrator.push.setup import WebPushDelivery
from orchestrator.push.vapid import VapidKey
from orchestrator.store.models import Journey, PushSubscription
from orchestrator.testing.ports import free_port
from tests.helpers import ROOT, T0, TICK_CAMPAIGN

SERVER = ROOT / "node_modules" / "web-push-testing" / "src" / "bin" / "server.js"


@pytest.fixture
def service() -> Iterator[str]:
    node = shutil.which("node")
    if node is None or not SERVER.exists():
        reason = "web-push-testing is not installed (make node: needs Node 20 and npm)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    port = free_port()
    proc = subprocess.Popen(
        [node, str(SERVER), str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    origin = f"http://localhost:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.post(f"{origin}/status", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("web-push-testing did not start")
        yield origin
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_tick_reaches_web_push_testing_and_a_later_send_prunes_the_expired_subscription(
    service: str, tmp_path: Path
) -> None:
    key = VapidKey.generate()
    key_path = tmp_path / "vapid.pem"
    key.save(key_path)
    created = httpx.post(
        f"{service}/subscribe",
        json={"userVisibleOnly": "true", "applicationServerKey": key.public_key_b64()},
    ).json()["data"]
    client_hash = created.pop("clientHash")
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "launch.yaml").write_text(textwrap.dedent(TICK_CAMPAIGN), encoding="utf-8")
    people = tmp_path / "people.jsonl"
    people.write_text(
        json.dumps(
            {"id": "ann", "attributes": {"plan": "pro", "name": "Ann"}, "subscription": created}
        )
    )
    config = Config(
        db=f"sqlite:///{tmp_path / 'c.db'}",
        graphs=graphs,
        vapid_private_key=str(key_path),
        vapid_subject="mailto:ops@example.com",
        push_allowed_origins=(service,),
    )
    delivery = WebPushDelivery(config)
    ctx = open_context(config, delivery=delivery)
    try:
        assert import_subscribers(ctx, people).bad == []
        report = tick(ctx, now=T0)
        assert report.campaigns[0].outcomes == {"delivered": 1}
        got = httpx.post(f"{service}/get-notifications", json={"clientHash": client_hash}).json()[
            "data"
        ]
        (message,) = got["messages"]
        notification = json.loads(message)
        assert notification["title"] == "Hi Ann" and notification["body"] == "Try it"
        assert notification["data"]["url"].startswith(config.public_url + "/c/")

        assert httpx.post(f"{service}/expire-subscription/{client_hash}").status_code == 200
        report = tick(ctx, now=T0 + timedelta(days=1, hours=1))  # the no-convert follow-up is due
        assert report.campaigns[0].outcomes == {"gone": 1}
        tick(ctx, now=T0 + timedelta(days=1, hours=1, minutes=5))
        with ctx.session() as s:
            assert s.execute(select(PushSubscription)).first() is None
            (journey,) = s.execute(select(Journey)).scalars()
        assert journey.exit_reason == "subscription_gone"
    finally:
        delivery.close()
        ctx.engine.dispose()
