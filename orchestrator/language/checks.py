"""Cross-checks of a parsed campaign: references, segment loops and unused segments, graph
shape, a broadcast's moment and sub-campaigns, and (in `nodechecks`) each node's own:
templates, actions, payload size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.language.diagnostics import did_you_mean
from orchestrator.language.graph import CampaignGraph
from orchestrator.language.nodechecks import check_nodes
from orchestrator.language.spec import END, AnyRuleModel, Campaign, SegmentRef, rule_children
from orchestrator.language.timechecks import check_times

if TYPE_CHECKING:
    from orchestrator.language.document import Broken, LoadedCampaign, Reporter, Source
    from orchestrator.language.yamlpos import Path_


def run(
    campaign: Campaign,
    *,
    source: Source,
    loaded: LoadedCampaign,
    reporter: Reporter,
    broken: Broken,
) -> None:
    refs_ok = _check_references(campaign, source=source, reporter=reporter, broken=broken)
    _check_segment_refs(campaign, loaded=loaded, reporter=reporter, broken=broken)
    check_nodes(campaign, source=source, reporter=reporter, broken=broken)
    check_times(campaign, source=source, reporter=reporter)
    if refs_ok and not broken.any():
        _check_graph(campaign, source=source, reporter=reporter)
    if not any(d.code == "unknown-segment" for d in reporter.items):
        # A misspelt reference would make the segment it meant look unused: say it once.
        _check_unused_segments(campaign, source=source, loaded=loaded, reporter=reporter)


def _node_path(campaign: Campaign, node_id: str) -> Path_:
    return ("subcampaigns", campaign.subcampaign_of(node_id), "nodes", node_id)


def _edge_value_path(source: Source, path: Path_) -> Path_:
    """`on_convert: x` or `on_convert: {to: x}`: the path of the target's text."""
    deeper = (*path, "to")
    return deeper if deeper in source.located.values else path


# ------------------------------------------------------------------ references


def _check_references(
    campaign: Campaign, *, source: Source, reporter: Reporter, broken: Broken
) -> bool:
    nodes = campaign.all_nodes()
    node_ids = list(nodes) + sorted(broken.nodes)
    segment_names = list(campaign.segments) + sorted(broken.segments)
    ok = True

    def target(path: Path_, name: str, what: str) -> None:
        nonlocal ok
        if name == END or name in nodes or name in broken.nodes:
            return
        ok = False
        # A split target is a key (`split: {target: weight}`); the others are values.
        report = reporter.key if what == "split target" else reporter.value
        report(
            source,
            path,
            f"{what} {name!r} names no node{did_you_mean(name, [*node_ids, END])}",
            code="unknown-node",
        )

    def segment(path: Path_, name: str) -> None:
        nonlocal ok
        if name in campaign.segments or name in broken.segments:
            return
        ok = False
        known = did_you_mean(name, segment_names) or (
            f" (defined: {', '.join(segment_names)})"
            if segment_names
            else " (no segments are defined)"
        )
        reporter.value(
            source, path, f"segment {name!r} is not defined{known}", code="unknown-segment"
        )

    for sub_name, sub in campaign.subcampaigns.items():
        sub_path: Path_ = ("subcampaigns", sub_name)
        if sub.start not in sub.nodes:
            ok = False
            if sub.start in nodes:
                other = campaign.subcampaign_of(sub.start)
                message = (
                    f"start {sub.start!r} is a node of sub-campaign {other!r}; "
                    "a start must be one of this sub-campaign's nodes"
                )
            elif sub.start in broken.nodes:
                message = ""
            else:
                message = f"start {sub.start!r} names no node of this sub-campaign{did_you_mean(sub.start, list(sub.nodes))}"
            if message:
                reporter.value(source, (*sub_path, "start"), message, code="unknown-node")
        if sub.segment is not None:
            segment((*sub_path, "segment"), sub.segment)
        for node_id in sub.nodes:
            path = (*sub_path, "nodes", node_id)
            for ref in _references(source, path, source.located.data_at(path)):
                (
                    segment(ref.path, ref.name)
                    if ref.what == "segment"
                    else target(ref.path, ref.name, ref.what)
                )
    for node_id, (sub_name, raw) in broken.raw_nodes.items():
        path = ("subcampaigns", sub_name, "nodes", node_id)
        for ref in _references(source, path, raw):
            (
                segment(ref.path, ref.name)
                if ref.what == "segment"
                else target(ref.path, ref.name, ref.what)
            )
    return ok


