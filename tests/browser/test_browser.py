"""Real headless Chromium (Debian's /usr/bin/chromium, driven by playwright) against `campaign serve`."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from orchestrator.app.promote import promote
from orchestrator.app.service import add_events, import_subscribers, open_context, status
from orchestrator.app.ticking import tick
from orchestrator.bench.web import wait_until_serving
from orchestrator.config import Config
from orchestrator.language.records import EventRecord
from orchestrator.push.vapid import VapidKey
from orchestrator.store.models import SplitEntry
from orchestrator.testing.fakes import RecordingDelivery
from orchestrator.testing.ports import free_port
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, p256dh_key, subscriber_line

PASSWORD = "browser test password"
ARGS = CHROMIUM_ARGS
CAMPAIGN = """
campaign: launch
title: Product launch
goal: click
settings: {spacing: 1h, window: 1d, followup_cap: 1}
segments:
  pros: {match: {attr: plan, eq: pro}}
  space: {match: {tag: "topic:space"}}
subcampaigns:
  pros:
    segment: pros
    start: hello
    nodes:
      hello:
        notification: {title: "Hi {{ subscriber.attributes.first_name }}", url: "BASE/thanks?from=push"}
        on_convert: welcome
        on_no_convert: {to: again, delay: 1h}
      again: {notification: {title: Again, url: "BASE/thanks"}}
      welcome: {notification: {title: Welcome, url: "BASE/thanks"}}
"""


@dataclass
class Site:
    base: str
    env: dict[str, str]
    config: Config
    people: dict[str, str]  # subscriber id -> profile url


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing (CI installs it: apt-get install -y chromium)")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    tmp = tmp_path_factory.mktemp("site")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    graphs = tmp / "graphs"
    graphs.mkdir()
    (graphs / "launch.yaml").write_text(
        textwrap.dedent(CAMPAIGN).replace("BASE", base), encoding="utf-8"
    )
    VapidKey.generate().save(tmp / "vapid.pem")
    config = Config(
        db=f"sqlite:///{tmp / 'c.db'}",
        graphs=graphs,
        vapid_private_key=str(tmp / "vapid.pem"),
        dashboard_password=PASSWORD,
        public_url=base,
        secret="s" * 40,
        api_key="k" * 40,
    )
    env = {
        **os.environ,
        "CAMPAIGN_DB": config.db,
        "CAMPAIGN_GRAPHS": str(graphs),
        "CAMPAIGN_VAPID_PRIVATE_KEY": config.vapid_private_key,
        "CAMPAIGN_DASHBOARD_PASSWORD": PASSWORD,
        "CAMPAIGN_PUBLIC_URL": base,
        "CAMPAIGN_SECRET": "s" * 40,
        "CAMPAIGN_API_KEY": "k" * 40,
    }
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "campaign"), "serve", "--port", str(port)],
        env=env,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_serving(base, seconds=30)
        people = {}
        for i, name in enumerate(["Ana", "Ben", "Cleo"]):
            sub = {
                "endpoint": f"https://fcm.googleapis.com/fcm/send/browser-{i}",
                "keys": {
                    "p256dh": p256dh_key(),
                    "auth": base64.urlsafe_b64encode(os.urandom(16)).decode(),
                },
            }
            made = httpx.post(  # the site's backend: it knows their plan
                f"{base}/api/subscriptions",
                json={"subscription": sub, "attributes": {"plan": "pro", "first_name": name}},
                headers={"authorization": f"Bearer {'k' * 40}"},
            ).json()
            people[made["id"]] = made["profile_url"]
        yield Site(base, env, config, people)
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield chromium
        chromium.close()


def _tick(site: Site) -> RecordingDelivery:
    delivery = RecordingDelivery()
    ctx = open_context(site.config, delivery=delivery)
    try:
        tick(ctx, now=datetime.now(UTC))
    finally:
        ctx.engine.dispose()
    return delivery


def _login(page: Any, site: Site) -> None:
    page.goto(f"{site.base}/")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.base}/")


def test_a_click_link_redirects_in_the_browser_and_is_counted(site: Site, browser: Any) -> None:
    delivery = _tick(site)
    assert len(delivery.requests) == 3
    link = json.loads(delivery.requests[0].payload)["data"]["url"]
    page = browser.new_page()
    page.goto(link)
    assert page.url == f"{site.base}/thanks?from=push"
    assert "Thanks" in page.inner_text("h1")
    page.close()
    _tick(site)  # the click converts at the next tick
    ctx = open_context(site.config, delivery=RecordingDelivery())
    try:
        nodes = status(ctx, "launch")["nodes"]
    finally:
        ctx.engine.dispose()
    assert nodes["hello"]["converted"] == 1 and nodes["welcome"]["entered"] == 1


def test_the_dashboard_draws_the_flowchart_with_counts(site: Site, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _login(page, site)
    assert "Product launch" in page.inner_text("#campaigns")
    assert page.locator("svg.chart").count() >= 4
    page.click("text=Product launch")
    page.wait_for_selector("#flowchart svg")
    chart = page.inner_text("#flowchart")
    assert "hello" in chart and "sent 3" in chart
    rows = page.inner_text("#nodes")
    assert "hello" in rows and "33.3%" in rows  # 1 of 3 sends converted
    shot = Path(os.environ.get("SCREENSHOTS", "")) if os.environ.get("SCREENSHOTS") else None
    if shot is not None:
        page.screenshot(path=str(shot / "dashboard-campaign.png"), full_page=True)
    page.close()


def test_the_profile_page_edits_exports_and_deletes(site: Site, browser: Any) -> None:
    sid, url = sorted(site.people.items())[-1]
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.goto(url)
    page.fill("input[name='attr:first_name']", "Cleopatra")
    page.check("input[name=topic][value=space]")
    page.click("#profile-form button[type=submit]")
    page.wait_for_selector("#message")
    assert page.input_value("input[name='attr:first_name']") == "Cleopatra"
    assert page.is_checked("input[name=topic][value=space]")
    with page.expect_download() as download:
        page.click("#export")
    data = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert data["id"] == sid and data["attributes"]["first_name"] == "Cleopatra"
    assert data["tags"] == ["topic:space"]
    page.check("#delete-form input[name=confirm]")
    page.click("#delete-form button[type=submit]")
    assert "deleted" in page.inner_text("#message")
    page.goto(url)
    assert "not valid" in page.inner_text("#message")
    context.close()


def test_the_service_worker_registers(site: Site, browser: Any) -> None:
    page = browser.new_page()
    _login(page, site)
    page.goto(f"{site.base}/try")
    script = page.evaluate(
        """async () => {
            const reg = await window.campaignFlow.registration();
            await navigator.serviceWorker.ready;
            return (reg.active || reg.waiting || reg.installing).scriptURL;
        }"""
    )
    assert script == f"{site.base}/sw.js"
    assert page.evaluate("window.campaignFlow.supported()") is True
    page.close()


AB = """
campaign: ab
title: Subject lines
goal: signup
settings: {window: 2h, followup_cap: 0}
segments:
  pros: {match: {attr: plan, eq: pro}}
