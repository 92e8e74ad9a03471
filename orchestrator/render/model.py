"""What every drawing shows, independent of the output format.

`build` turns a validated campaign (and optional live figures) into a `Drawing`:
clusters (one per sub-campaign), nodes with their text already chosen and
truncated, one end node per sub-campaign that has an edge to `end`, and edges
with their kind and label. The writers (mermaid, dot, svg, html) only format it.

Live figures: `counts` maps a node id to its figures (`entered`, `sent`,
`converted`, `no_convert`, `deferred`, ...). The end node of sub-campaign S is
keyed `end:S` (node ids cannot contain a colon), and its figures are exits by
reason, e.g. `{"end": 40, "followup_cap": 12}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from orchestrator.language.graph import CampaignGraph, EdgeInfo
from orchestrator.language.spec import (
    END,
    Campaign,
    NotificationNode,
    SplitNode,
    SubCampaign,
    WaitNode,
    format_duration,
)

NodeCounts = dict[str, int]

TITLE_CHARS = 40
EDGE_WORDS = {"convert": "convert", "no_convert": "no convert"}
KIND_WORDS = {
    "convert": "convert",
    "no_convert": "no convert",
    "split": "split",
    "branch": "branch",
    "else": "else",
    "next": "wait",
}


@dataclass(frozen=True)
class DNode:
    """One box of the drawing."""

    key: str  # the campaign's node id, or `end:SUB` for a sub-campaign's end
    safe: str  # an identifier safe in mermaid, dot and XML ids
    sub: str
    kind: str  # notification | split | branch | wait | end
    headline: str  # the main text: a notification's (truncated) title, "A/B split", ...
    detail: str  # the node id and notes such as "delay 2d"
    figures: str  # live counts as one line, "" when none were given
    start: bool
    tooltip: str  # the full text, for hover
    # of a notification's sends: the shares that converted and that did not (live counts)
    outcome: tuple[float, float] | None = None


@dataclass(frozen=True)
class DEdge:
    index: int
    source: str  # node key
    target: str  # node key (an `end` target is the source cluster's end node)
    kind: str  # convert | no_convert | split | branch | else | next
    label: str
    back: bool  # points back up the flow (part of a loop)


@dataclass(frozen=True)
class DCluster:
    sub: str
    safe: str
    entry: str  # "segment: small_business" or "trigger: cart_abandoned +1h"
    start: str
    nodes: list[str]  # node keys in file order, the end node last


@dataclass
class Drawing:
    campaign: Campaign
    graph: CampaignGraph
    clusters: list[DCluster] = field(default_factory=list)
    nodes: dict[str, DNode] = field(default_factory=dict)
    edges: list[DEdge] = field(default_factory=list)

    def cluster_of(self, key: str) -> DCluster:
        sub = self.nodes[key].sub
        return next(c for c in self.clusters if c.sub == sub)


# ------------------------------------------------------------------ text helpers


def one_line(text: str) -> str:
    return " ".join(text.split())


def truncate(text: str, limit: int = TITLE_CHARS) -> str:
    flat = one_line(text)
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


_EXPRESSION = re.compile(r"\{\{-?(.*?)-?\}\}", re.S)
_STATEMENT = re.compile(r"\{%-?\s*(\w*).*?%\}|\{#.*?#\}", re.S)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FILTER_OR_TEST = re.compile(r"\||\bor\b|\bif\b|\band\b|~|\(")


def readable(text: str) -> str:
    """A template as a reader sees it in a drawing: each `{{ … }}` becomes a placeholder
    named after what it shows (`{{ trigger.properties.product }}` → `[product]`,
    `{{ subscriber.attributes.first_name | default("there") }}` → `[first name]`), and
    `{% … %}` and `{# … #}` are left out (an `else` shows as " / " between the choices)."""
    without = _STATEMENT.sub(lambda m: " / " if m.group(1) in ("else", "elif") else "", text)
    return _EXPRESSION.sub(lambda m: f"[{_placeholder(m.group(1))}]", without)


def _placeholder(expression: str) -> str:
    head = _FILTER_OR_TEST.split(expression, maxsplit=1)[0]
    names = [n for n in _NAME.findall(head) if n not in ("attributes", "properties")]
    return names[-1].replace("_", " ") if names else "…"


def end_key(sub: str) -> str:
    return f"{END}:{sub}"


def entry_text(sub: SubCampaign) -> str:
    parts = []
    if sub.trigger is not None:
        delay = f" +{format_duration(sub.trigger.delay)}" if sub.trigger.delay else ""
        parts.append(f"trigger: {sub.trigger.event}{delay}")
    if sub.segment is not None:
        parts.append(f"segment: {sub.segment}")
    return " · ".join(parts)


def edge_label(edge: EdgeInfo) -> str:
    """What is written on an edge: "no convert · 1d", "50%", a segment, "else", "after 2d"."""
    if edge.kind in EDGE_WORDS:
        word = EDGE_WORDS[edge.kind]
        return f"{word} · {edge.label}" if edge.label else word
    if edge.kind == "next":
        return f"after {edge.label}"
    return edge.label


def percent(part: int, whole: int) -> str:
    if whole <= 0:
        return "–"
    share = 100 * part / whole
    text = f"{share:.0f}" if share >= 10 or share == 0 else f"{share:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


def figures_text(kind: str, figures: NodeCounts | None) -> str:
    """Live counts as one short line, e.g. "sent 100 · conv 12%"."""
    if not figures:
        return ""
    if kind == "end":
        return " · ".join(f"{reason.replace('_', ' ')} {n}" for reason, n in figures.items())
    parts: list[str] = []
    sent = figures.get("sent")
    if kind == "notification" and sent is not None:
        parts.append(f"sent {sent}")
        if "converted" in figures:
            parts.append(f"conv {percent(figures['converted'], sent)}")
    elif "entered" in figures:
        parts.append(f"entered {figures['entered']}")
    if figures.get("deferred"):
        parts.append(f"deferred {figures['deferred']}")
    return " · ".join(parts)


# ------------------------------------------------------------------ safe ids


class SafeIds:
    """Unique identifiers made of [A-Za-z0-9_] for node ids and sub-campaign ids."""

    def __init__(self) -> None:
        self._taken: set[str] = set()
        self._made: dict[tuple[str, str], str] = {}

    def get(self, prefix: str, name: str) -> str:
        if (prefix, name) in self._made:
            return self._made[(prefix, name)]
        base = prefix + re.sub(r"[^A-Za-z0-9_]", "_", name)
        made, n = base, 2
        while made in self._taken:
            made, n = f"{base}_{n}", n + 1
        self._taken.add(made)
        self._made[(prefix, name)] = made
        return made


# ------------------------------------------------------------------ nodes


def _headline(node_kind: str, node: object) -> str:
    if isinstance(node, NotificationNode):
        return truncate(readable(node.notification.title))
    if isinstance(node, SplitNode):
        options = node.options
        if options.winner is not None:
            return truncate(readable(f"split: {options.winner} won"))
        kind = "bandit" if options.mode == "bandit" else "A/B split"
        return kind if len(node.arms) == 2 else f"{kind} ×{len(node.arms)}"
    if isinstance(node, WaitNode):
        return f"wait {format_duration(node.wait)}"
    return node_kind


def _tooltip(node_id: str, node: object) -> str:
    lines = [node_id]
    if isinstance(node, NotificationNode):
        lines.append(one_line(node.notification.title))
        if node.notification.body:
            lines.append(one_line(node.notification.body))
        if node.notification.url:
            lines.append(node.notification.url)
    description = getattr(node, "description", None)
    if description:
        lines.append(one_line(description))
    return "\n".join(lines)


def _detail(node_id: str, node: object) -> str:
    if not isinstance(node, NotificationNode):
        return node_id
    notes = [node_id]
    if node.delay:
        notes.append(f"delay {format_duration(node.delay)}")
    if node.at is not None:
        notes.append(f"at {node.at:%H:%M}")
    elif node.send_time is not None and node.send_time.mode == "best":
        notes.append("best hour")
    return " · ".join(notes)


def _node(
    *, drawing: Drawing, node_id: str, sub: str, ids: SafeIds, counts: dict[str, NodeCounts]
) -> DNode:
    graph = drawing.graph
    node = graph.nodes[node_id]
    kind = graph.kind(node_id)
    return DNode(
        key=node_id,
        safe=ids.get("n_", node_id),
        sub=sub,
        kind=kind,
        headline=_headline(kind, node),
        detail=_detail(node_id, node),
        figures=figures_text(kind, counts.get(node_id)),
        start=graph.starts[sub] == node_id,
        tooltip=_tooltip(node_id, node),
        outcome=_outcome(counts.get(node_id)) if kind == "notification" else None,
    )


def _outcome(figures: NodeCounts | None) -> tuple[float, float] | None:
    sent = (figures or {}).get("sent", 0)
    if not figures or sent <= 0:
        return None
    converted = min(figures.get("converted", 0), sent)
    return converted / sent, min(figures.get("no_convert", 0), sent - converted) / sent


def _end_node(*, sub: str, ids: SafeIds, counts: dict[str, NodeCounts]) -> DNode:
    key = end_key(sub)
    return DNode(
        key=key,
        safe=ids.get("end_", sub),
        sub=sub,
        kind="end",
        headline="end",
        detail="",
        figures=figures_text("end", counts.get(key)),
        start=False,
        tooltip=f"end of sub-campaign {sub}",
    )


# ------------------------------------------------------------------ building


def build(campaign: Campaign, *, counts: dict[str, NodeCounts] | None = None) -> Drawing:
    graph = CampaignGraph(campaign)
    drawing = Drawing(campaign=campaign, graph=graph)
    ids = SafeIds()
    figures = counts or {}
    back = graph.back_edges()
    ends_used = {campaign.subcampaign_of(e.source) for e in graph.edges if e.target == END}
    for sub_id, sub in campaign.subcampaigns.items():
        keys = list(sub.nodes)
        for node_id in keys:
            drawing.nodes[node_id] = _node(
                drawing=drawing, node_id=node_id, sub=sub_id, ids=ids, counts=figures
            )
        if sub_id in ends_used:
            end = _end_node(sub=sub_id, ids=ids, counts=figures)
            drawing.nodes[end.key] = end
            keys.append(end.key)
        drawing.clusters.append(
            DCluster(
                sub=sub_id,
                safe=ids.get("sub_", sub_id),
                entry=entry_text(sub),
                start=sub.start,
                nodes=keys,
            )
        )
    for index, edge in enumerate(graph.edges):
        target = (
            end_key(campaign.subcampaign_of(edge.source)) if edge.target == END else edge.target
        )
        drawing.edges.append(
            DEdge(
                index=index,
                source=edge.source,
                target=target,
                kind=edge.kind,
                label=edge_label(edge),
                back=(edge.source, edge.target) in back,
            )
        )
    return drawing
