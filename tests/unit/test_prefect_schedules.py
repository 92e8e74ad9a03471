"""Pausing and resuming a campaign's Prefect deployment with the campaign
(`PrefectDirectory.switch_schedule`, the `ScheduleSwitch` of `control.act`) against fake
Prefect APIs and a closed port; a real server's answers are checked in test_prefect_server."""

from __future__ import annotations

import json
import socket
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from orchestrator.app import control
from orchestrator.app.service import Context, open_context
from orchestrator.cli import app
from orchestrator.config import Config
from orchestrator.testing.fakes import RecordingDelivery
from orchestrator.testing.ports import free_port
from orchestrator.web import prefect_ui
from orchestrator.web.prefect_ui import PrefectDirectory
from tests.helpers import T0, TICK_CAMPAIGN

DEPLOYMENT = str(uuid.uuid4())
API = "http://prefect.internal:4200/api"


def _prefect(
    seen: list[httpx.Request], *, post_status: int = 200, paused: object = False
) -> httpx.MockTransport:
    """A Prefect API with one deployment, `campaign-tick/tick-launch`."""

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if path == "/api/deployments/name/campaign-tick/tick-launch":
            return httpx.Response(200, json={"id": DEPLOYMENT, "paused": paused})
        if path.startswith("/api/deployments/name/"):
            return httpx.Response(404, json={"detail": "Deployment not found"})
        if path in (
            f"/api/deployments/{DEPLOYMENT}/pause_deployment",
            f"/api/deployments/{DEPLOYMENT}/resume_deployment",
        ):
            assert request.method == "POST"
            return httpx.Response(post_status, json=None)
        if path == "/api/flow_runs/filter":
            return httpx.Response(200, json=[])
        return httpx.Response(404)

    return httpx.MockTransport(answer)


def _directory(transport: httpx.BaseTransport | None, **config: object) -> PrefectDirectory:
    settings: dict[str, object] = {"prefect_api_url": API, **config}
    return PrefectDirectory(Config(**settings), transport=transport)  # type: ignore[arg-type]


def test_pausing_and_resuming_call_prefects_pause_and_resume_deployment() -> None:
    seen: list[httpx.Request] = []
    directory = _directory(_prefect(seen), prefect_api_key="pnu_secret")
    assert directory.switch_schedule("launch", False) == "paused"
    assert [(r.method, r.url.path) for r in seen] == [
        ("GET", "/api/deployments/name/campaign-tick/tick-launch"),
        ("POST", f"/api/deployments/{DEPLOYMENT}/pause_deployment"),
    ]
    assert all(r.headers["authorization"] == "Bearer pnu_secret" for r in seen)
    seen.clear()
    assert directory.switch_schedule("launch", True) == "resumed"
    assert seen[-1].url.path == f"/api/deployments/{DEPLOYMENT}/resume_deployment"


def test_a_campaign_without_a_deployment_is_not_deployed() -> None:
    seen: list[httpx.Request] = []
    assert _directory(_prefect(seen)).switch_schedule("other", False) == "not deployed"
    assert [r.method for r in seen] == ["GET"]  # nothing to pause
    gone = _directory(_prefect([], post_status=404))  # deleted between the two requests
    assert gone.switch_schedule("launch", False) == "not deployed"


def _refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused", request=request)