subcampaigns:
  pros:
    segment: pros
    start: subject
    nodes:
      subject: {split: {control: 50, bold: 50}}
      control: {notification: {title: "New: shared folders", url: "BASE/thanks"}}
      bold: {notification: {title: "Shared folders are here", url: "BASE/thanks"}}
"""


def test_the_experiment_panel_draws_each_arm_on_its_interval(site: Site, browser: Any) -> None:
    """A split's journeys, measured once their horizon (2 h) is over, on the campaign page:
    the table, a chart with each arm's rate on its interval, and the sentence."""
    (site.config.graphs / "ab.yaml").write_text(
        textwrap.dedent(AB).replace("BASE", site.base), encoding="utf-8"
    )
    then = datetime.now(UTC) - timedelta(days=2)
    ctx = open_context(site.config, delivery=RecordingDelivery())
    try:
        people = site.config.graphs.parent / "ab-people.jsonl"  # both arms get journeys
        people.write_text(
            "".join(subscriber_line(f"ab{i:02}", plan="pro") + "\n" for i in range(16)),
            encoding="utf-8",
        )
        assert import_subscribers(ctx, people).bad == []
        tick(ctx, names=["ab"], now=then)
        with ctx.session() as s:
            entered = s.execute(select(SplitEntry.subscriber_id)).scalars().all()
            arms = s.execute(select(SplitEntry.arm)).scalars().all()
        counts = {arm: arms.count(arm) for arm in ("control", "bold")}
        assert min(counts.values()) > 0
        add_events(
            ctx, [EventRecord(sid, "signup", then + timedelta(hours=1)) for sid in entered[:1]]
        )
    finally:
        ctx.engine.dispose()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _login(page, site)
    page.goto(f"{site.base}/campaigns/ab")
    panel = page.locator("[data-testid=experiment]")
    assert panel.count() == 1
    table = panel.inner_text()
    assert "control" in table and "bold" in table and "measured" in table.lower()
    chart = panel.locator("svg.chart")
    assert chart.count() == 1
    drawn = chart.locator("circle").count() + chart.locator("text", has_text="no measured").count()
    assert drawn == 2  # one mark per arm: a rate on its interval, or no measured journeys
    verdict = page.locator("[data-testid=verdict]").inner_text()
    assert "bold" in verdict and "control" in verdict
    assert "Holm-corrected p" in verdict or "no measured journeys yet" in verdict
    assert "no winner is named" in verdict
    assert panel.locator("[data-testid=experiment-status]").inner_text() == "no plan"

    # planned at the size each arm has: judged, in plain words, with the verdict
    planned = min(counts.values())
    (site.config.graphs / "ab.yaml").write_text(
        textwrap.dedent(AB)
        .replace("BASE", site.base)
        .replace(
            "subject: {split: {control: 50, bold: 50}}",
            f"subject: {{split: {{arms: {{control: 50, bold: 50}}, plan: {{journeys: {planned}}}}}}}",
        ),
        encoding="utf-8",
    )
    page.goto(f"{site.base}/campaigns/ab")
    panel = page.locator("[data-testid=experiment]")
    assert panel.locator("[data-testid=experiment-status]").inner_text() == "judged"
    assert panel.locator("[data-testid=enough-data]").inner_text() == "yes"
    assert "fixed-horizon" in panel.locator("[data-testid=experiment-explanation]").inner_text()
    sentences = [v.inner_text() for v in panel.locator("[data-testid=verdict]").all()]
    assert "enough data: yes" in sentences[0]
    assert sentences[-1].startswith(("Winner: bold", "No arm beat control"))

    # promoted: finished, with who and what the figures said then
    ctx = open_context(site.config, delivery=RecordingDelivery())
    try:
        promote(ctx, "ab", "subject", "bold", by="dana", reason="", now=datetime.now(UTC))
    finally:
        ctx.engine.dispose()
    page.goto(f"{site.base}/campaigns/ab")
    panel = page.locator("[data-testid=experiment]")
    assert panel.locator("[data-testid=experiment-status]").inner_text() == "finished"
    finished = [v.inner_text() for v in panel.locator("[data-testid=verdict]").all()]
    assert finished[0].startswith("Finished: every new journey goes to bold: promoted on ")
    assert "by dana" in finished[0] and finished[1].startswith("At the time (judged):")
    page.close()
