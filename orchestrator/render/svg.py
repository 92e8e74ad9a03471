"""A standalone SVG of the laid-out drawing: no scripts, no external resources.

Elements carry classes and data attributes so pages and tests can find them:
`<g class="cluster" data-subcampaign=...>`, `<g class="node KIND [start]"
data-node=ID data-subcampaign=...>`, `<path class="edge KIND" data-source=...
data-target=...>` and `<g class="edge-label KIND" ...>`. End nodes are keyed
`end:SUB`.
"""

from __future__ import annotations

from html import escape

from orchestrator.render.geometry import (
    FONT,
    HEADER_H,
    SMALL,
    Box,
    ClusterBox,
    Label,
    Layout,
    Route,
    node_lines,
    text_width,
)
from orchestrator.render.model import KIND_WORDS, DNode, Drawing
from orchestrator.render.routes import fmt

FONT_FAMILY = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
INK = "#1f2328"
MUTED = "#59636e"

EDGE_STYLES = {
    "convert": ("#1a7f37", 2.6, ""),
    "no_convert": ("#c4570e", 1.8, "7 4"),
    "split": ("#8250df", 1.8, ""),
    "branch": ("#0969da", 1.8, ""),
    "else": ("#6e7781", 1.6, "2 3"),
    "next": ("#6e7781", 1.8, ""),
}

NODE_STYLES = {
    "notification": ("#ffffff", "#6e7781"),
    "split": ("#fbefff", "#8250df"),
    "branch": ("#ddf4ff", "#0969da"),
    "wait": ("#fff8c5", "#9a6700"),
    "end": ("#eaeef2", "#6e7781"),
}

_CSS = """
.edge, .edge-label, .node { transition: opacity .15s; }
svg.focus .edge, svg.focus .edge-label, svg.focus .node { opacity: .18; }
svg.focus .hl { opacity: 1; }
svg.focus path.hl { stroke-width: 3.2px; }
.node { cursor: default; }
"""


def attr(value: str) -> str:
    return escape(value, quote=True)


def _marker(kind: str, color: str) -> str:
    return (
        f'<marker id="arrow-{kind}" viewBox="0 0 10 10" refX="9" refY="5" '
        f'markerWidth="9" markerHeight="9" markerUnits="userSpaceOnUse" orient="auto">'
        f'<path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>'
    )


def _defs() -> str:
    markers = [_marker(kind, color) for kind, (color, _, _) in EDGE_STYLES.items()]
    markers.append(_marker("entry", INK))
    return f"<defs><style>{_CSS}</style>{''.join(markers)}</defs>"


def _stroke(kind: str) -> str:
    color, width, dash = EDGE_STYLES[kind]
    dashes = f' stroke-dasharray="{dash}"' if dash else ""
    return f'stroke="{color}" stroke-width="{width}"{dashes}'


# ------------------------------------------------------------------ header and legend


def _legend(x: float, y: float) -> tuple[str, float]:
    parts, cursor = ['<g class="legend">'], x
    for kind in EDGE_STYLES:
        word = KIND_WORDS[kind]
        parts.append(
            f'<path d="M{fmt(cursor)},{fmt(y)} H{fmt(cursor + 30)}" fill="none" {_stroke(kind)} '
            f'marker-end="url(#arrow-{kind})"/>'
            f'<text x="{fmt(cursor + 38)}" y="{fmt(y + 4)}" font-size="{SMALL}" '
            f'fill="{MUTED}">{escape(word)}</text>'
        )
        cursor += 46 + text_width(word, SMALL) + 18
    cy = fmt(y)
    parts.append(
        f'<circle cx="{fmt(cursor + 4)}" cy="{cy}" r="5" fill="{INK}"/>'
        f'<text x="{fmt(cursor + 14)}" y="{fmt(y + 4)}" font-size="{SMALL}" '
        f'fill="{MUTED}">entry (start node has a bold border)</text></g>'
    )
    return "".join(parts), cursor + 14 + text_width("entry (start node has a bold border)", SMALL)


