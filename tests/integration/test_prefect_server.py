"""Against a real `prefect server start` on loopback: `campaign deploy` registers one scheduled
deployment per campaign, with its cron, timezone, concurrency limit and tags."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows.local_server import local_prefect_server, stop
from orchestrator.testing.receiver import Receiver
from tests.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    assert_no_secret,
    campaign_world,
    flowchart_pictures,
    secret_forms,
)
from tests.helpers import ROOT, TICK_CAMPAIGN


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with local_prefect_server(tmp_path_factory.mktemp("prefect-home")) as api:
        yield api


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
        [_bin("campaign"), "deploy", "--json"],
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


# ---------------------------------------------------------------- a run through a real worker

T0 = "2026-01-05T09:00:00+00:00"


class _Patient(httpx.HTTPTransport):
    """Tries a request again while Prefect's server answers 502/503 (busy: it runs on
    SQLite, sharing two cores with workers and the tick), as Prefect's own client does."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(6):
            answer = super().handle_request(request)
            if answer.status_code not in (502, 503):
                break
            answer.close()
            time.sleep(1 + attempt)
        return answer


def _api(base: str) -> httpx.Client:
    """A client of the Prefect server under test (`_Patient` with a busy server)."""
    return httpx.Client(base_url=base, timeout=30, transport=_Patient())


def _created(api: httpx.Client, path: str, body: dict[str, object]) -> dict[str, Any]:
    """POST that must create something."""
    answer = api.post(path, json=body)
    assert answer.status_code < 300, (path, answer.status_code, answer.text[:1000])
    return dict(answer.json())


def _logged(api: httpx.Client, run_id: str, line: str, *, seconds: float = 60) -> list[str]:
    """The run's log messages once `line` is among them, or after `seconds`: the flow's
    process ships its logs in the background, so they may land after the run's final state."""
    deadline = time.monotonic() + seconds
    while True:
        found = api.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}})
        messages = [entry["message"] for entry in found.json()]
        if line in messages or time.monotonic() > deadline:
            return messages
        time.sleep(0.5)


