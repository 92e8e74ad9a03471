"""Against a real `prefect server start` on loopback: `campaign deploy` registers one scheduled
deployment per campaign, with its cron, timezone, concurrency limit and tags."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("prefect-home")
    port = _port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{api}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("prefect server did not start within 120 s")
        yield api
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_campaign_deploy_registers_a_scheduled_deployment_per_campaign(
    server: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PREFECT_API_URL": server,
        "CAMPAIGN_GRAPHS": str(ROOT / "campaign_graphs"),
        "CAMPAIGN_DB": f"sqlite:///{tmp_path / 'c.db'}",
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "campaign"), "deploy", "--json"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    expected = {f"tick-{p.stem}" for p in (ROOT / "campaign_graphs").glob("*.yaml")}

    async def read() -> list[dict[str, object]]:
        async with httpx.AsyncClient(base_url=server) as client:
            found = (await client.post("/deployments/filter", json={})).json()
        return list(found)

    found = {d["name"]: d for d in asyncio.run(read())}
    assert set(found) == expected
    cloud = found["tick-cloud-storage-launch"]
    assert cloud["parameters"] == {"campaign": "cloud-storage-launch"}
    assert set(cloud["tags"]) == {"campaign-flow", "campaign:cloud-storage-launch"}
    (schedule,) = cloud["schedules"]
    assert schedule["schedule"]["cron"] == "*/5 * * * *" and schedule["active"]
    assert schedule["schedule"]["timezone"] == "America/New_York"
    limit = cloud.get("global_concurrency_limit") or {}
    assert cloud.get("concurrency_limit") == 1 or limit.get("limit") == 1