@dataclass(frozen=True)
class _Ref:
    path: Path_
    name: str
    what: str  # "segment", or the kind of edge for node references


def _references(source: Source, path: Path_, raw: Any) -> list[_Ref]:
    """Every node or segment a node names, read from its YAML (so broken nodes are checked too)."""
    if not isinstance(raw, dict):
        return []
    refs: list[_Ref] = []
    for key in ("on_convert", "on_no_convert", "next"):
        value = raw.get(key)
        if isinstance(value, dict):
            value, key_path = value.get("to"), (*path, key, "to")
        else:
            key_path = (*path, key)
        if isinstance(value, str):
            refs.append(_Ref(key_path, value, key))
    split = raw.get("split")
    if isinstance(split, dict):
        arms_path = (*path, "split")
        if "arms" in split and (  # the long form (`language.splits`)
            not isinstance(split["arms"], int | str) or isinstance(split["arms"], bool)
        ):
            arms = split["arms"]
            split, arms_path = (arms if isinstance(arms, dict) else {}), (*path, "split", "arms")
        refs.extend(
            _Ref((*arms_path, name), name, "split target")
            for name in split
            if isinstance(name, str)
        )
    branch = raw.get("branch")
    if isinstance(branch, list):
        for index, case in enumerate(branch):
            if not isinstance(case, dict):
                continue
            case_path = (*path, "branch", index)
            for key, what in (("segment", "segment"), ("to", "branch target"), ("else", "else")):
                if isinstance(case.get(key), str):
                    refs.append(_Ref((*case_path, key), case[key], what))
    return refs


def _check_segment_refs(
    campaign: Campaign, *, loaded: LoadedCampaign, reporter: Reporter, broken: Broken
) -> None:
    """`{segment: X}` inside rules: X exists, and segments do not refer to each other in a loop."""
    deps: dict[str, list[str]] = {}
    for name, seg in campaign.segments.items():
        origin = loaded.segment_origins[name]
        refs: list[str] = []
        _collect_refs(
            seg.match, origin.source, (*origin.path, "match"), refs, reporter, campaign, broken
        )
        deps[name] = refs
    reported: set[str] = set()
    for name in deps:
        stack: list[str] = []
        _find_ref_cycle(name, deps, stack, reported, loaded, reporter)


def _collect_refs(
    rule: AnyRuleModel,
    source: Source,
    path: Path_,
    out: list[str],
    reporter: Reporter,
    campaign: Campaign,
    broken: Broken,
) -> None:
    if isinstance(rule, SegmentRef):
        out.append(rule.segment)
        if rule.segment not in campaign.segments and rule.segment not in broken.segments:
            reporter.value(
                source,
                (*path, "segment"),
                f"segment {rule.segment!r} is not defined{did_you_mean(rule.segment, campaign.segments)}",
                code="unknown-segment",
            )
        return
    key = {"AllRule": "all", "AnyRule": "any", "NotRule": "not"}.get(type(rule).__name__)
    for index, child in enumerate(rule_children(rule)):
        child_path = (*path, key, index) if key in ("all", "any") else (*path, "not")
        _collect_refs(child, source, child_path, out, reporter, campaign, broken)


