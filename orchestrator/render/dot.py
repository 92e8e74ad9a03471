"""Graphviz DOT text: one `subgraph cluster_*` per sub-campaign, rankdir=TB."""

from __future__ import annotations

from orchestrator.render.model import DCluster, DEdge, DNode, Drawing

_FONT = "Helvetica"

_NODE_ATTRS = {
    "notification": 'shape=box style="rounded,filled" fillcolor="#ffffff" color="#57606a"',
    "split": 'shape=hexagon style=filled fillcolor="#fbefff" color="#8250df"',
    "branch": 'shape=diamond style=filled fillcolor="#ddf4ff" color="#0969da"',
    "wait": 'shape=box style=filled fillcolor="#fff8c5" color="#9a6700" fontsize=10',
    "end": 'shape=oval style=filled fillcolor="#eaeef2" color="#57606a"',
}

_EDGE_ATTRS = {
    "convert": "color=darkgreen fontcolor=darkgreen penwidth=2",
    "no_convert": "style=dashed color=darkorange fontcolor=darkorange3",
    "split": 'color="#8250df" fontcolor="#8250df"',
    "branch": 'color="#0969da" fontcolor="#0969da"',
    "else": 'style=dotted color="#57606a" fontcolor="#57606a"',
    "next": 'color="#57606a" fontcolor="#57606a"',
}


def quote(text: str) -> str:
    """A DOT double-quoted string: backslash, quote and line breaks escaped."""
    body = text.replace("\\", "\\\\").replace('"', '\\"')
    body = body.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return f'"{body}"'


def _node_line(node: DNode) -> str:
    lines = [node.headline]
    if node.detail:
        lines.append(("▶ " if node.start else "") + node.detail)
    if node.figures:
        lines.append(node.figures)
    extra = " penwidth=3" if node.start else ""
    label = quote("\n".join(lines))
    tooltip = quote(node.tooltip)
    return f"    {node.safe} [{_NODE_ATTRS[node.kind]}{extra} label={label} tooltip={tooltip}];"


def _cluster_lines(drawing: Drawing, cluster: DCluster) -> list[str]:
    lines = [
        f"  subgraph cluster_{cluster.safe} {{",
        f"    label={quote(cluster.sub + chr(10) + cluster.entry)};",
        '    style="rounded,filled"; fillcolor="#f6f8fa"; color="#d0d7de"; fontsize=12;',
    ]
    lines.extend(_node_line(drawing.nodes[key]) for key in cluster.nodes)
    lines.append("  }")
    return lines


def _edge_line(drawing: Drawing, edge: DEdge) -> str:
    source = drawing.nodes[edge.source].safe
    target = drawing.nodes[edge.target].safe
    label = f" label={quote(edge.label)}" if edge.label else ""
    return f"  {source} -> {target} [{_EDGE_ATTRS[edge.kind]}{label}];"


def write(drawing: Drawing) -> str:
    campaign = drawing.campaign
    lines = [
        f"digraph {quote(campaign.campaign)} {{",
        f"  graph [rankdir=TB fontname={_FONT} labelloc=t fontsize=16 "
        f"label={quote(campaign.title)} newrank=true nodesep=0.4 ranksep=0.6];",
        f"  node [fontname={_FONT} fontsize=11];",
        f"  edge [fontname={_FONT} fontsize=10];",
    ]
    for cluster in drawing.clusters:
        lines.extend(_cluster_lines(drawing, cluster))
    lines.extend(_edge_line(drawing, edge) for edge in drawing.edges)
    lines.append("}")
    return "\n".join(lines) + "\n"