def _dashboard_page(env: dict[str, str], path: str) -> str:
    """A dashboard page, as a logged-in author sees it, served over the project in `env`."""
    from fastapi.testclient import TestClient

    from orchestrator.app.service import open_context
    from orchestrator.config import load_config
    from orchestrator.web import create_app

    config = replace(load_config(env, dotenv=None), dashboard_password="a long enough password")
    ctx = open_context(config)
    try:
        with TestClient(create_app(ctx), base_url="https://testserver") as client:
            client.post("/login", data={"password": "a long enough password", "next": "/"})
            answer = client.get(path)
            assert answer.status_code == 200, answer.text[:2000]
            return answer.text
    finally:
        ctx.engine.dispose()


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _environment(
    tmp_path: Path, server: str, receiver: Receiver, *, db: str, people: int
) -> dict[str, str]:
    """A campaign, `people` subscribers on the receiver, imported; the environment a worker needs."""
    env = campaign_world(tmp_path, receiver, db=db, people=people)
    return {**env, "PREFECT_API_URL": server, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


@pytest.fixture
def project(tmp_path: Path, server: str) -> Iterator[tuple[dict[str, str], Receiver]]:
    """30 subscribers in a SQLite file, on a local push service."""
    with Receiver() as receiver:
        yield (
            _environment(
                tmp_path, server, receiver, db=f"sqlite:///{tmp_path / 'c.db'}", people=30
            ),
            receiver,
        )


def _tick_in_a_process(env: dict[str, str]) -> dict[str, Any]:
    """One run of the tick flow for `launch` at T0, in its own process with `env` (its
    PREFECT_API_URL the server's); the flow's summary."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from flows.tick import run_tick; "
            f"print(json.dumps(run_tick(campaign='launch', now='{T0}')))",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _events(api: httpx.Client, name: str, *, seconds: float = 60) -> list[dict[str, Any]]:
    """The server's events named `name` (the event pipeline stores them a moment after
    they arrive, so it is read until one is there)."""
    found: list[dict[str, Any]] = []
    for _ in range(int(seconds * 2)):
        answer = api.post("/events/filter", json={"filter": {"event": {"name": [name]}}})
        assert answer.status_code == 200, answer.text[:1000]
        found = list(answer.json()["events"])
        if found:
            break
        time.sleep(0.5)
    return found


def _wait_for(api: httpx.Client, run_id: str, log: Path, *, seconds: float = 180) -> None:
    state: dict[str, object] = {}
    for _ in range(int(seconds * 2)):
        state = api.get(f"/flow_runs/{run_id}").json()["state"]
        if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            break
        time.sleep(0.5)
    assert state.get("type") == "COMPLETED", (state, log.read_text()[-4000:])


def test_a_deployed_tick_runs_on_a_worker_and_its_artifacts_show_the_counts(
    project: tuple[dict[str, str], Receiver], server: str
) -> None:
    env, receiver = project
    pool = "campaign-test-pool"
    created = subprocess.run(
        [_bin("prefect"), "work-pool", "create", pool, "--type", "process", "--overwrite"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr[-2000:] + created.stdout[-2000:]
    done = subprocess.run(
        [_bin("campaign"), "deploy", "launch", "--pool", pool, "--json"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    deployment_id = json.loads(done.stdout)["deployments"]["tick-launch"]
    api = _api(server)
    # The cron would start runs on the wall clock; this test drives the clock itself.
    assert api.post(f"/deployments/{deployment_id}/pause_deployment").status_code < 300
    run = api.post(
        f"/deployments/{deployment_id}/create_flow_run", json={"parameters": {"now": T0}}
    ).json()
    log = Path(env["CAMPAIGN_GRAPHS"]).parent / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [_bin("prefect"), "worker", "start", "--pool", pool, "--type", "process"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    line = (
        "launch at 2026-01-05 09:00 UTC: enrolled 30; advanced 30; sent 30 (delivered 30); "
        "converted 0, no convert 0"
    )
    try:
        _wait_for(api, run["id"], log)
        # the flow's process ships its logs after the run's final state: stopping the worker
        # before then would stop that process with them
        messages_logged = _logged(api, run["id"], line)
    finally:
        stop(worker)

    messages = receiver.received()
    assert len(messages) == 30
    titles = sorted(json.loads(m.payload)["title"] for m in messages)
    assert titles == sorted(f"Hi P{i}" for i in range(30))

    # the tick runs in the flow itself: no task run per batch
    tasks = api.post("/task_runs/filter", json={"flow_runs": {"id": {"any_": [run["id"]]}}}).json()
    assert tasks == []
    # the run's log says what the tick did, in one line
    assert line in messages_logged, messages_logged
    # and its events reached the server, for automations
    events = _events(api, "campaign.tick.completed")
    assert events and events[-1]["resource"]["prefect.resource.id"] == (
        "campaign-flow.campaign.launch"
    )
    assert events[-1]["payload"]["sends"] == 30
    assert events[-1]["payload"]["outcomes"] == {"delivered": 30}
    found = api.post(
        "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run["id"]]}}}
    ).json()
    by_key = {a["key"]: a for a in found if a.get("key")}
    chart = by_key["launch-flowchart"]["data"]
    assert "sent 30" in flowchart_pictures(chart)["pros"]["hello"]
    table = by_key["launch-funnel"]["data"]
    rows = json.loads(table) if isinstance(table, str) else table
    hello = next(r for r in rows if r["node"] == "hello")
    assert (hello["entered"], hello["sent"], hello["delivered"]) == (30, 30, 30)
    assert by_key["launch-progress"]["data"] == 100.0

    # the dashboard's campaign page links the deployment and this run in the Prefect UI
    ui = server.removesuffix("/api")
    page = _dashboard_page(env, "/campaigns/launch")
    assert f'href="{ui}/deployments/deployment/{deployment_id}"' in page
    assert f'href="{ui}/runs/flow-run/{run["id"]}"' in page
    assert "Completed" in page

    # Secrets: none in the worker's output, the run's logs, its artifacts, its state
    # messages, or the database (file and write-ahead log).
    forms = secret_forms(env)
    assert_no_secret("the worker's output", log.read_bytes(), forms)
    logs = api.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [run["id"]]}}})
    assert logs.status_code == 200 and logs.json(), logs.text
    assert_no_secret("the flow run's logs", logs.text, forms)
    assert_no_secret("the artifacts", json.dumps(found), forms)
    assert_no_secret("the flow run", api.get(f"/flow_runs/{run['id']}").text, forms)
    assert_no_secret("the task runs", json.dumps(tasks), forms)
    database = Path(env["CAMPAIGN_DB"].removeprefix("sqlite:///"))
    for path in database.parent.glob(database.name + "*"):
        assert_no_secret(path.name, path.read_bytes(), forms)


def test_prefect_yaml_deploys_the_same_deployments_with_prefect_deploy(server: str) -> None:
    env = {**os.environ, "PREFECT_API_URL": server, "PWD": str(ROOT)}
    created = subprocess.run(
        [_bin("prefect"), "work-pool", "create", "campaign-flow", "--type", "process"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr[-2000:]
    done = subprocess.run(
        [_bin("prefect"), "--no-prompt", "deploy", "--all"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = {
        d["name"]: d
        for d in _api(server).post("/deployments/filter", json={}).json()
        if d["work_pool_name"] == "campaign-flow"
    }
    assert set(found) == {f"tick-{p.stem}" for p in (ROOT / "campaign_graphs").glob("*.yaml")}
    cart = found["tick-cart-recovery"]
    assert cart["parameters"] == {"campaign": "cart-recovery"}
    assert cart["entrypoint"] == "flows/tick.py:tick_flow"
    assert cart["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
    ]
    (schedule,) = cart["schedules"]
    assert schedule["schedule"]["timezone"] == "Europe/Berlin"


def test_campaign_deploy_serve_runs_the_deployment_in_process(
    project: tuple[dict[str, str], Receiver], server: str
) -> None:
    env, receiver = project
    api = _api(server)
    log = Path(env["CAMPAIGN_GRAPHS"]).parent / "serve.log"
    with log.open("wb") as out:
        served = subprocess.Popen(
            [_bin("campaign"), "deploy", "launch", "--serve"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deployment: dict[str, object] = {}
        for _ in range(240):
            if "prefect deployment run" in log.read_text():  # printed once it is serving
                found = api.get("/deployments/name/campaign-tick/tick-launch")
                if found.status_code == 200:
                    deployment = found.json()
                    break
            assert served.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        assert deployment, log.read_text()[-3000:]
        created = api.post(
            f"/deployments/{deployment['id']}/create_flow_run", json={"parameters": {"now": T0}}
        )
        assert created.status_code == 201, f"{created.status_code} {created.text[:2000]}"
        _wait_for(api, created.json()["id"], log)
    finally:
        stop(served)
    assert len(receiver.received()) == 30


def test_two_workers_ticking_one_campaign_at_once_on_postgresql_send_each_step_once(
    tmp_path: Path, server: str, pg_url: str
) -> None:
    """Scale-out (docs/scale-out.md): two `prefect worker` processes on one pool, one PostgreSQL.

    The deployment here has no concurrency limit, so two runs of the same tick overlap on
    purpose; FOR UPDATE SKIP LOCKED and the ledger's unique (journey, step) must keep every
    due notification to exactly one send."""
    from sqlalchemy import create_engine, text

    people, pool = 1500, "campaign-scale-pool"
    # slow pushes (200 ms) keep the first run sending while the second one's process
    # starts, so both find due batches to claim
    with Receiver(latency_ms=200) as receiver:
        env = _environment(tmp_path, server, receiver, db=pg_url, people=people)
        api = _api(server)
        created = subprocess.run(
            [_bin("prefect"), "work-pool", "create", pool, "--type", "process", "--overwrite"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert created.returncode == 0, created.stderr[-2000:]
        flow_id = _created(api, "/flows/", {"name": "campaign-tick"})["id"]
        deployment = _created(
            api,
            "/deployments/",
            {
                "name": "tick-launch-unlimited",
                "flow_id": flow_id,
                "entrypoint": "flows.tick.tick_flow",
                "work_pool_name": pool,
                "parameters": {"campaign": "launch", "batch_size": 25},
            },
        )
        log = tmp_path / "workers.log"
        env = {**env, "PREFECT_WORKER_QUERY_SECONDS": "1"}
        with log.open("wb") as out:
            workers = [
                subprocess.Popen(
                    [
                        *(_bin("prefect"), "worker", "start", "--pool", pool),
                        *("--type", "process", "--limit", "1", "--name", f"worker-{n}"),
                    ],
                    env=env,
                    cwd=tmp_path,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
                for n in (1, 2)
            ]
        try:
            for _ in range(240):  # both workers polling before there is work to take
                online = api.post(f"/work_pools/{pool}/workers/filter", json={}).json()
                if len(online) == 2:
                    break
                time.sleep(0.5)
            runs = [
                _created(
                    api,
                    f"/deployments/{deployment['id']}/create_flow_run",
                    {"parameters": {"now": T0}},
                )
                for _ in range(2)
            ]
            for run in runs:
                _wait_for(api, run["id"], log, seconds=300)
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                stop(worker)
        finished = [api.get(f"/flow_runs/{run['id']}").json() for run in runs]
        stats = receiver.stats()
        endpoints = {m.endpoint for m in receiver.received()}

    # The two runs were on different workers and overlapped in time.
    assert len({f["infrastructure_pid"] for f in finished}) == 2
    first, second = sorted(finished, key=lambda f: f["start_time"])
    assert second["start_time"] < first["end_time"], (first["start_time"], first["end_time"])
    # Every subscriber got the first notification exactly once.
    assert stats["requests"] == people and stats["delivered"] == people
    assert len(endpoints) == people
    engine = create_engine(pg_url)
    with engine.connect() as c:
        sends, distinct = c.execute(
            text("SELECT count(*), count(DISTINCT (journey_id, step)) FROM send")
        ).one()
        journeys = c.execute(
            text("SELECT count(*), count(DISTINCT subscriber_id) FROM journey")
        ).one()
        outcomes = dict(
            c.execute(text("SELECT outcome, count(*) FROM send GROUP BY outcome")).all()
        )
    engine.dispose()
    assert (sends, distinct) == (people, people)
    assert tuple(journeys) == (people, people)
    assert outcomes == {"delivered": people}
    # Both runs did part of the work: each logged its share, and the shares add up.
    shares = []
    for run in runs:  # each run's own "what this tick did" artifact
        found = api.post(
            "/artifacts/filter",
            json={
                "artifacts": {
                    "flow_run_id": {"any_": [run["id"]]},
                    "key": {"any_": ["launch-tick"]},
                }
            },
        ).json()
        # a run that found nothing to do writes no tick artifact: its share is 0
        rows = [json.loads(t["data"]) if isinstance(t["data"], str) else t["data"] for t in found]
        shares.append(int(rows[0][0]["sends"]) if rows else 0)
    assert len(shares) == 2 and sum(shares) == people and min(shares) > 0, shares


# ---------------------------------------------------------------- the artifact in the Prefect UI


def test_the_prefect_ui_shows_the_flowchart_artifact_as_a_picture(tmp_path: Path) -> None:
    """A tick against a real server with its UI; the artifact's page, opened in headless
    Chromium, displays each sub-campaign's picture (natural width > 0) and keeps the
    mermaid source in a collapsed block. With CAMPAIGN_SCREENSHOTS=DIR the page is also
    saved there."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing (CI installs it: apt-get install -y chromium)")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with Receiver() as receiver, local_prefect_server(tmp_path / "home", ui=True) as api_url:
        env = _environment(
            tmp_path, api_url, receiver, db=f"sqlite:///{tmp_path / 'c.db'}", people=30
        )
        env["CAMPAIGN_PUBLIC_URL"] = "https://campaigns.example.com"
        assert _tick_in_a_process(env)["sends"] == 30
        api = _api(api_url)
        (artifact,) = [
            a
            for a in api.post("/artifacts/filter", json={}).json()
            if a.get("key") == "launch-flowchart"
        ]
        assert "https://campaigns.example.com/campaigns/launch" in artifact["data"]
        ui = api_url.removesuffix("/api")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1400})
                page.goto(f"{ui}/artifacts/artifact/{artifact['id']}", wait_until="networkidle")
                pictures = page.locator('img[src^="data:image/svg+xml"]')
                pictures.first.wait_for(timeout=60_000)
                widths = pictures.evaluate_all("(images) => images.map(i => i.naturalWidth)")
                assert len(widths) == 2 and all(w > 0 for w in widths), widths
                assert page.locator("details summary", has_text="Mermaid source").count() == 1
                assert not page.locator("details").first.evaluate("(d) => d.open")
                assert not page.get_by_text("flowchart TB").first.is_visible()  # collapsed
                folder = os.environ.get("CAMPAIGN_SCREENSHOTS")
                shot = Path(folder) if folder else tmp_path
                shot.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shot / "prefect-flowchart-artifact.png"), full_page=False)
            finally:
                browser.close()