def _find_ref_cycle(
    name: str,
    deps: dict[str, list[str]],
    stack: list[str],
    reported: set[str],
    loaded: LoadedCampaign,
    reporter: Reporter,
) -> None:
    if name in stack:
        cycle = [*stack[stack.index(name) :], name]
        if not reported.intersection(cycle):
            reported.update(cycle)
            origin = loaded.segment_origins[cycle[0]]
            reporter.key(
                origin.source,
                origin.path,
                f"segments refer to each other in a loop: {' -> '.join(cycle)}",
                code="segment-cycle",
            )
        return
    stack.append(name)
    for dep in deps.get(name, []):
        if dep in deps:
            _find_ref_cycle(dep, deps, stack, reported, loaded, reporter)
    stack.pop()


def _check_unused_segments(
    campaign: Campaign, *, source: Source, loaded: LoadedCampaign, reporter: Reporter
) -> None:
    used: set[str] = set()
    # Read the YAML, not the models: a sub-campaign or node with an error still uses its segments.
    raw_subs = source.located.data_at(("subcampaigns",))
    if not isinstance(raw_subs, dict) or not raw_subs:
        return  # no readable sub-campaigns: the error about them is enough
    for sub_name, sub_raw in raw_subs.items():
        if not isinstance(sub_raw, dict):
            continue
        if isinstance(sub_raw.get("segment"), str):
            used.add(sub_raw["segment"])
        nodes = sub_raw.get("nodes")
        for node_id, node_raw in (nodes if isinstance(nodes, dict) else {}).items():
            path: Path_ = ("subcampaigns", sub_name, "nodes", node_id)
            used.update(r.name for r in _references(source, path, node_raw) if r.what == "segment")
    for seg in campaign.segments.values():
        refs: list[str] = []
        _walk_refs(seg.match, refs)
        used.update(refs)
    for name in campaign.segments:
        origin = loaded.segment_origins[name]
        if name not in used and origin.source is source:
            reporter.key(
                source,
                origin.path,
                f"segment {name!r} is defined but never used",
                code="unused-segment",
                severity="warning",
            )


def _walk_refs(rule: AnyRuleModel, out: list[str]) -> None:
    if isinstance(rule, SegmentRef):
        out.append(rule.segment)
    for child in rule_children(rule):
        _walk_refs(child, out)


# ------------------------------------------------------------------ graph


def _check_graph(campaign: Campaign, *, source: Source, reporter: Reporter) -> None:
    graph = CampaignGraph(campaign)
    for node_id in graph.unreachable():
        reporter.key(
            source,
            _node_path(campaign, node_id),
            f"node {node_id!r} is unreachable: no sub-campaign start leads to it",
            code="unreachable",
        )
    for sub_name in graph.subcampaigns_without_end():
        reporter.key(
            source,
            ("subcampaigns", sub_name),
            f"sub-campaign {sub_name!r} has no path to end: every journey would loop forever",
            code="no-end",
        )
    for problem in graph.unbounded_cycles(max_sends=campaign.settings.max_sends):
        chain = " -> ".join(problem.nodes)
        if problem.reason == "no_notification":
            message = f"cycle {chain} has no notification node: it can loop forever"
            at = _node_path(campaign, problem.nodes[0])
        else:
            assert problem.edge is not None
            message = (
                f"cycle {chain} goes through the on_convert edge of {problem.edge[0]!r}; a convert "
                "resets the follow-up cap, so this cycle can run forever: set settings.max_sends"
            )
            at = (*_node_path(campaign, problem.edge[0]), "on_convert")
        reporter.key(source, at, message, code="unbounded-cycle")
    cap = campaign.settings.followup_cap
    for node_id, count in graph.never_sent(cap).items():
        reporter.key(
            source,
            _node_path(campaign, node_id),
            f"node {node_id!r} is never sent: every path to it takes {count} no-convert "
            f"follow-ups in a row and followup_cap is {cap}",
            code="beyond-followup-cap",
            severity="warning",
        )
