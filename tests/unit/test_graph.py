from collections.abc import Callable

from orchestrator.language.graph import CampaignGraph
from orchestrator.language.loader import LoadedCampaign

HEAD = """
campaign: g
title: G
segments:
  everyone: {match: {attr: plan, exists: true}}
"""


def _graph(load_yaml: Callable[..., LoadedCampaign], body: str) -> CampaignGraph:
    loaded = load_yaml(HEAD + body)
    assert loaded.campaign is not None, [d.format() for d in loaded.diagnostics]
    return CampaignGraph(loaded.campaign)


def test_followup_chain_counts_no_convert_edges_in_a_row(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    g = _graph(
        load_yaml,
        """
subcampaigns:
  s:
    segment: everyone
    start: a
    nodes:
      a: {notification: {title: A}, on_no_convert: w, on_convert: d}
      w: {wait: 1d, next: b}
      b: {notification: {title: B}, on_no_convert: c}
      c: {notification: {title: C}}
      d: {notification: {title: D}, on_no_convert: c}
""",
    )
    assert g.longest_followup_chain() == 2
    assert g.min_followups() == {"a": 0, "b": 1, "c": 1, "d": 0}


def test_node_only_reachable_past_the_cap_is_never_sent(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    loaded = load_yaml(
        HEAD
        + """
settings: {followup_cap: 1}
subcampaigns:
  s:
    segment: everyone
    start: a
    nodes:
      a: {notification: {title: A}, on_no_convert: b}
      b: {notification: {title: B}, on_no_convert: c}
      c: {notification: {title: C}}
"""
    )
    assert [(d.severity, d.code) for d in loaded.diagnostics] == [
        ("warning", "beyond-followup-cap")
    ]
    assert "node 'c' is never sent" in loaded.diagnostics[0].message


def test_no_convert_loop_is_bounded_but_convert_loop_needs_max_sends(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    body = """
subcampaigns:
  s:
    segment: everyone
    start: a
    nodes:
      a: {notification: {title: A}, on_no_convert: b, on_convert: end}
      b: {notification: {title: B}, on_no_convert: a, on_convert: EDGE}
"""
    bounded = _graph(load_yaml, body.replace("EDGE", "end"))
    assert bounded.unbounded_cycles(max_sends=None) == []
    assert bounded.longest_followup_chain() is None
    looping = _graph(load_yaml, body.replace("EDGE", "a"))
    problems = looping.unbounded_cycles(max_sends=None)
    assert [p.reason for p in problems] == ["through_convert"]
    assert looping.unbounded_cycles(max_sends=5) == []


def test_cycle_of_waits_and_branches_is_always_unbounded(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    g = _graph(
        load_yaml,
        """
settings: {max_sends: 3}
subcampaigns:
  s:
    segment: everyone
    start: a
    nodes:
      a: {notification: {title: A}, on_no_convert: w}
      w: {wait: 1d, next: br}
      br: {branch: [{segment: everyone, to: w}, {else: end}]}
""",
    )
    problems = g.unbounded_cycles(max_sends=3)
    assert [p.reason for p in problems] == ["no_notification"]
    assert set(problems[0].nodes) == {"w", "br"}


def test_layers_put_start_first_and_follow_edges(load_yaml: Callable[..., LoadedCampaign]) -> None:
    g = _graph(
        load_yaml,
        """
subcampaigns:
  s:
    segment: everyone
    start: a
    nodes:
      c: {notification: {title: C}}
      a: {split: {b: 50, c: 50}}
      b: {notification: {title: B}, on_no_convert: c}
""",
    )
    assert g.layers("s") == [["a"], ["b"], ["c"]]
    assert g.unreachable() == []
    assert g.subcampaigns_without_end() == []
