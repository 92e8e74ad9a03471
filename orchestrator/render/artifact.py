"""The flowchart as Prefect shows it: markdown with pictures, for a markdown artifact.

The open-source Prefect UI renders markdown but not mermaid; it does show an image
whose source is a data URI. So each sub-campaign is drawn by our SVG writer, with
its live counts, as its own picture (side by side, the sub-campaigns of a large
campaign would be shrunk past reading at the UI's width), embedded as
`![…](data:image/svg+xml;base64,…)`. The mermaid source follows in a collapsed
`<details>` block for people who paste it elsewhere.
"""

from __future__ import annotations

import base64
from html import escape

from orchestrator.language.spec import Campaign
from orchestrator.render import to_mermaid, to_svg
from orchestrator.render.model import NodeCounts, end_key

MAX_PICTURE_BYTES = 200_000  # one sub-campaign's SVG; a larger one is named, not embedded
MAX_MERMAID_BYTES = 60_000


def flowchart_markdown(
    campaign: Campaign,
    *,
    counts: dict[str, NodeCounts],
    exits: dict[str, int],
    dashboard_url: str | None = None,
) -> str:
    """Title, exits, a link to the dashboard page (when there is a public URL), one
    picture per sub-campaign, then the mermaid source, collapsed."""
    lines = [f"# {markdown_text(campaign.title)}", ""]
    summary = ", ".join(f"{reason.replace('_', ' ')} {n}" for reason, n in sorted(exits.items()))
    link = f" · [Open in the campaign dashboard]({dashboard_url})" if dashboard_url else ""
    lines += [f"**Exits:** {summary or 'none yet'}{link}", ""]
    for name, sub in campaign.subcampaigns.items():
        one = campaign.model_copy(update={"subcampaigns": {name: sub}})
        keys = {*sub.nodes, end_key(name)}
        svg = to_svg(one, counts={k: v for k, v in counts.items() if k in keys})
        lines.append(f"## {markdown_text(name)}")
        lines.append("")
        data = svg.encode()
        if len(data) > MAX_PICTURE_BYTES:
            lines.append(
                f"*This sub-campaign's drawing is {len(data) // 1000} kB, more than an artifact "
                "holds; `campaign render --format svg --counts` draws it.*"
            )
        else:
            picture = base64.b64encode(data).decode()
            lines.append(f"![{markdown_text(name)} flowchart](data:image/svg+xml;base64,{picture})")
        lines.append("")
    mermaid = to_mermaid(campaign, counts=counts).rstrip()
    if len(mermaid.encode()) <= MAX_MERMAID_BYTES:
        # one HTML block (no blank line inside), so the source stays inside the collapsed
        # block: the UI renders markdown between HTML tags as separate blocks
        source = escape("\n".join(line for line in mermaid.splitlines() if line.strip()))
        lines += [
            f"<details><summary>Mermaid source</summary><pre><code>{source}</code></pre></details>",
            "",
        ]
    return "\n".join(lines)


def markdown_text(value: str) -> str:
    """Plain text in markdown: HTML escaped, and the characters markdown acts on quoted."""
    out = escape(value, quote=False)
    for char in "\\`*_[]#!|":
        out = out.replace(char, "\\" + char)
    return " ".join(out.split())
