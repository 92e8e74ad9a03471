"""`campaign simulate` over several campaigns: one clock, one population, one database, so
the frequency cap counts every campaign's sends; the programme's figures and checks."""

from __future__ import annotations

import bisect
import json
import textwrap
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.errors import CampaignError
from orchestrator.sim.simulate import (
    MAX_CAMPAIGNS,
    campaign_files,
    simulate,
    simulate_programme,
)
from tests.helpers import ROOT

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
runner = CliRunner()

# Three notifications 12 hours apart to every reader, under a cap of three a week across
# all campaigns: two such campaigns together must wait for the cap, each alone never does.
NEWS = """
campaign: {name}
title: {name}
goal: click
settings:
  spacing: 12h
  window: 12h
  followup_cap: 3
  frequency_cap: {{max: 3, per: 7d}}
segments:
  readers: {{match: {{tag: reader}}}}
subcampaigns:
  news:
    segment: readers
    start: first
    nodes:
      first: {{notification: {{title: One}}, on_no_convert: second}}
      second: {{notification: {{title: Two}}, on_no_convert: third}}
      third: {{notification: {{title: Three}}}}
"""


def _write(folder: Path, name: str, text: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(text or NEWS.format(name=name)), encoding="utf-8")
    return path


def _lines(trace: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in trace.read_text().splitlines()]


def _cap_breaches(lines: list[dict[str, Any]], caps: dict[str, int]) -> list[str]:
    """The sends of a campaign with more than its cap (`caps`, per 7 days) of every
    campaign's sends inside the 7 days up to them, the send itself included (sends in
    trace order, which is the order they were made)."""
    sent: dict[str, list[datetime]] = defaultdict(list)
    found = []
    for line in lines:
        if line["type"] != "send":
            continue
        times = sent[line["subscriber"]]
        at = datetime.fromisoformat(line["t"])
        times.append(at)
        inside = len(times) - bisect.bisect_right(times, at - timedelta(days=7))
        if inside > caps[line["campaign"]]:
            found.append(f"{line['subscriber']} {line['campaign']} {at}: {inside}")
    return found


def test_two_campaigns_share_the_frequency_cap(tmp_path: Path) -> None:
    """Alone, a campaign sends its three notifications 12 hours apart; together, the cap
    of three a week defers sends, and the merged trace never breaks it."""
    first = _write(tmp_path, "alpha-news")
    _write(tmp_path, "beta-news")
    alone = simulate(first, subscribers=60, seed=2, default_rate=0.0, start=START, resolution=HOUR)
    assert alone.funnel["nodes"]["second"].get("deferred", 0) == 0
    trace = tmp_path / "trace.jsonl"
    result = simulate_programme(
        [tmp_path],
        subscribers=60,
        seed=2,
        default_rate=0.0,
        start=START,
        trace=trace,
        resolution=HOUR,
    )
    assert [c.campaign for c in result.campaigns] == ["alpha-news", "beta-news"]
    figures = result.as_dict()
    block = figures["programme"]
    assert block["campaigns"] == ["alpha-news", "beta-news"]
    assert block["subscribers"] == 60
    deferred = block["deferred_by_frequency_cap"]
    assert deferred["alpha-news"] > 0 and deferred["beta-news"] > 0
    assert block["frequency_cap_violations"] == 0
    assert block["invariant_violations"] == {"alpha-news": 0, "beta-news": 0}
    assert block["ok"] is True and block["problems"] == []
    readers = figures["campaigns"][0]["nodes"]["first"]["entered"]
    assert readers == figures["campaigns"][1]["nodes"]["first"]["entered"] > 0
    assert block["reached"] == readers == block["reached_by_several"]
    assert block["sent"] == 2 * 3 * readers == sum(c["sent"] for c in figures["campaigns"])
    week = block["sends_per_subscriber_week"]
    assert week["max"] == 3  # the cap: three a week, whichever campaign sends
    assert 0 < week["mean"] <= 3 and week["p50"] <= week["p95"] <= week["max"]
    assert block["unfinished_journeys"] == 0

    lines = _lines(trace)
    assert {line["campaign"] for line in lines} == {"alpha-news", "beta-news"}
    times = [line["t"] for line in lines]
    assert times == sorted(times)
    assert len([x for x in lines if x["type"] == "send"]) == block["sent"]
    assert _cap_breaches(lines, {"alpha-news": 3, "beta-news": 3}) == []
    caps = [x for x in lines if x["type"] == "defer" and x["reason"] == "frequency_cap"]
    assert len(caps) == deferred["alpha-news"] + deferred["beta-news"]
    # at the first tick both campaigns send (alpha first: the order is the priority)
    sid = caps[0]["subscriber"]
    mine = [x for x in lines if x["subscriber"] == sid and x["type"] == "send"]
    assert [x["campaign"] for x in mine[:2]] == ["alpha-news", "beta-news"]
    assert mine[0]["t"] == mine[1]["t"] == START.isoformat()


