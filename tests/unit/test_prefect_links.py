"""The dashboard's links into the Prefect UI (orchestrator.web.prefect_ui) against fake
Prefect APIs that answer well, badly, slowly or not at all; the real server's answers
are checked in test_prefect_server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import httpx
import pytest

from orchestrator.config import Config, load_config
from orchestrator.errors import ConfigurationError
from orchestrator.web import prefect_ui
from orchestrator.web.prefect_ui import PrefectDirectory

DEPLOYMENT = str(uuid.uuid4())
RUN = str(uuid.uuid4())
API = "http://prefect.internal:4200/api"


def _run(**over: object) -> dict[str, object]:
    return {
        "id": RUN,
        "name": "brave-otter",
        "state_type": "COMPLETED",
        "state": {"name": "Completed", "type": "COMPLETED"},
        "start_time": "2026-01-05T09:00:01+00:00",
        **over,
    }


def _prefect(
    runs: object = None, *, deployment: object = None, seen: list[httpx.Request] | None = None
) -> httpx.MockTransport:
    """A Prefect API with one deployment, `campaign-tick/tick-launch`."""

    def answer(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if request.url.path == "/api/deployments/name/campaign-tick/tick-launch":
            return httpx.Response(
                200, json={"id": DEPLOYMENT} if deployment is None else deployment
            )
        if request.url.path.startswith("/api/deployments/name/"):
            return httpx.Response(404, json={"detail": "Deployment not found"})
        if request.url.path == "/api/flow_runs/filter":
            body = json.loads(request.content)
            assert body["deployments"] == {"id": {"any_": [DEPLOYMENT]}}
            assert body["sort"] == "START_TIME_DESC" and body["limit"] == prefect_ui.LATEST_RUNS
            return httpx.Response(200, json=[_run()] if runs is None else runs)
        return httpx.Response(404)

    return httpx.MockTransport(answer)


def _directory(transport: httpx.BaseTransport, **config: object) -> PrefectDirectory:
    settings: dict[str, object] = {"prefect_api_url": API, **config}
    return PrefectDirectory(Config(**settings), transport=transport)  # type: ignore[arg-type]


def test_a_campaign_links_its_deployment_and_latest_runs() -> None:
    links = _directory(_prefect()).links("launch")
    assert links is not None and links.problem is None
    assert links.deployment == f"http://prefect.internal:4200/deployments/deployment/{DEPLOYMENT}"
    (run,) = links.runs
    assert run.url == f"http://prefect.internal:4200/runs/flow-run/{RUN}"
    assert (run.name, run.state, run.state_type) == ("brave-otter", "Completed", "COMPLETED")
    assert run.started is not None and run.started.hour == 9


def test_the_ui_address_is_its_own_setting_or_the_apis_without_api() -> None:
    links = _directory(_prefect(), prefect_ui_url="https://flows.example.com").links("launch")
    assert links is not None and links.deployment is not None
    assert links.deployment.startswith("https://flows.example.com/deployments/deployment/")
    assert PrefectDirectory(Config()).links("launch") is None  # no Prefect configured
    only_ui = PrefectDirectory(Config(prefect_ui_url="https://flows.example.com")).links("x")
    assert only_ui is not None and only_ui.deployment is None
    assert only_ui.deployments == "https://flows.example.com/deployments"
    assert only_ui.problem is not None and "PREFECT_API_URL" in only_ui.problem


def test_a_campaign_without_a_deployment_says_how_to_make_one() -> None:
    links = _directory(_prefect()).links("other")
    assert links is not None and links.deployment is None
    assert links.problem is not None and "campaign deploy" in links.problem
    assert links.deployments == "http://prefect.internal:4200/deployments"


def test_answers_are_cached_per_campaign_failures_too() -> None:
    seen: list[httpx.Request] = []
    directory = _directory(_prefect(seen=seen))
    for _ in range(3):
        directory.links("launch")
        directory.links("other")
    assert len(seen) == 3  # launch: deployment + runs; other: deployment


def _failing(answer: Callable[[httpx.Request], httpx.Response]) -> PrefectDirectory:
    return _directory(httpx.MockTransport(answer))


def _timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("slow", request=request)


def _refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused", request=request)


@pytest.mark.parametrize(
    ("directory", "expected"),
    [
        (_failing(_timeout), "no answer within 2 s"),
        (_failing(_refused), "ConnectError"),
        (_failing(lambda r: httpx.Response(500, text="boom")), "answered 500"),
        (_failing(lambda r: httpx.Response(200, text="<html>")), "not JSON"),
        (
            _failing(lambda r: httpx.Response(200, content=b"[" + b"1," * 200_000 + b"1]")),
            "more than",
        ),
        (_directory(_prefect(deployment={"id": "../../admin"})), "is not a UUID"),
        (_directory(_prefect(deployment=["not", "a", "record"])), "is not a UUID"),
    ],
)
def test_a_prefect_api_that_answers_badly_leaves_a_plain_link_and_the_reason(
    directory: PrefectDirectory, expected: str
) -> None:
    links = directory.links("launch")
    assert links is not None and links.deployment is None and links.runs == []
    assert links.deployments == "http://prefect.internal:4200/deployments"
    assert links.problem is not None and expected in links.problem, links.problem


def test_runs_that_are_not_what_prefect_documents_are_left_out() -> None:
    odd = [
        _run(id="javascript:alert(1)"),
        "a string",
        _run(name=None, state=None, state_type=None, start_time="yesterday"),
        _run(name="x" * 10_000),
    ]
    links = _directory(_prefect(runs=odd)).links("launch")
    assert links is not None and links.deployment is not None
    assert [r.name[:10] for r in links.runs] == ["(unnamed)", "x" * 10]
    assert links.runs[0].state == "unknown" and links.runs[0].started is None
    assert len(links.runs[1].name) == 120
    weird = _directory(_prefect(runs={"detail": "?"})).links("launch")
    assert weird is not None and weird.deployment is not None and weird.runs == []
    assert weird.problem is not None and "not a list" in weird.problem


def test_credentials_are_sent_as_prefect_expects() -> None:
    seen: list[httpx.Request] = []
    _directory(_prefect(seen=seen), prefect_api_key="pnu_secret").links("launch")
    assert seen[0].headers["authorization"] == "Bearer pnu_secret"
    seen.clear()
    _directory(_prefect(seen=seen), prefect_api_auth_string="admin:pass").links("launch")
    assert seen[0].headers["authorization"] == "Basic YWRtaW46cGFzcw=="


@pytest.mark.parametrize(
    "value",
    ["127.0.0.1:4200/api", "ftp://h/api", "http:///api", "http://h/api?x=1", "javascript:x"],
)
def test_a_prefect_address_that_is_not_one_is_refused_at_start(value: str) -> None:
    with pytest.raises(ConfigurationError, match="PREFECT_API_URL"):
        load_config({"PREFECT_API_URL": value}, dotenv=None)


def test_prefect_addresses_lose_their_trailing_slash() -> None:
    config = load_config(
        {"PREFECT_API_URL": "http://h:4200/api/", "PREFECT_UI_URL": "http://h:4200/"}, dotenv=None
    )
    assert (config.prefect_api_url, config.prefect_ui_url) == ("http://h:4200/api", "http://h:4200")
