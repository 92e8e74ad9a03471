"""Screenshots of the dashboard for docs/ and the README, taken on the demo's own data.

    .venv/bin/python scripts/screenshots.py [--subscribers 150]

Runs the demo (Prefect, real pushes to the local push service) into out/shots,
serves the dashboard on that database, and has Debian's Chromium (headless,
driven by playwright) photograph the campaign list and two campaign pages.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

from orchestrator.bench_web import wait_until_serving

ROOT = Path(__file__).resolve().parent.parent
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = {
    "dashboard.png": "/",
    "dashboard-coffee-carafe-ab.png": "/campaigns/coffee-carafe-ab",
    "dashboard-cloud-storage-launch.png": "/campaigns/cloud-storage-launch",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=150)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    work = ROOT / "out" / "shots"
    campaign = str(Path(sys.executable).parent / "campaign")
    subprocess.run(
        [campaign, "demo", "--subscribers", str(args.subscribers), "--workdir", str(work)],
        check=True,
        cwd=ROOT,
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "CAMPAIGN_DB": f"sqlite:///{work / 'campaign.db'}",
        "CAMPAIGN_GRAPHS": str(ROOT / "campaign_graphs"),
        "CAMPAIGN_VAPID_PRIVATE_KEY": str(work / "vapid_private.pem"),
        "CAMPAIGN_DASHBOARD_PASSWORD": "demo",
        "CAMPAIGN_PUBLIC_URL": base,
    }
    server = subprocess.Popen([campaign, "serve", "--port", str(port)], env=env, cwd=ROOT)
    try:
        wait_until_serving(base, seconds=30)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.goto(f"{base}/login")
            page.fill("input[name=password]", "demo")
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/")
            args.out.mkdir(parents=True, exist_ok=True)
            for name, path in PAGES.items():
                page.goto(f"{base}{path}")
                page.screenshot(path=str(args.out / name), full_page=True)
                print(f"wrote {args.out / name}")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
