"""The campaign page's pause, resume and stop buttons also pause and resume the campaign's
Prefect deployment, and the answer says what became of it; an unreachable Prefect leaves
the action recorded."""

from __future__ import annotations

import uuid

import httpx

from orchestrator.app import control
from orchestrator.config import Config
from orchestrator.testing.ports import free_port
from orchestrator.web.dashboard import PREFECT_KEY
from orchestrator.web.prefect_ui import PrefectDirectory
from tests.helpers import PASSWORD
from tests.web.conftest import World

DEPLOYMENT = str(uuid.uuid4())


def _prefect(paused: list[bool]) -> httpx.MockTransport:
    """A Prefect API with the deployment `campaign-tick/tick-launch`, paused or not."""

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/deployments/name/campaign-tick/tick-launch":
            return httpx.Response(200, json={"id": DEPLOYMENT, "paused": paused[-1]})
        if path == f"/api/deployments/{DEPLOYMENT}/pause_deployment":
            paused.append(True)
            return httpx.Response(200, json=None)
        if path == f"/api/deployments/{DEPLOYMENT}/resume_deployment":
            paused.append(False)
            return httpx.Response(200, json=None)
        if path == "/api/flow_runs/filter":
            return httpx.Response(200, json=[])
        return httpx.Response(404)

    return httpx.MockTransport(answer)


def _use(world: World, directory: PrefectDirectory) -> None:
    setattr(world.client.app.state, PREFECT_KEY, directory)  # type: ignore[attr-defined]
    assert world.client.post("/login", data={"password": PASSWORD}).status_code < 400


def test_the_buttons_pause_and_resume_the_deployment_and_the_page_says_so(world: World) -> None:
    paused = [False]
    config = Config(prefect_api_url="http://prefect.internal:4200/api")
    _use(world, PrefectDirectory(config, transport=_prefect(paused)))
    client = world.client
    page = client.get("/campaigns/launch").text
    assert "(paused in Prefect)" not in page
    done = client.post("/campaigns/launch/control", data={"action": "pause"})
    assert done.status_code == 303 and paused == [False, True]
    assert done.headers["location"] == "/campaigns/launch?schedule=paused#control"
    page = client.get(done.headers["location"]).text
    assert "Its Prefect deployment is paused" in page and "(paused in Prefect)" in page
    done = client.post("/campaigns/launch/control", data={"action": "resume"})
    assert done.headers["location"] == "/campaigns/launch?schedule=resumed#control"
    assert paused[-1] is False
    page = client.get(done.headers["location"]).text
    assert "Its Prefect deployment is resumed" in page and "(paused in Prefect)" not in page
    done = client.post("/campaigns/launch/control", data={"action": "stop"})
    assert done.headers["location"] == "/campaigns/launch?schedule=paused#control"
    assert paused[-1] is True


def test_an_unreachable_prefect_leaves_the_action_recorded_and_says_so(world: World) -> None:
    closed = Config(prefect_api_url=f"http://127.0.0.1:{free_port()}/api")
    _use(world, PrefectDirectory(closed))
    done = world.client.post("/campaigns/launch/control", data={"action": "pause"})
    assert done.status_code == 303
    assert done.headers["location"] == "/campaigns/launch?schedule=unreachable#control"
    assert control.state(world.ctx, "launch").state == "paused"
    page = world.client.get(done.headers["location"]).text
    assert "Its Prefect deployment is unchanged: the Prefect API did not answer" in page


def test_without_prefect_the_page_says_the_api_is_not_set(world: World) -> None:
    _use(world, PrefectDirectory(Config()))
    done = world.client.post("/campaigns/launch/control", data={"action": "stop"})
    assert done.headers["location"] == "/campaigns/launch?schedule=unreachable#control"
    page = world.client.get(done.headers["location"]).text
    assert "PREFECT_API_URL is not set" in page


def test_the_page_shows_only_its_own_sentences_whatever_the_address_says(world: World) -> None:
    _use(world, PrefectDirectory(Config()))
    page = world.client.get("/campaigns/launch?schedule=%3Cb%3Eowned%3C%2Fb%3E").text
    assert 'data-testid="schedule"' not in page and "owned" not in page
