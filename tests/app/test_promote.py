"""`campaign experiment promote`, on SQLite and PostgreSQL: each way a split can be written
gets `winner: ARM` with every other byte kept; the journeys in flight on either arm move
to the new version and go on where they are, every new journey takes the winner; the
figures are recorded with who and why; a refusal, a dry run and a failure after the
write leave the file and the database as they were."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from orchestrator.app import control, promote as promoting
from orchestrator.app.experiments import experiments
from orchestrator.app.promote import (
    FinishedTestError,
    NotAnArmError,
    NotASplitError,
    PromotionError,
    UnknownCampaignError,
    promote,
    with_winner,
)
from orchestrator.app.promotions import promotions
from orchestrator.app.service import Context, import_subscribers, open_context
from orchestrator.app.ticking import tick
from orchestrator.cli import app
from orchestrator.config import Config
from orchestrator.errors import CampaignError, ValidationError
from orchestrator.language import loader
from orchestrator.language.spec import SplitNode
from orchestrator.store import repo
from orchestrator.store.models import CampaignAction, CampaignVersion, Journey, SplitEntry
from orchestrator.testing.fakes import RecordingDelivery
from tests.conftest import subscriber_line
from tests.helpers import T0

M = timedelta(minutes=1)
# Every way a split is written: a whole node in braces (short form), the short form as a
# block with comments, the long form in braces, the long form as a block.
AB = """\
# promotion tests: keep this comment
campaign: ab
title: AB
goal: signup
settings: {window: 2h, followup_cap: 0}
segments:
  pros: {match: {attr: plan, eq: pro}}
  frees: {match: {attr: plan, eq: free}}
subcampaigns:
  pros:
    segment: pros
    start: first
    nodes:
      first: {split: {control: 50, b: 50}}   # the whole node in braces
      control: {notification: {title: Control}, on_no_convert: second}
      b: {notification: {title: "B"}, on_no_convert: second}
      second:
        split:          # the short form as a block
          # x is the old one
          x: 50   # keep me
          'y': 50
        # after the arms
      x: {notification: {title: X}}
      'y': {notification: {title: Y}}
  frees:
    segment: frees
    start: third
    nodes:
      third:
        split: {arms: {p: 50, q: 50}, mode: test}  # long, in braces
      p: {notification: {title: P}, on_no_convert: fourth}
      q: {notification: {title: Q}, on_no_convert: fourth}
      fourth:
        description: the long form as a block
        split:
          arms:
            r: 50
            s: 50   # s
          plan: {journeys: 100}
        # after the split
      r: {notification: {title: R}}
      s: {notification: {title: S}}