def test_the_shipped_automation_is_accepted_by_a_real_server(server: str, tmp_path: Path) -> None:
    import uuid

    source = (ROOT / "docs" / "automations" / "failure-rate.yaml").read_text()
    assert "YOUR-NOTIFICATION-BLOCK-ID" in source
    path = tmp_path / "automation.yaml"
    path.write_text(source.replace("YOUR-NOTIFICATION-BLOCK-ID", str(uuid.uuid4())))
    env = {**os.environ, "PREFECT_API_URL": server}
    done = subprocess.run(
        [_bin("prefect"), "automation", "create", "--from-file", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    found = _api(server).post("/automations/filter", json={}).json()
    (automation,) = [a for a in found if a["name"] == "campaign failure rate over 5 %"]
    assert automation["trigger"]["expect"] == ["campaign.failure-rate.high"]
    assert automation["actions"][0]["type"] == "send-notification"


def test_a_tick_whose_push_service_refuses_raises_the_events_to_alert_on(
    server: str, tmp_path: Path
) -> None:
    with Receiver() as receiver:
        env = _environment(
            tmp_path, server, receiver, db=f"sqlite:///{tmp_path / 'c.db'}", people=30
        )
        receiver.fault(status=403)
        _tick_in_a_process(env)
    api = _api(server)
    (high,) = _events(api, "campaign.failure-rate.high")
    assert high["resource"]["prefect.resource.id"] == "campaign-flow.campaign.launch"
    assert high["payload"]["sends"] == 30 and high["payload"]["rate"] == 1.0
    (refusing,) = _events(api, "campaign.push-origin.refusing")
    assert refusing["payload"]["origin"] == receiver.origin
    assert refusing["payload"]["refused"] == 30
    assert refusing["resource"]["campaign-flow.push-origin"] == receiver.origin


# ---------------------------------------------------------------- pausing a deployed campaign


def test_pausing_a_campaign_pauses_its_deployment_and_a_redeploy_keeps_it_paused(
    server: str, tmp_path: Path
) -> None:
    """`campaign pause|resume|stop` pause and resume the campaign's deployment on a real
    server; `campaign deploy` of a held campaign registers it paused. (The campaign is
    `held`, so its deployment is not the other tests' `tick-launch`.)"""
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    source = TICK_CAMPAIGN.replace("campaign: launch", "campaign: held")
    (graphs / "held.yaml").write_text(textwrap.dedent(source), encoding="utf-8")
    env = {
        **os.environ,
        "PREFECT_API_URL": server,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "CAMPAIGN_GRAPHS": str(graphs),
        "CAMPAIGN_DB": f"sqlite:///{tmp_path / 'c.db'}",
    }

    def campaign(*args: str) -> str:
        done = subprocess.run(
            [_bin("campaign"), *args], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout

    def paused() -> bool:
        found = _api(server).get("/deployments/name/campaign-tick/tick-held")
        assert found.status_code == 200, found.text[:1000]
        return bool(found.json()["paused"])

    deployed = json.loads(campaign("deploy", "held", "--json"))
    assert set(deployed["deployments"]) == {"tick-held"} and deployed["paused"] == {}
    assert not paused()

    said = json.loads(campaign("pause", "held", "--reason", "copy review", "--json"))
    assert (said["state"], said["schedule"]) == ("paused", "paused")
    assert paused()
    page = _dashboard_page(env, "/campaigns/held")
    assert "(paused in Prefect)" in page

    said = json.loads(campaign("resume", "held", "--json"))
    assert (said["state"], said["schedule"]) == ("running", "resumed")
    assert not paused()

    out = campaign("stop", "held")
    assert "held: stopped by" in out and "held: schedule: paused" in out
    assert paused()

    # a re-deploy of the stopped campaign leaves its deployment paused
    deployed = json.loads(campaign("deploy", "held", "--json"))
    assert deployed["paused"] == {"tick-held": "stopped"}
    assert paused()
    assert "paused: the campaign is stopped" in campaign("deploy", "held")
    assert paused()

    campaign("resume", "held")
    assert not paused()
    campaign("pause", "held")
    assert paused()
    deployed = json.loads(campaign("deploy", "held", "--json"))  # paused, deployed again
    assert deployed["paused"] == {"tick-held": "paused"} and paused()
    (schedule,) = _api(server).get("/deployments/name/campaign-tick/tick-held").json()["schedules"]
    assert schedule["schedule"]["cron"]  # the schedule is kept; the deployment is paused
