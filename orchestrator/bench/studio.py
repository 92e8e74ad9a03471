"""`campaign bench-studio`: the studio's check-and-redraw round trip, as the page makes it.

`campaign studio` runs as its own process over a copy of the example campaigns; one
client posts the largest example's text to `/api/check` again and again, each time
with one character more (as typing does, so no answer can come from a cache), and
times each round trip: request, the loader on the text, the SVG drawn, the answer
read. The server's own share (`seconds` in each answer) is reported beside it. Then the
simulate overlay's default run (1,000 subscribers) of the same text, three times.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from orchestrator.language.loader import EXAMPLES
from orchestrator.testing.ports import free_port, wait_until_answering

WARM_UP = 5
SIMULATED = 1000  # subscribers of the simulate overlay's default run
SIMULATIONS = 3


def _largest(folder: Path) -> str:
    files = [p for p in folder.glob("*.yaml") if p.is_file()]
    return max(files, key=lambda p: len(p.read_bytes())).name


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def bench_studio(*, edits: int = 200) -> dict[str, Any]:
    """Round trips of `edits` checks of the largest example; milliseconds."""
    with tempfile.TemporaryDirectory(prefix="campaign-bench-studio-") as tmp:
        folder = Path(tmp) / "graphs"
        shutil.copytree(EXAMPLES, folder)
        name = _largest(folder)
        text = (folder / name).read_text(encoding="utf-8")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "studio", str(folder), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                wait_until_answering(f"{base}/api/files")
                round_trips: list[float] = []
                server_side: list[float] = []
                valid = 0
                typed = text + "\n#"
                for i in range(WARM_UP + edits):
                    typed += "x"
                    started = time.perf_counter()
                    answer = client.post("/api/check", json={"name": name, "text": typed})
                    found = answer.json()
                    elapsed = time.perf_counter() - started
                    if answer.status_code != 200 or not found.get("svg"):
                        raise RuntimeError(
                            f"check {i} failed: {answer.status_code} {answer.text[:200]}"
                        )
                    if i < WARM_UP:
                        continue
                    valid += 1
                    round_trips.append(elapsed * 1000)
                    server_side.append(float(found["seconds"]) * 1000)
                simulated = []
                for _ in range(SIMULATIONS):
                    started = time.perf_counter()
                    answer = client.post(
                        "/api/simulate",
                        json={"name": name, "text": text, "subscribers": SIMULATED},
                        timeout=120,
                    )
                    if answer.status_code != 200:
                        raise RuntimeError(
                            f"simulate failed: {answer.status_code} {answer.text[:200]}"
                        )
                    simulated.append(time.perf_counter() - started)
        finally:
            server.terminate()
            server.wait(timeout=20)
    return {
        "file": name,
        "bytes": len(text.encode("utf-8")),
        "edits": edits,
        "valid_answers": valid,
        "round_trip_p50_ms": round(statistics.median(round_trips), 1),
        "round_trip_p95_ms": round(_percentile(round_trips, 0.95), 1),
        "round_trip_max_ms": round(max(round_trips), 1),
        "server_p50_ms": round(statistics.median(server_side), 1),
        "server_p95_ms": round(_percentile(server_side, 0.95), 1),
        "simulate_subscribers": SIMULATED,
        "simulate_s": [round(s, 2) for s in simulated],
    }
