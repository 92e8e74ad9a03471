"""Screenshots for docs/ and the README, taken on the demo's own data.

    .venv/bin/python scripts/screenshots.py [--subscribers 150]

Starts a `prefect server` with its UI, runs the demo against it (real pushes to
the local push service) into out/shots, registers the campaigns' deployments,
serves the dashboard on that database, and has Debian's Chromium (headless,
driven by playwright) photograph the campaign list, two campaign pages and a
campaign's flowchart artifact in the Prefect UI; then the authoring studio
(`--only studio` takes that one alone) over a copy of the examples.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from flows.local_server import local_prefect_server
from orchestrator.bench.web import wait_until_serving
from orchestrator.testing.browser import CHROMIUM, CHROMIUM_ARGS
from orchestrator.testing.ports import free_port, wait_until_answering

ROOT = Path(__file__).resolve().parent.parent
PAGES = {
    "dashboard.png": "/",
    "dashboard-coffee-carafe-ab.png": "/campaigns/coffee-carafe-ab",
    "dashboard-cloud-storage-launch.png": "/campaigns/cloud-storage-launch",
}
ARTIFACT = "cart-recovery-flowchart"  # photographed in the Prefect UI


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=150)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--only", choices=["studio"])
    args = parser.parse_args()
    _studio(args.out)
    if args.only == "studio":
        return
    work = ROOT / "out" / "shots"  # the demo empties it first
    with local_prefect_server(ROOT / "out" / "shots-prefect", ui=True) as api:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PREFECT_API_URL": api, "CAMPAIGN_PUBLIC_URL": base}
        _demo(args.subscribers, work, env)
        env |= {
            "CAMPAIGN_DB": f"sqlite:///{work / 'campaign.db'}",
            "CAMPAIGN_GRAPHS": str(ROOT / "campaign_graphs"),
            "CAMPAIGN_VAPID_PRIVATE_KEY": str(work / "vapid_private.pem"),
            "CAMPAIGN_DASHBOARD_PASSWORD": "demo",
        }
        subprocess.run([_bin("campaign"), "deploy"], check=True, cwd=ROOT, env=env)
        (artifact,) = [
            a
            for a in httpx.post(f"{api}/artifacts/filter", json={}, timeout=30).json()
            if a.get("key") == ARTIFACT
        ]
        server = subprocess.Popen(
            [_bin("campaign"), "serve", "--port", str(port)], env=env, cwd=ROOT
        )
        try:
            wait_until_serving(base, seconds=30)
            _photograph(
                base,
                args.out,
                prefect_page=f"{api.removesuffix('/api')}/artifacts/artifact/{artifact['id']}",
            )
        finally:
            server.terminate()
            server.wait(timeout=20)


def _studio(out: Path) -> None:
    """The studio on cart-recovery: the cursor in a notification node (its preview), the
    chart with a simulation's figures."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "campaign_graphs"
        shutil.copytree(ROOT / "campaign_graphs", folder)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [_bin("campaign"), "studio", str(folder), "--port", str(port)], cwd=tmp
        )
        try:
            wait_until_answering(f"{base}/api/files")
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.goto(f"{base}/?file=cart-recovery.yaml")
                page.wait_for_selector('[data-testid="flowchart"] svg g.node')
                page.fill('[data-testid="simulate-subscribers"]', "1000")
                page.click('[data-testid="simulate-run"]')
                page.wait_for_selector('[data-testid="flowchart"].overlay g.outcomes')
                page.click('[data-testid="flowchart"] g.node[data-node="cart_nudge"]')
                page.wait_for_selector('[data-testid="preview-card"] .title')
                page.screenshot(path=str(out / "studio.png"))
                print(f"wrote {out / 'studio.png'}")
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=20)


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _demo(subscribers: int, work: Path, env: dict[str, str]) -> None:
    subprocess.run(
        [_bin("campaign"), "demo", "--subscribers", str(subscribers), "--workdir", str(work)],
        check=True,
        cwd=ROOT,
        env=env,
    )


def _photograph(base: str, out: Path, *, prefect_page: str) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        page.goto(f"{base}/login")
        page.fill("input[name=password]", "demo")
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        for name, path in PAGES.items():
            page.goto(f"{base}{path}")
            page.screenshot(path=str(out / name), full_page=True)
            print(f"wrote {out / name}")
        ui = browser.new_page(viewport={"width": 1360, "height": 1000})
        ui.goto(prefect_page, wait_until="networkidle")
        ui.locator('img[src^="data:image/svg+xml"]').first.wait_for(timeout=60_000)
        ui.screenshot(path=str(out / "prefect-flowchart-artifact.png"))
        print(f"wrote {out / 'prefect-flowchart-artifact.png'}")
        browser.close()


if __name__ == "__main__":
    main()