"""
FORMS = {
    "first": (
        "b",
        "first: {split: {control: 50, b: 50}}",
        "first: {split: {arms: {control: 50, b: 50}, winner: b}}",
    ),
    "second": (
        "y",
        "          x: 50   # keep me\n          'y': 50\n",
        "          arms:\n            x: 50   # keep me\n            'y': 50\n          winner: y\n",
    ),
    "third": ("q", "split: {arms: {p: 50", "split: {winner: q, arms: {p: 50"),
    "fourth": (
        "r",
        "          plan: {journeys: 100}\n",
        "          plan: {journeys: 100}\n          winner: r\n",
    ),
}
PRO_ARMS = {"control", "b"}


def _world(tmp_path: Path, db_url: str, people: int) -> Context:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "ab.yaml").write_text(AB, encoding="utf-8")
    ctx = open_context(Config(db=db_url, graphs=graphs), delivery=RecordingDelivery())
    if people:
        _import(ctx, tmp_path, range(people))
    return ctx


def _import(ctx: Context, tmp_path: Path, numbers: range) -> None:
    lines = tmp_path / f"people{numbers.start}.jsonl"
    lines.write_text(
        "\n".join(subscriber_line(f"p{i:03}", plan="pro") for i in numbers) + "\n",
        encoding="utf-8",
    )
    assert import_subscribers(ctx, lines).bad == []


@pytest.fixture
def empty(tmp_path: Path, db_url: str) -> Iterator[Context]:
    ctx = _world(tmp_path, db_url, 0)
    yield ctx
    ctx.engine.dispose()


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[Context]:
    ctx = _world(tmp_path, db_url, 60)
    yield ctx
    ctx.engine.dispose()


def _file(ctx: Context) -> Path:
    return ctx.config.graphs / "ab.yaml"


def _rows(ctx: Context) -> tuple[int, int, list[tuple[int, str, int, str]]]:
    """Actions, versions, and every journey (id, node, version, phase)."""
    with ctx.session() as s:
        actions = s.execute(select(func.count()).select_from(CampaignAction)).scalar_one()
        versions = s.execute(select(func.count()).select_from(CampaignVersion)).scalar_one()
        journeys = s.execute(select(Journey).order_by(Journey.id)).scalars().all()
        return (
            actions,
            versions,
            [(j.id or 0, j.node, j.version_id, j.phase) for j in journeys],
        )


@pytest.mark.parametrize("split", list(FORMS))
def test_each_form_gets_its_winner_and_every_other_byte_stays(empty: Context, split: str) -> None:
    ctx = empty
    arm, before, after = FORMS[split]
    assert AB.count(before) == 1
    done = promote(ctx, "ab", split, arm, by="alice", reason="clear winner", now=T0)
    text = _file(ctx).read_text(encoding="utf-8")
    assert text == AB.replace(before, after)  # byte for byte elsewhere, comments included
    model = loader.load(_file(ctx)).campaign
    assert model is not None
    node = model.all_nodes()[split]
    assert isinstance(node, SplitNode) and node.options.winner == arm
    assert done.applied and done.version is not None and done.moved == 0
    added = [line[1:] for line in done.diff.splitlines() if line[:1] == "+" and line[:3] != "+++"]
    assert any(after.splitlines()[-1] in line for line in added)
    with ctx.session() as s:
        recorded = promotions(s, "ab")[split]
        latest = repo.latest_version(s, "ab")
    assert latest is not None and latest.id == done.version
    assert (recorded.arm, recorded.by, recorded.reason, recorded.at) == (
        arm,
        "alice",
        "clear winner",
        T0,
    )
    assert recorded.line() == f"promoted to {arm} on 2026-01-05 by alice"


def test_the_text_edit_keeps_line_breaks_anchors_and_a_missing_last_line_break() -> None:
    crlf = "subcampaigns:\r\n  s:\r\n    nodes:\r\n      pick:\r\n        split:\r\n          a: 1\r\n          b: 1"
    assert with_winner(crlf, "s", "pick", "b") == (
        "subcampaigns:\r\n  s:\r\n    nodes:\r\n      pick:\r\n        split:\r\n"
        "          arms:\r\n            a: 1\r\n            b: 1\r\n          winner: b"
    )
    anchored = "subcampaigns: {s: {nodes: {pick: {split: &w !!map {a: 1, b: 1}}}}}\n"
    assert with_winner(anchored, "s", "pick", "a") == (
        "subcampaigns: {s: {nodes: {pick: {split: &w !!map {arms: {a: 1, b: 1}, winner: a}}}}}\n"
    )
    empty_winner = "subcampaigns:\n  s:\n    nodes:\n      pick:\n        split:\n          arms: {a: 1, b: 1}\n          winner:\n"
    assert with_winner(empty_winner, "s", "pick", "a").endswith("          winner: a\n")
    assert with_winner(
        "subcampaigns: {s: {nodes: {pick: {split: {a: 1, 'true': 1}}}}}", "s", "pick", "true"
    ).endswith('winner: "true"}}}}}')
    shared = "x: &w {a: 1, b: 1}\nsubcampaigns: {s: {nodes: {pick: {split: *w}}}}\n"
    with pytest.raises(PromotionError, match="YAML alias"):
        with_winner(shared, "s", "pick", "a")


def test_a_file_with_a_byte_order_mark_keeps_it(empty: Context) -> None:
    ctx = empty
    _file(ctx).write_bytes(codecs.BOM_UTF8 + AB.encode())
    promote(ctx, "ab", "first", "b", by="alice", reason="", now=T0)
    _, before, after = FORMS["first"]
    assert _file(ctx).read_bytes() == codecs.BOM_UTF8 + AB.replace(before, after).encode()


def test_journeys_in_flight_go_on_and_new_ones_take_the_winner(
    world: Context, tmp_path: Path
) -> None:
    ctx = world
    tick(ctx, now=T0)  # 60 journeys split between control and b, waiting for a conversion
    _, versions_before, journeys = _rows(ctx)
    at_arms = {node for _, node, _, _ in journeys}
    assert at_arms == PRO_ARMS and len(journeys) == 60
    model = loader.load(_file(ctx)).campaign
    assert model is not None
    expected = experiments(ctx, model, now=T0 + 10 * M)[0].as_dict()
    done = promote(ctx, "ab", "first", "b", by="alice", reason="b wins", now=T0 + 10 * M)
    assert done.moved == 60 and done.left == 0
    _, versions_after, moved = _rows(ctx)
    assert versions_after == versions_before + 1
    # the same journeys, at the same nodes and phases, on the new version
    assert [(i, n, p) for i, n, _, p in moved] == [(i, n, p) for i, n, _, p in journeys]
    assert {v for _, _, v, _ in moved} == {done.version}
    # the figures at that moment, recorded
    with ctx.session() as s:
        recorded = promotions(s, "ab")["first"]
    assert recorded.figures["split"] == "first"
    assert [(a["arm"], a["entered"]) for a in recorded.figures["arms"]] == [
        (a["arm"], a["entered"]) for a in expected["arms"]
    ]
    assert sum(a["entered"] for a in recorded.figures["arms"]) == 60
    assert [lift["arm"] for lift in recorded.figures["lifts"]] == ["b"]
    assert recorded.figures["sentences"] == expected["sentences"]
    # the experiment now says it is finished, by whom, and what the figures said then
    promoted = loader.load(_file(ctx)).campaign
    assert promoted is not None
    (finished, *_) = experiments(ctx, promoted, now=T0 + 11 * M)
    assert finished.status == "finished" and finished.winner == "b"
    said = finished.sentences()
    assert said[0].startswith("Finished: every new journey goes to b: promoted on ")
    assert "by alice (b wins)" in said[0]
    assert said[1] == f"At the time ({expected['status']}): " + " ".join(expected["sentences"])
    assert finished.as_dict()["promotion"]["by"] == "alice"
    # new journeys: every one takes b
    _import(ctx, tmp_path, range(60, 90))
    tick(ctx, now=T0 + 20 * M)
    with ctx.session() as s:
        entries = s.execute(select(SplitEntry).where(SplitEntry.split == "first")).scalars()
        new_arms = {e.subscriber_id: e.arm for e in entries if e.subscriber_id >= "p060"}
    assert len(new_arms) == 30 and set(new_arms.values()) == {"b"}
    # the earlier journeys on both arms finish their path: no conversion, on to `second`
    tick(ctx, now=T0 + timedelta(hours=3))
    _, _, later = _rows(ctx)
    first_ids = {i for i, _, _, _ in journeys}
    old = [(n, p) for i, n, _, p in later if i in first_ids]
    assert {n for n, _ in old} <= {"x", "y"} and len(old) == 60
    with ctx.session() as s:
        ended = s.execute(select(Journey).where(Journey.exit_reason == "removed_node")).all()
    assert ended == []


def test_a_promotion_is_in_the_history_and_leaves_the_campaigns_state(empty: Context) -> None:
    ctx = empty
    control.act(ctx, "ab", "pause", by="ben", reason="checking", now=T0)
    promote(ctx, "ab", "first", "b", by="alice", reason="b wins", now=T0 + M)
    state = control.state(ctx, "ab")
    assert (state.state, state.by, state.reason) == ("paused", "ben", "checking")
    history = control.history(ctx, "ab")
    assert history[0] == {
        "action": "promote",
        "at": (T0 + M).isoformat(),
        "by": "alice",
        "reason": "promoted b on split first: b wins",
    }
    control.act(ctx, "ab", "resume", by="ben", reason="", now=T0 + 2 * M)
    assert control.state(ctx, "ab").state == "running"


def _refused(ctx: Context, error: type[Exception], message: str, *args: str, **kw: str) -> None:
    before_text = _file(ctx).read_bytes()
    before_rows = _rows(ctx)
    with pytest.raises(error, match=message) as caught:
        promote(ctx, *args, by=kw.get("by", "alice"), reason="", now=T0)  # type: ignore[call-arg]
    assert isinstance(caught.value, CampaignError)
    assert _file(ctx).read_bytes() == before_text
    assert _rows(ctx) == before_rows


def test_refusals_name_what_is_wrong_and_change_nothing(world: Context) -> None:
    ctx = world
    tick(ctx, now=T0)
    _refused(ctx, UnknownCampaignError, "'nope': no such campaign", "nope", "first", "b")
    _refused(ctx, UnknownCampaignError, "not a campaign id", "../ab", "first", "b")
    splits = "its split nodes: first, second, third, fourth"
    _refused(ctx, NotASplitError, f"'pick' is not a split node .*{splits}", "ab", "pick", "b")
    _refused(ctx, NotASplitError, "'control' is not a split node", "ab", "control", "b")
    _refused(ctx, NotAnArmError, r"'c' is not an arm of split first \(its arms: control, b\)",
             "ab", "first", "c")  # fmt: skip
    _refused(ctx, control.ControlError, "by", "ab", "first", "b", by="al\x1bice")
    promote(ctx, "ab", "first", "b", by="alice", reason="", now=T0)
    _refused(ctx, FinishedTestError, "the test is over: split first was promoted to b",
             "ab", "first", "control")  # fmt: skip
    _file(ctx).write_text(AB.replace("start: first", "start: missing"), encoding="utf-8")
    _refused(ctx, ValidationError, "does not validate", "ab", "second", "x")


def test_a_dry_run_shows_the_change_and_the_figures_and_changes_nothing(world: Context) -> None:
    ctx = world
    tick(ctx, now=T0)
    before_rows = _rows(ctx)
    shown = promote(ctx, "ab", "second", "y", by="alice", reason="", now=T0, dry_run=True)
    assert not shown.applied and shown.version is None
    assert _file(ctx).read_text(encoding="utf-8") == AB and _rows(ctx) == before_rows
    assert "-          x: 50   # keep me" in shown.diff
    assert "+          winner: y" in shown.diff
    assert shown.figures["split"] == "second" and len(shown.figures["arms"]) == 2


def test_a_failure_after_the_write_puts_the_old_text_back(
    world: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = world
    tick(ctx, now=T0)
    before_rows = _rows(ctx)

    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(promoting.repo, "add_action", broken)
    with pytest.raises(RuntimeError, match="went away"):
        promote(ctx, "ab", "first", "b", by="alice", reason="", now=T0 + M)
    assert _file(ctx).read_text(encoding="utf-8") == AB
    actions, _, journeys = _rows(ctx)
    # the version the new text got may stay (a version is only a text); nothing moved
    assert (actions, journeys) == (before_rows[0], before_rows[2])
    assert not list(ctx.config.graphs.glob(".*.tmp"))


def test_the_command_promotes_shows_a_dry_run_and_reports_errors(empty: Context) -> None:
    ctx = empty
    runner = CliRunner()
    env = {"CAMPAIGN_DB": ctx.config.db, "CAMPAIGN_GRAPHS": str(ctx.config.graphs)}
    base = ["experiment", "promote", "ab", "third", "q", "--by", "alice"]
    dry = runner.invoke(app, [*base, "--dry-run", "--now", T0.isoformat()], env=env)
    assert dry.exit_code == 0, dry.output
    assert "+        split: {winner: q, arms: {p: 50, q: 50}" in dry.output
    assert "nothing changed" in dry.output and _file(ctx).read_text(encoding="utf-8") == AB
    done = runner.invoke(app, [*base, "--reason", "q wins", "--json"], env=env)
    assert done.exit_code == 0, done.output
    shown = json.loads(done.output)
    assert (shown["applied"], shown["arm"], shown["by"], shown["reason"]) == (
        True,
        "q",
        "alice",
        "q wins",
    )
    again = runner.invoke(app, base, env=env)
    assert again.exit_code == 1
    assert "error: " in again.output and "the test is over: split third" in again.output
    unknown = runner.invoke(app, ["experiment", "promote", "ab", "pick", "b"], env=env)
    assert unknown.exit_code == 1 and "first, second, third, fourth" in unknown.output
    stray = runner.invoke(app, ["experiment", "ab", "--dry-run"], env=env)
    assert stray.exit_code != 0 and "--dry-run go with" in stray.output
    text = runner.invoke(app, ["experiment", "promote", "ab", "fourth", "s", "--by", "bo"], env=env)
    assert text.exit_code == 0, text.output
    assert "promoted s on split fourth by bo" in text.output