def test_a_programme_of_examples_keeps_every_rule_on_one_or_two_workers(tmp_path: Path) -> None:
    """Two shipped examples (caps of 3 and 2 a week): cap deferrals, no violation of the
    engine's invariants or of the cap across campaigns; the same with the population
    split over two processes (a subscriber's campaigns all in one)."""
    examples = ROOT / "orchestrator" / "examples"
    paths = [examples / "cart-recovery.yaml", examples / "first-order-profile.yaml"]
    runs = []
    for workers in (1, 2):
        trace = tmp_path / f"trace-{workers}.jsonl"
        result = simulate_programme(
            paths,
            subscribers=400,
            seed=4,
            default_rate=0.2,
            start=START,
            trace=trace,
            resolution=HOUR,
            workers=workers,
        )
        figures = result.as_dict()
        block = figures["programme"]
        assert block["ok"], block["problems"]
        assert sum(block["deferred_by_frequency_cap"].values()) > 0
        assert block["reached_by_several"] > 0
        lines = _lines(trace)
        assert {x["campaign"] for x in lines if x["type"] == "send"} == {
            "cart-recovery",
            "first-order-profile",
        }
        assert _cap_breaches(lines, {"cart-recovery": 3, "first-order-profile": 2}) == []
        for drop in ("seconds", "steps_per_s", "ticks"):
            block.pop(drop)
            for one in figures["campaigns"]:
                one.pop(drop)
        runs.append((figures, sorted(trace.read_text().splitlines())))
    assert runs[0] == runs[1]


def test_one_campaign_gives_the_figures_it_always_gave(tmp_path: Path) -> None:
    """One file (or a folder holding one): the single campaign's figures and trace, no
    programme block."""
    path = ROOT / "campaign_graphs" / "coffee-carafe-ab.yaml"
    single_trace, cli_trace = tmp_path / "single.jsonl", tmp_path / "cli.jsonl"
    single = simulate(path, subscribers=150, seed=3, start=START, trace=single_trace)
    done = runner.invoke(
        app,
        [
            "simulate",
            str(path),
            "--subscribers",
            "150",
            "--seed",
            "3",
            "--json",
            "--trace",
            f"{cli_trace}",
        ],
    )
    assert done.exit_code == 0, done.output
    printed = json.loads(done.stdout)
    expected = single.as_dict()
    for figures in (printed, expected):
        del figures["seconds"], figures["steps_per_s"]
    assert printed == expected
    assert "programme" not in printed and printed["campaign"] == "coffee-carafe-ab"
    assert cli_trace.read_text() == single_trace.read_text()
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / path.name).write_text(path.read_text())
    text = runner.invoke(app, ["simulate", str(folder), "--subscribers", "150", "--seed", "3"])
    assert text.exit_code == 0, text.output
    assert text.stdout.splitlines()[0].startswith("node ")
    assert "programme" not in text.stdout


