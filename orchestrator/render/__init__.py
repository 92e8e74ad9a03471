"""Drawings of a campaign's flowchart: mermaid, dot, svg and a self-contained html page.

Each sub-campaign is a cluster titled with its id and entry; convert edges are
solid green, no-convert edges dashed orange, with their delays; split edges
carry their shares, branch edges their segment. Each sub-campaign that ends a
journey gets its own end node. The svg is laid out here, in pure Python.

`counts` (node id -> figures such as entered/sent/converted/deferred) adds live
figures to every drawing; an end node's figures are keyed `end:SUB` (exits by
reason). `exits` (reason -> journeys) adds a campaign-wide exit table to html.
"""

from __future__ import annotations

from orchestrator.language.spec import Campaign
from orchestrator.render import dot, layout, mermaid, page, svg
from orchestrator.render.model import NodeCounts, build, end_key

__all__ = [
    "FORMATS",
    "NodeCounts",
    "artifact",  # the Prefect artifact's markdown (imported by flows/)
    "end_key",
    "render",
    "to_dot",
    "to_html",
    "to_mermaid",
    "to_svg",
]

FORMATS = ("mermaid", "dot", "svg", "html")


def to_mermaid(campaign: Campaign, *, counts: dict[str, NodeCounts] | None = None) -> str:
    return mermaid.write(build(campaign, counts=counts))


def to_dot(campaign: Campaign, *, counts: dict[str, NodeCounts] | None = None) -> str:
    return dot.write(build(campaign, counts=counts))


def to_svg(campaign: Campaign, *, counts: dict[str, NodeCounts] | None = None) -> str:
    drawing = build(campaign, counts=counts)
    return svg.write(drawing, layout.compute(drawing))


def to_html(
    campaign: Campaign,
    *,
    counts: dict[str, NodeCounts] | None = None,
    exits: dict[str, int] | None = None,
) -> str:
    drawing = build(campaign, counts=counts)
    picture = svg.write(drawing, layout.compute(drawing))
    return page.write(drawing, picture=picture, counts=counts, exits=exits)


def render(
    campaign: Campaign,
    fmt: str,
    *,
    counts: dict[str, NodeCounts] | None = None,
    exits: dict[str, int] | None = None,
) -> str:
    """The drawing in `fmt` (mermaid, dot, svg or html)."""
    if fmt == "mermaid":
        return to_mermaid(campaign, counts=counts)
    if fmt == "dot":
        return to_dot(campaign, counts=counts)
    if fmt == "svg":
        return to_svg(campaign, counts=counts)
    if fmt == "html":
        return to_html(campaign, counts=counts, exits=exits)
    raise ValueError(f"unknown drawing format {fmt!r}: use one of {', '.join(FORMATS)}")
