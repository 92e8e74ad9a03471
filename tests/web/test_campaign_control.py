"""The campaign page's pause, resume and stop buttons: behind the login, refused from
another site, recorded with the reason and shown on the page."""

from __future__ import annotations

from orchestrator.app import control
from tests.helpers import PASSWORD
from tests.web.conftest import World


def test_the_campaign_page_pauses_resumes_and_stops_its_campaign(world: World) -> None:
    client = world.client
    assert client.post("/campaigns/launch/control", data={"action": "pause"}).status_code == 303
    assert control.state(world.ctx, "launch").state == "running"  # not logged in: nothing
    assert client.post("/login", data={"password": PASSWORD}).status_code < 400
    foreign = client.post(
        "/campaigns/launch/control",
        data={"action": "stop"},
        headers={"origin": "https://evil.example", "sec-fetch-site": "cross-site"},
    )
    assert foreign.status_code == 403 and control.state(world.ctx, "launch").state == "running"
    paused = client.post(
        "/campaigns/launch/control", data={"action": "pause", "reason": "copy review"}
    )
    assert paused.status_code == 303 and paused.headers["location"].endswith("#control")
    page = client.get("/campaigns/launch").text
    assert 'data-testid="control"' in page and "paused" in page and "copy review" in page
    again = client.post("/campaigns/launch/control", data={"action": "pause"})
    assert again.status_code == 409 and "already paused" in again.text
    bad = client.post("/campaigns/launch/control", data={"action": "explode"})
    assert bad.status_code == 409
    too_long = client.post(
        "/campaigns/launch/control", data={"action": "stop", "reason": "x" * 2000}
    )
    assert too_long.status_code == 409 and control.state(world.ctx, "launch").state == "paused"
    assert client.post("/campaigns/launch/control", data={"action": "resume"}).status_code == 303
    assert control.state(world.ctx, "launch").state == "running"
    history = [h["action"] for h in control.history(world.ctx, "launch")]
    assert history == ["resume", "pause"]