def _header(drawing: Drawing) -> tuple[str, float]:
    campaign = drawing.campaign
    sub = f"{campaign.campaign} · goal: {campaign.goal}"
    legend, legend_right = _legend(18, HEADER_H - 22)
    title_w = text_width(campaign.title, 18, bold=True)
    bars = ""
    if any(node.outcome is not None for node in drawing.nodes.values()):
        words = (
            ("converted", EDGE_STYLES["convert"][0]),
            ("did not", EDGE_STYLES["no_convert"][0]),
            ("in window", "#8c959f"),
        )
        bars = (
            '<tspan fill="'
            + MUTED
            + '"> · sends: </tspan>'
            + "".join(
                f'<tspan fill="{color}" font-weight="700">▬ {word} </tspan>'
                for word, color in words
            )
        )
        sub_w = text_width(sub + " · sends: " + " ".join(f"▬ {w}" for w, _ in words), 12) + 20
    else:
        sub_w = text_width(sub, 12)
    svg = (
        f'<g class="header"><text x="16" y="28" font-size="18" font-weight="700" '
        f'fill="{INK}">{escape(campaign.title)}</text>'
        f'<text x="{fmt(28 + title_w)}" y="28" font-size="12" fill="{MUTED}">'
        f"{escape(sub)}{bars}</text>{legend}</g>"
    )
    return svg, max(legend_right, 40 + title_w + sub_w) + 16


# ------------------------------------------------------------------ clusters


def _cluster_bg(cluster: ClusterBox) -> str:
    return (
        f'<rect class="cluster-bg" x="{fmt(cluster.x)}" y="{fmt(cluster.y)}" '
        f'width="{fmt(cluster.w)}" height="{fmt(cluster.h)}" rx="12" fill="#f6f8fa"/>'
    )


def _cluster(cluster: ClusterBox) -> str:
    """The cluster's border and title, drawn over edges (the title with a halo)."""
    sub = attr(cluster.sub)
    halo = 'stroke="#f6f8fa" stroke-width="4" stroke-linejoin="round" paint-order="stroke"'
    return (
        f'<g class="cluster" data-subcampaign="{sub}">'
        f'<rect x="{fmt(cluster.x)}" y="{fmt(cluster.y)}" width="{fmt(cluster.w)}" '
        f'height="{fmt(cluster.h)}" rx="12" fill="none" stroke="#d1d9e0"/>'
        f'<text x="{fmt(cluster.x + 14)}" y="{fmt(cluster.y + 22)}" font-size="{FONT}" '
        f'font-weight="700" fill="{INK}" {halo}>{escape(cluster.sub)}</text>'
        f'<text x="{fmt(cluster.x + 14)}" y="{fmt(cluster.y + 40)}" font-size="{SMALL + 0.5}" '
        f'fill="{MUTED}" {halo}>{escape(cluster.entry)}</text></g>'
    )


def _entry(cluster: ClusterBox, start: Box, *, from_left: bool) -> str:
    """A dot and an arrow into the start node: from above, or from the left when edges come in
    from above."""
    if from_left:
        x, y = start.x - start.w / 2, start.y
        dot, line = (x - 26, y), f"M{fmt(x - 21)},{fmt(y)} H{fmt(x - 1)}"
    else:
        x, y = start.x, start.top
        dot, line = (x, y - 24), f"M{fmt(x)},{fmt(y - 19)} V{fmt(y - 1)}"
    return (
        f'<g class="entry" data-subcampaign="{attr(cluster.sub)}">'
        f'<circle cx="{fmt(dot[0])}" cy="{fmt(dot[1])}" r="5" fill="{INK}"/>'
        f'<path d="{line}" stroke="{INK}" stroke-width="1.6" marker-end="url(#arrow-entry)"/></g>'
    )


# ------------------------------------------------------------------ nodes


def _shape(box: Box, *, fill: str, stroke: str, width: float) -> str:
    paint = f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"'
    x, y, w, h = box.left, box.top, box.w, box.h
    if box.kind in ("split", "branch"):
        inset = h / 2 * 0.6 if box.kind == "split" else w / 2
        xs = [x, x + inset, x + w - inset, x + w, x + w - inset, x + inset]
        ys = [box.y, y, y, box.y, y + h, y + h]
        points = " ".join(f"{fmt(px)},{fmt(py)}" for px, py in zip(xs, ys, strict=True))
        return f'<polygon points="{points}" {paint}/>'
    radius = {"notification": 10.0, "wait": 4.0, "end": h / 2}[box.kind]
    return (
        f'<rect x="{fmt(x)}" y="{fmt(y)}" width="{fmt(w)}" height="{fmt(h)}" '
        f'rx="{fmt(radius)}" {paint}/>'
    )


_LINE_COLORS = {"title": INK, "id": MUTED, "counts": "#0550ae"}


def _node_text(node: DNode, box: Box) -> str:
    lines = node_lines(node)
    baseline = box.y - (17.0 + 15.0 * (len(lines) - 1)) / 2 + 13
    parts = []
    for line in lines:
        weight = ' font-weight="700"' if line.bold else ""
        parts.append(
            f'<text class="{line.role}" x="{fmt(box.x)}" y="{fmt(baseline)}" '
            f'font-size="{line.size}"{weight} fill="{_LINE_COLORS[line.role]}" '
            f'text-anchor="middle">{escape(line.text)}</text>'
        )
        baseline += 15
    return "".join(parts)