def _slow(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("slow", request=request)


@pytest.mark.parametrize(
    ("directory", "expected"),
    [
        (_directory(httpx.MockTransport(_refused)), f"unreachable: {API}: ConnectError"),
        (_directory(httpx.MockTransport(_slow)), f"unreachable: {API}: no answer within 4 s"),
        (
            _directory(httpx.MockTransport(lambda r: httpx.Response(500, text="boom"))),
            f"unreachable: {API}: GET /deployments/name/campaign-tick/tick-launch answered 500",
        ),
        (
            _directory(_prefect([], post_status=503)),
            f"unreachable: {API}: POST /deployments/{DEPLOYMENT}/pause_deployment answered 503",
        ),
        (
            _directory(httpx.MockTransport(lambda r: httpx.Response(200, json={"id": "../x"}))),
            f"unreachable: {API}: id '../x' is not a UUID",
        ),
        (PrefectDirectory(Config()), "unreachable: PREFECT_API_URL is not set"),
    ],
)
def test_a_prefect_api_that_does_not_answer_usefully_is_unreachable(
    directory: PrefectDirectory, expected: str
) -> None:
    assert directory.switch_schedule("launch", False) == expected


def test_a_server_that_never_answers_costs_the_budget_and_no_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A port that accepts connections and never answers: the switch gives up after
    SWITCH_SECONDS (here shortened), never hanging the command that asked."""
    monkeypatch.setattr(prefect_ui, "SWITCH_SECONDS", 0.5)
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)  # connections complete in the kernel; nothing reads them
        port = listening.getsockname()[1]
        directory = PrefectDirectory(Config(prefect_api_url=f"http://127.0.0.1:{port}/api"))
        started = time.monotonic()
        said = directory.switch_schedule("launch", False)
        took = time.monotonic() - started
    assert said == f"unreachable: http://127.0.0.1:{port}/api: no answer within 0.5 s"
    assert took < 2.0, took


def test_the_page_reads_the_deployment_again_after_a_switch() -> None:
    seen: list[httpx.Request] = []
    directory = _directory(_prefect(seen, paused=True))
    links = directory.links("launch")
    assert links is not None and links.paused is True
    directory.links("launch")
    reads = len(seen)
    directory.switch_schedule("launch", True)
    directory.links("launch")  # not the cached answer from before the switch
    assert len(seen) == reads + 2 + 2


# ------------------------------------------------------- the action stands, Prefect or not


@pytest.fixture
def graphs(tmp_path: Path) -> Path:
    folder = tmp_path / "graphs"
    folder.mkdir()
    (folder / "launch.yaml").write_text(textwrap.dedent(TICK_CAMPAIGN), encoding="utf-8")
    return folder


@pytest.fixture
def ctx(tmp_path: Path, graphs: Path) -> Iterator[Context]:
    ctx = open_context(
        Config(db=f"sqlite:///{tmp_path / 'c.db'}", graphs=graphs), delivery=RecordingDelivery()
    )
    yield ctx
    ctx.engine.dispose()


def test_an_unreachable_prefect_leaves_the_action_recorded_and_says_so(ctx: Context) -> None:
    closed = f"http://127.0.0.1:{free_port()}/api"
    switch = PrefectDirectory(Config(prefect_api_url=closed)).switch_schedule
    done, _ = control.act(ctx, "launch", "pause", by="ana", reason="", now=T0, schedule=switch)
    assert done.state == "paused"
    assert done.schedule == f"unreachable: {closed}: ConnectError"
    assert control.state(ctx, "launch").state == "paused"  # the record stands
    assert control.history(ctx, "launch")[0]["action"] == "pause"


def test_the_switch_is_told_whether_the_campaign_runs(ctx: Context) -> None:
    told: list[tuple[str, bool]] = []

    def switch(campaign: str, running: bool) -> str:
        told.append((campaign, running))
        return "paused" if not running else "resumed"

    for action in ("pause", "resume", "stop", "resume"):
        done, _ = control.act(ctx, "launch", action, by="ana", reason="", now=T0, schedule=switch)
        assert done.schedule == ("resumed" if action == "resume" else "paused")
    assert told == [("launch", False), ("launch", True), ("launch", False), ("launch", True)]
    with pytest.raises(control.ControlError):  # refused: nothing recorded, nothing switched
        control.act(ctx, "launch", "resume", by="ana", reason="", now=T0, schedule=switch)
    assert len(told) == 4
    plain, _ = control.act(ctx, "launch", "pause", by="ana", reason="", now=T0)
    assert plain.schedule is None  # no switch given: nothing said


def test_the_command_line_says_what_became_of_the_schedule(tmp_path: Path, graphs: Path) -> None:
    env = {
        "CAMPAIGN_DB": f"sqlite:///{tmp_path / 'cli.db'}",
        "CAMPAIGN_GRAPHS": str(graphs),
        "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api",
    }
    runner = CliRunner()
    done = runner.invoke(app, ["pause", "launch", "--by", "ana"], env=env)
    assert done.exit_code == 0, done.output
    assert "launch: paused by ana" in done.stdout
    assert f"launch: schedule: unreachable: {env['PREFECT_API_URL']}: ConnectError" in done.stdout
    done = runner.invoke(app, ["stop", "launch", "--json"], env=env)
    assert done.exit_code == 0, done.output
    said = json.loads(done.stdout)
    assert said["state"] == "stopped" and said["schedule"].startswith("unreachable: ")


def test_a_held_campaign_is_deployed_paused(graphs: Path) -> None:
    from flows.deploy import deployments

    (running,), _ = deployments(graphs)
    assert running.paused is False
    asked: list[str] = []

    def held(campaign: str) -> str | None:
        asked.append(campaign)
        return "stopped"

    (stopped,), _ = deployments(graphs, held=held)
    assert stopped.paused is True and asked == ["launch"]
