"""Debian's Chromium for headless pages (tests, screenshots): where it is and how it runs.

playwright drives it through `executable_path` (no browser is downloaded). As root it
runs only without the sandbox; the other flags keep it from reaching the network on
its own. Each launch gets a fresh profile from playwright.
"""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
