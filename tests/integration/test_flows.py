"""The Prefect tick flow with Prefect's test harness: batches as task runs, artifacts with counts."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.app.service import Context, import_subscribers, open_context
from orchestrator.config import Config
from orchestrator.testing.fakes import RecordingDelivery
from tests.conftest import flowchart_pictures, subscriber_line
from tests.helpers import ROOT, TICK_CAMPAIGN


@pytest.fixture(scope="module")
def harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "launch.yaml").write_text(textwrap.dedent(TICK_CAMPAIGN), encoding="utf-8")
    context = open_context(
        Config(db=f"sqlite:///{tmp_path / 'c.db'}", graphs=graphs), delivery=RecordingDelivery()
    )
    people = tmp_path / "people.jsonl"
    people.write_text(
        "\n".join(subscriber_line(f"p{i}", plan="pro", name=f"P{i}") for i in range(25)) + "\n"
    )
    import_subscribers(context, people)
    yield context
    context.engine.dispose()


def test_tick_flow_sends_in_batches_and_publishes_the_flowchart_and_funnel(
    harness: None, ctx: Context
) -> None:
    import asyncio

    from prefect.client.orchestration import get_client

    from flows.tick import artifact_key, run_tick

    summary = run_tick(campaign="launch", now="2026-01-05T09:00:00Z", batch_size=10, ctx=ctx)
    assert (
        summary["sends"] == 25
        and summary["batches"] == 3
        and summary["outcomes"] == {"delivered": 25}
    )

    async def artifacts() -> dict[str, str]:
        async with get_client() as client:
            found = await client.read_artifacts()
        return {a.key: a.data for a in found if a.key}

    stored = asyncio.run(artifacts())
    chart = stored[artifact_key("launch", "flowchart")]
    pictures = flowchart_pictures(chart)
    assert set(pictures) == {"pros", "carts"}  # one picture per sub-campaign
    nodes = {n: texts for picture in pictures.values() for n, texts in picture.items()}
    assert set(nodes) == {"hello", "again", "thanks", "nudge"}
    assert "sent 25" in nodes["hello"]
    assert "<details><summary>Mermaid source</summary><pre><code>flowchart TB" in chart
    table = stored[artifact_key("launch", "funnel")]
    rows = json.loads(table) if isinstance(table, str) else table
    hello = next(r for r in rows if r["node"] == "hello")
    assert hello["sent"] == 25 and hello["delivered"] == 25


def test_the_demo_walks_every_example_to_the_end_with_real_pushes(
    harness: None, tmp_path: Path
) -> None:
    from flows.demo import demo_flow

    root = ROOT
    result = demo_flow(
        workdir=str(tmp_path / "demo"), graphs=str(root / "campaign_graphs"), per_campaign=25
    )
    funnels = result["funnels"]
    assert set(funnels) == {p.stem for p in (root / "campaign_graphs").glob("*.yaml")}
    delivered = 0
    for campaign, figures in funnels.items():
        assert set(figures["journeys"]) <= {"ended"}, f"{campaign} has journeys in flight"
        assert sum(figures["exits"].values()) == figures["journeys"].get("ended", 0)
        delivered += figures["sends"].get("delivered", 0)
        sent = sum(m.get("sent", 0) for m in figures["nodes"].values())
        assert figures["sends"].get("delivered", 0) == sent, campaign
    assert delivered > 0 and result["receiver"]["delivered"] == delivered
    assert Path(result["report"]).exists()