def test_the_text_output_has_a_table_per_campaign_and_the_programme_lines(
    tmp_path: Path,
) -> None:
    _write(tmp_path, "alpha-news"), _write(tmp_path, "beta-news")
    done = runner.invoke(
        app,
        [
            "simulate",
            str(tmp_path),
            "--subscribers",
            "30",
            "--resolution",
            "1h",
            "--default-rate",
            "0",
        ],
    )
    assert done.exit_code == 0, done.output
    out = done.stdout
    assert out.index("== alpha-news") < out.index("== beta-news") < out.index("programme: ")
    assert out.count("node ") == 2
    for line in (
        "programme: 2 campaigns, 30 subscribers",
        "sends per subscriber per week: mean ",
        "reached by more than one campaign: ",
        "deferred by the frequency cap: alpha-news ",
        "checks: 0 invariant violations, 0 frequency-cap violations across campaigns",
    ):
        assert line in out, out


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("empty folder", "no campaign files (*.yaml) in it"),
        ("one invalid", "1 of 3 campaign files do not load; nothing ran:"),
        ("same id", "are both campaign 'alpha-news'"),
        ("same file", "is given twice"),
        ("too many", f"at most {MAX_CAMPAIGNS} are simulated together"),
        ("unknown rate", "--rate names no node of these campaigns: nowhere"),
    ],
)
def test_bad_input_is_refused_before_anything_runs(tmp_path: Path, case: str, message: str) -> None:
    alpha, beta = _write(tmp_path / "ok", "alpha-news"), _write(tmp_path / "ok", "beta-news")
    args: list[str]
    if case == "empty folder":
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "notes.txt").write_text("not a campaign")
        args = [str(tmp_path / "empty")]
    elif case == "one invalid":
        broken = _write(tmp_path / "bad", "broken", "campaign: broken\n  title: [\n")
        args = [str(alpha), str(broken), str(beta)]
    elif case == "same id":
        copy = tmp_path / "copy" / "alpha-again.yaml"
        copy.parent.mkdir()
        copy.write_text(alpha.read_text())
        args = [str(alpha), str(copy)]
    elif case == "same file":
        args = [str(alpha), str(beta), str(alpha)]
    elif case == "too many":
        for i in range(MAX_CAMPAIGNS + 1):
            _write(tmp_path / "many", f"news-{i:02d}")
        args = [str(tmp_path / "many")]
    else:
        args = [str(tmp_path / "ok"), "--rate", "nowhere=0.5"]
    trace = tmp_path / "trace.jsonl"
    done = runner.invoke(app, ["simulate", *args, "--subscribers", "20", "--trace", str(trace)])
    assert done.exit_code == 1
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not trace.exists()  # nothing ran
    if case == "one invalid":
        assert f"{tmp_path / 'bad' / 'broken.yaml'}:2:" in done.stderr  # FILE:LINE:COL


def test_a_folder_is_its_campaign_files_by_name(tmp_path: Path) -> None:
    _write(tmp_path, "beta-news"), _write(tmp_path, "alpha-news")
    (tmp_path / "segments").mkdir()  # sub-folders hold includes, not campaigns
    other = _write(tmp_path / "elsewhere", "gamma-news")
    assert [p.name for p in campaign_files([other, tmp_path])] == [
        "gamma-news.yaml",
        "alpha-news.yaml",
        "beta-news.yaml",
    ]
    with pytest.raises(CampaignError, match="no campaign files"):
        campaign_files([tmp_path / "segments"])


def test_rates_name_a_node_of_every_campaign_or_of_one(tmp_path: Path) -> None:
    """`NODE=P` for that node of every campaign, `CAMPAIGN.NODE=P` for one campaign's."""
    paths = [_write(tmp_path, "alpha-news"), _write(tmp_path, "beta-news")]
    result = simulate_programme(
        paths,
        subscribers=40,
        seed=1,
        rates={"first": 1.0, "beta-news.first": 0.0},
        default_rate=0.0,
        start=START,
        resolution=HOUR,
    )
    alpha, beta = result.campaigns
    assert alpha.conversions == alpha.funnel["nodes"]["first"]["sent"] > 0
    assert beta.conversions == 0
