"""The benchmark commands run and print the JSON the interfaces spec names (small sizes:
figures are for docs/benchmarks.md, never asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CAMPAIGN_BIN = str(Path(sys.executable).parent / "campaign")


def _json(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [CAMPAIGN_BIN, *args, "--json"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    out: dict[str, object] = json.loads(done.stdout)
    return out


def test_bench_prints_the_spec_keys_and_delivers_every_send() -> None:
    figures = _json("bench", "--sends", "300", "--latency-ms", "5", "--no-prefect")
    spec = (
        "sends",
        "latency_ms",
        "pipeline_sends_per_s",
        "naive_sends_per_s",
        "speedup_vs_naive",
        "bare_sends_per_s",
        "pipeline_vs_bare",
        "peak_rss_mb",
    )
    assert all(key in figures for key in spec), sorted(figures)
    assert figures["sends"] == 300 and figures["latency_ms"] == 5.0
    for key in ("pipeline_sends_per_s", "pipeline_one_process_sends_per_s", "bare_sends_per_s"):
        assert float(figures[key]) > 0  # type: ignore[arg-type]
    # naive (200) + bare (50 warm-up + 300) + pipeline (300) + one-process pipeline (300)
    receiver = figures["receiver"]
    assert isinstance(receiver, dict) and receiver["delivered"] == 200 + 350 + 300 + 300


def test_bench_scale_prints_the_spec_keys() -> None:
    figures = _json("bench-scale", "--subscribers", "2000", "--simulate-subscribers", "500")
    for key in (
        "subscribers",
        "import_s",
        "enroll_s",
        "idle_tick_s",
        "tick_sends_per_s",
        "peak_rss_mb",
        "db",
    ):
        assert key in figures, sorted(figures)
    assert figures["subscribers"] == 2000 and figures["db"] == "sqlite"
    assert figures["tick_sends"] == 2000
    # then the simulator's figure: the example campaign over 500 subscribers, to its end
    assert figures["simulate_subscribers"] == 500 and figures["simulate_workers"] == 1
    assert int(figures["simulate_steps"]) > 500 and float(figures["simulate_steps_per_s"]) > 0  # type: ignore[arg-type]


def test_bench_throttle_sends_each_subscriber_once_within_the_limit() -> None:
    figures = _json("bench-throttle", "--subscribers", "2500", "--rate", "1000/min")
    for key in (
        "subscribers",
        "rate",
        "ticks",
        "sends",
        "virtual_minutes",
        "max_per_clock_minute",
        "max_per_sliding_minute",
        "lost",
        "doubled",
        "wall_s",
        "ok",
    ):
        assert key in figures, sorted(figures)
    assert figures["ok"] is True and figures["sends"] == figures["subscribers"] == 2500
    assert figures["lost"] == figures["doubled"] == 0
    assert figures["virtual_minutes"] == 3 and figures["ticks"] == 1
    assert figures["max_per_sliding_minute"] == figures["max_per_clock_minute"] == 1000


def test_bench_throttle_checks_an_hourly_rate_in_its_own_window() -> None:
    """90/h is not a whole number a minute: its limit window is the hour (90 in any hour),
    not 1.5 a minute."""
    figures = _json("bench-throttle", "--subscribers", "100", "--rate", "90/h")
    assert figures["ok"] is True and figures["over_limit"] is False
    assert figures["limit_window_s"] == 3600.0 and figures["max_in_limit_window"] == 90


def test_bench_experiments_reports_a_known_lift_and_the_aa_false_positive_rates() -> None:
    figures = _json(
        "bench-experiments",
        "--journeys",
        "10000",
        "--seeds",
        "40",
        "--pipeline-seeds",
        "1",
        "--bandit-journeys",
        "1500",
        "--bandit-weeks",
        "2",
    )
    known = figures["known_lift"]
    assert isinstance(known, dict) and known["true_difference"] == 0.02
    assert set(known["arms"]) == {"control", "b"}  # type: ignore[arg-type]
    assert known["status"] == "judged" and known["planned_per_arm"] == 4500
    assert [n for n, _ in known["arms"].values()] == [4500, 4500]  # type: ignore[union-attr]
    for key in ("aa_two_arms", "aa_three_arms_holm"):
        aa = figures[key]
        assert isinstance(aa, dict) and aa["seeds"] == 40
        assert 0 <= aa["low"] <= aa["false_positive_rate"] <= aa["high"] <= 1  # type: ignore[operator]
    peeking = figures["aa_peeking"]
    assert isinstance(peeking, dict) and peeking["looks"] == 20 and peeking["seeds"] == 40
    assert peeking["declared_peeking"] >= peeking["declared_fixed_horizon"]  # type: ignore[operator]
    bandit = figures["bandit"]
    assert isinstance(bandit, dict) and bandit["journeys"] == 1500
    weeks = bandit["share_by_week"]
    assert [w["week"] for w in weeks] == [0, 1] and sum(w["entries"] for w in weeks) == 1500
    assert sum(a["entered"] for a in bandit["arms"].values()) == 1500
    assert bandit["gained"] == bandit["conversions"] - bandit["even_split_conversions"]


def test_bench_studio_times_valid_checks_of_the_largest_example() -> None:
    figures = _json("bench-studio", "--edits", "10")
    assert figures["file"] == "cloud-storage-launch.yaml"
    assert figures["edits"] == figures["valid_answers"] == 10
    p50, p95, top = (
        float(figures[k]) for k in ("round_trip_p50_ms", "round_trip_p95_ms", "round_trip_max_ms")
    )  # type: ignore[arg-type]
    assert 0 < p50 <= p95 <= top
    assert 0 < float(figures["server_p50_ms"]) <= p50  # type: ignore[arg-type]
    assert figures["simulate_subscribers"] == 1000 and len(figures["simulate_s"]) == 3  # type: ignore[arg-type]
