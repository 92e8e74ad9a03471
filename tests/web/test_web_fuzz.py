"""schemathesis against the OpenAPI schema of the real app, on a SQLite file and on
PostgreSQL, as the site's backend (with the API key) and as an anonymous browser: no
input makes it answer 5xx, no answer shows a traceback, and a refused request stores
nothing."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from sqlalchemy import text

from orchestrator.app.service import Context, open_context
from orchestrator.config import Config
from orchestrator.push.vapid import VapidKey
from orchestrator.testing.fakes import RecordingDelivery
from orchestrator.web import create_app
from tests.helpers import ROOT

pytestmark = pytest.mark.slow
API_KEY = "fuzz-key-" + "x" * 32


@pytest.fixture
def api_schema(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> Any:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    graphs = ROOT / "campaign_graphs"
    VapidKey.generate().save(tmp / "vapid.pem")
    config = Config(
        db=db_url,
        graphs=graphs,
        api_key=API_KEY,
        vapid_private_key=str(tmp / "vapid.pem"),
    )
    ctx = open_context(config, delivery=RecordingDelivery())
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(ctx)), ctx


TABLES = ("subscriber", "push_subscription", "event", "journey", "send")


def _rows(ctx: Context) -> dict[str, int]:
    with ctx.engine.connect() as c:
        return {t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def test_no_generated_request_gets_a_server_error(api_schema: Any) -> None:
    """Every operation in the schema, 60 generated requests each (bodies, paths, queries),
    every other one without the API key (a browser)."""
    api_schema, ctx = api_schema
    tried: list[str] = []
    seen: Counter[int] = Counter()
    calls = [0]
    for result in api_schema.get_all_operations():
        operation = result.ok()
        tried.append(f"{operation.method.upper()} {operation.path}")

        @given(case=operation.as_strategy())
        @settings(
            max_examples=60,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            before = _rows(ctx)
            calls[0] += 1
            headers = {"authorization": f"Bearer {API_KEY}"} if calls[0] % 2 else {}
            response = case.call(headers=headers)
            seen[response.status_code] += 1
            assert response.status_code < 500, (case.method, case.path, response.text[:500])
            assert "Traceback" not in response.text
            if response.status_code >= 400:
                assert _rows(ctx) == before, (case.method, case.path, response.text[:300])

        run()
    assert {"POST /api/subscriptions", "POST /api/events", "GET /c/{token}"} <= set(tried)
    assert seen[422] > 0 and seen[404] > 0 and sum(seen.values()) > 300, seen