def _outcome_bar(node: DNode, box: Box) -> str:
    """Along a notification's bottom edge, what its sends led to: green for the share that
    converted, orange for the share that did not, grey for those still in their window."""
    if node.outcome is None:
        return ""
    converted, dropped = node.outcome
    left, width, y = box.left + 10, box.w - 20, box.top + box.h - 7
    parts = [
        f'<rect class="outcome pending" x="{fmt(left)}" y="{fmt(y)}" width="{fmt(width)}" '
        f'height="4" rx="2" fill="#d1d9e0"/>'
    ]
    cursor = left
    for name, share, color in (
        ("converted", converted, EDGE_STYLES["convert"][0]),
        ("dropped", dropped, EDGE_STYLES["no_convert"][0]),
    ):
        if share > 0:
            parts.append(
                f'<rect class="outcome {name}" x="{fmt(cursor)}" y="{fmt(y)}" '
                f'width="{fmt(width * share)}" height="4" fill="{color}"/>'
            )
            cursor += width * share
    return '<g class="outcomes">' + "".join(parts) + "</g>"


def _node(node: DNode, box: Box) -> str:
    fill, stroke = NODE_STYLES[node.kind]
    classes = f"node {node.kind}" + (" start" if node.start else "")
    width = 2.6 if node.start else 1.2
    return (
        f'<g class="{classes}" data-node="{attr(node.key)}" data-subcampaign="{attr(node.sub)}">'
        f"<title>{escape(node.tooltip)}</title>"
        f"{_shape(box, fill=fill, stroke=INK if node.start else stroke, width=width)}"
        f"{_node_text(node, box)}{_outcome_bar(node, box)}</g>"
    )


# ------------------------------------------------------------------ edges


def _edge(route: Route) -> str:
    edge = route.edge
    return (
        f'<path class="edge {edge.kind}" data-edge="{edge.index}" '
        f'data-source="{attr(edge.source)}" data-target="{attr(edge.target)}" '
        f'd="{route.d}" fill="none" {_stroke(edge.kind)} marker-end="url(#arrow-{edge.kind})"/>'
    )


def _label(label: Label) -> str:
    edge = label.edge
    color = EDGE_STYLES[edge.kind][0]
    return (
        f'<g class="edge-label {edge.kind}" data-edge="{edge.index}" '
        f'data-source="{attr(edge.source)}" data-target="{attr(edge.target)}">'
        f'<rect x="{fmt(label.x - label.w / 2)}" y="{fmt(label.y - label.h / 2)}" '
        f'width="{fmt(label.w)}" height="{fmt(label.h)}" rx="4" fill="#ffffff" '
        f'fill-opacity="0.94" stroke="{color}" stroke-opacity="0.35"/>'
        f'<text x="{fmt(label.x)}" y="{fmt(label.y + 3.8)}" font-size="{SMALL}" '
        f'fill="{color}" text-anchor="middle">{escape(edge.label)}</text></g>'
    )


# ------------------------------------------------------------------ the document


def write(drawing: Drawing, layout: Layout) -> str:
    header, header_w = _header(drawing)
    width, height = max(layout.width, header_w), layout.height
    entered = {e.target for e in drawing.edges if not e.back}
    starts = [
        _entry(c, layout.boxes[c.start], from_left=c.start in entered)
        for c in layout.clusters
        if c.start in layout.boxes
    ]
    body = [
        _defs(),
        f'<rect class="background" width="{fmt(width)}" height="{fmt(height)}" fill="#ffffff"/>',
        header,
        *(_cluster_bg(c) for c in layout.clusters),
        '<g class="edges">',
        *(_edge(r) for r in layout.routes),
        "</g>",
        *(_cluster(c) for c in layout.clusters),
        *starts,
        '<g class="nodes">',
        *(_node(drawing.nodes[key], box) for key, box in layout.boxes.items()),
        "</g>",
        '<g class="edge-labels">',
        *(_label(label) for label in layout.labels),
        "</g>",
    ]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="campaign-graph" '
        f'data-campaign="{attr(drawing.campaign.campaign)}" width="{fmt(width)}" '
        f'height="{fmt(height)}" viewBox="0 0 {fmt(width)} {fmt(height)}" '
        f'font-family="{FONT_FAMILY}" role="img" aria-label="{attr(drawing.campaign.title)}">'
        f"<title>{escape(drawing.campaign.title)}</title>" + "\n".join(body) + "</svg>\n"
    )
