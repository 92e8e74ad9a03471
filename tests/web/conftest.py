"""The web tests' world: the real app over a fresh database, with the recording delivery."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from orchestrator.app.service import Context, open_context
from orchestrator.config import Config
from orchestrator.push.vapid import VapidKey
from orchestrator.testing.fakes import RecordingDelivery
from orchestrator.web import create_app
from tests.helpers import API_KEY, PASSWORD, WEB_CAMPAIGN


@dataclass
class World:
    client: TestClient
    ctx: Context
    delivery: RecordingDelivery


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "launch.yaml").write_text(textwrap.dedent(WEB_CAMPAIGN), encoding="utf-8")
    key_path = tmp_path / "vapid.pem"
    VapidKey.generate().save(key_path)
    config = Config(
        db=db_url,
        graphs=graphs,
        api_key=API_KEY,
        dashboard_password=PASSWORD,
        vapid_private_key=str(key_path),
        public_url="https://push.example.com",
    )
    delivery = RecordingDelivery()
    ctx = open_context(config, delivery=delivery)
    with TestClient(
        create_app(ctx), base_url="https://testserver", follow_redirects=False
    ) as client:
        yield World(client, ctx, delivery)
    ctx.engine.dispose()
