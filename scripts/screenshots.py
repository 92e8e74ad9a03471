"""Screenshots for docs/ and the README, taken on the demo's own data.

    .venv/bin/python scripts/screenshots.py [--subscribers 150]

Starts a `prefect server` with its UI, runs the demo against it (real pushes to
the local push service) into out/shots, registers the campaigns' deployments,
serves the dashboard on that database, and has Debian's Chromium (headless,
driven by playwright) photograph the campaign list, two campaign pages and a
campaign's flowchart artifact in the Prefect UI.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import httpx

from flows.local_server import local_prefect_server
from orchestrator.bench.web import wait_until_serving
from orchestrator.testing.browser import CHROMIUM, CHROMIUM_ARGS
from orchestrator.testing.ports import free_port

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
    args = parser.parse_args()
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
