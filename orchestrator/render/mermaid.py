"""Mermaid flowchart text (Mermaid 10+, as GitHub and the Prefect UI render it).

Every label is a quoted string with mermaid's entity codes for the characters
that would end it or be read as markup; node ids are `n_<id>` made of
[A-Za-z0-9_]. Edges are written after the subgraphs so `linkStyle` indices are
simply the order of the edge lines.
"""

from __future__ import annotations

from orchestrator.render.model import DCluster, DEdge, DNode, Drawing

_ENTITIES = {
    "#": "#35;",  # first: the others introduce '#'
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    "&": "#amp;",
    "`": "#96;",
    "|": "#124;",
    "\n": " ",
}

_SHAPES = {
    "notification": ('("', '")'),
    "split": ('{{"', '"}}'),
    "branch": ('{"', '"}'),
    "wait": ('["', '"]'),
    "end": ('(["', '"])'),
}

_ARROWS = {
    "convert": "==>",
    "no_convert": "-.->",
    "else": "-.->",
}

_LINK_STYLES = {
    "convert": "stroke:#1a7f37,stroke-width:3px",
    "no_convert": "stroke:#d1661b,stroke-width:2px,stroke-dasharray:6 4",
    "split": "stroke:#8250df,stroke-width:2px",
    "branch": "stroke:#0969da,stroke-width:2px",
    "else": "stroke:#57606a,stroke-width:1.5px,stroke-dasharray:3 3",
    "next": "stroke:#57606a,stroke-width:2px",
}

_CLASS_DEFS = {
    "notification": "fill:#ffffff,stroke:#57606a,stroke-width:1px,color:#1f2328",
    "split": "fill:#fbefff,stroke:#8250df,stroke-width:1px,color:#1f2328",
    "branch": "fill:#ddf4ff,stroke:#0969da,stroke-width:1px,color:#1f2328",
    "wait": "fill:#fff8c5,stroke:#9a6700,stroke-width:1px,color:#1f2328",
    "endnode": "fill:#eaeef2,stroke:#57606a,stroke-width:1px,color:#1f2328",
    "start": "stroke:#1f2328,stroke-width:3px",
}


def escape(text: str) -> str:
    """Text for inside a mermaid "quoted string"."""
    return "".join(_ENTITIES.get(ch, ch) for ch in text)


def _label(node: DNode) -> str:
    lines = [node.headline]
    if node.detail:
        lines.append(("▶ " if node.start else "") + node.detail)
    if node.figures:
        lines.append(node.figures)
    return "<br/>".join(escape(line) for line in lines)


def _node_line(node: DNode) -> str:
    opening, closing = _SHAPES[node.kind]
    return f"    {node.safe}{opening}{_label(node)}{closing}"


def _cluster_lines(drawing: Drawing, cluster: DCluster) -> list[str]:
    title = escape(f"{cluster.sub} · {cluster.entry}")
    lines = [f'  subgraph {cluster.safe}["{title}"]']
    lines.extend(_node_line(drawing.nodes[key]) for key in cluster.nodes)
    lines.append("  end")
    return lines


def _edge_line(drawing: Drawing, edge: DEdge) -> str:
    source = drawing.nodes[edge.source].safe
    target = drawing.nodes[edge.target].safe
    arrow = _ARROWS.get(edge.kind, "-->")
    label = f'|"{escape(edge.label)}"|' if edge.label else ""
    return f"  {source} {arrow}{label} {target}"


def _style_lines(drawing: Drawing) -> list[str]:
    lines = [f"  classDef {name} {style}" for name, style in _CLASS_DEFS.items()]
    by_kind: dict[str, list[str]] = {}
    for node in drawing.nodes.values():
        by_kind.setdefault("endnode" if node.kind == "end" else node.kind, []).append(node.safe)
    lines.extend(f"  class {','.join(safes)} {kind}" for kind, safes in by_kind.items())
    starts = [drawing.nodes[c.start].safe for c in drawing.clusters if c.start in drawing.nodes]
    if starts:
        lines.append(f"  class {','.join(starts)} start")
    by_style: dict[str, list[str]] = {}
    for position, edge in enumerate(drawing.edges):
        by_style.setdefault(_LINK_STYLES[edge.kind], []).append(str(position))
    lines.extend(f"  linkStyle {','.join(nums)} {style}" for style, nums in by_style.items())
    return lines


def write(drawing: Drawing) -> str:
    lines = ["flowchart TB"]
    for cluster in drawing.clusters:
        lines.extend(_cluster_lines(drawing, cluster))
    lines.extend(_edge_line(drawing, edge) for edge in drawing.edges)
    lines.extend(_style_lines(drawing))
    return "\n".join(lines) + "\n"
