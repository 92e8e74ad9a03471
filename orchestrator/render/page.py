"""A single self-contained html page: summary, settings, the svg flowchart, a node table.

Nothing is fetched: css and a small vanilla script are inline, and so is the svg.
Hovering a node (in the chart or the table) highlights it and its edges.
"""

from __future__ import annotations

from html import escape

from orchestrator.language.spec import (
    END,
    AnyNode,
    Campaign,
    NotificationNode,
    SendTimeSpec,
    Settings,
    format_duration,
)
from orchestrator.render.model import KIND_WORDS, Drawing, NodeCounts, percent

_CSS = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 28px 48px; color: var(--ink); background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 10px; }
code { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  background: var(--soft); padding: 1px 4px; border-radius: 4px; word-break: break-all; }
.muted { color: var(--muted); }
code.id { white-space: nowrap; word-break: normal; }
.lead { max-width: 72em; margin: 6px 0 0; }
dl.settings { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr));
  gap: 8px 16px; margin: 0; }
dl.settings div { border: 1px solid var(--line); border-radius: 8px; padding: 6px 10px; }
dl.settings dt { font-size: 12px; color: var(--muted); }
dl.settings dd { margin: 0; font-weight: 600; }
.toolbar { margin: 0 0 8px; font-size: 13px; color: var(--muted); }
.chart { overflow: auto; border: 1px solid var(--line); border-radius: 10px; max-height: 88vh; }
.chart svg { display: block; }
.chart.fit svg { width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 6px 8px; text-align: left;
  vertical-align: top; }
th { background: var(--soft); position: sticky; top: 0; }
tr.hl td { background: #fff8c5; }
.kind { display: inline-block; padding: 0 6px; border-radius: 10px; font-size: 12px;
  border: 1px solid var(--line); }
.kind.notification { background: #fff; } .kind.split { background: #fbefff; }
.kind.branch { background: #ddf4ff; } .kind.wait { background: #fff8c5; }
.badge { font-size: 11px; font-weight: 700; color: #fff; background: var(--ink);
  border-radius: 8px; padding: 0 6px; margin-left: 4px; }
ul.edges { margin: 0; padding: 0; list-style: none; white-space: nowrap; }
.e-convert { color: #1a7f37; font-weight: 600; } .e-no_convert { color: #c4570e; font-weight: 600; }
.e-split { color: #8250df; } .e-branch { color: #0969da; } .e-else, .e-next { color: #59636e; }
"""

_SCRIPT = """
(function () {
  var svg = document.querySelector('.chart svg');
  var fit = document.getElementById('fit');
  if (fit) fit.addEventListener('change', function () {
    document.querySelector('.chart').classList.toggle('fit', fit.checked);
  });
  if (!svg) return;
  function each(sel, fn) { Array.prototype.forEach.call(document.querySelectorAll(sel), fn); }
  function focus(id) {
    svg.classList.add('focus');
    each('[data-source],[data-target]', function (el) {
      var d = el.dataset;
      if (d.source === id || d.target === id) {
        el.classList.add('hl');
        each('[data-node]', function (n) {
          if (n.dataset.node === d.source || n.dataset.node === d.target) n.classList.add('hl');
        });
      }
    });
    each('[data-node]', function (n) { if (n.dataset.node === id) n.classList.add('hl'); });
  }
  function blur() {
    svg.classList.remove('focus');
    each('.hl', function (el) { el.classList.remove('hl'); });
  }
  each('[data-node]', function (el) {
    el.addEventListener('mouseenter', function () { focus(el.dataset.node); });
    el.addEventListener('mouseleave', blur);
  });
})();
"""


def _t(text: object) -> str:
    return escape(str(text), quote=True)


# ------------------------------------------------------------------ settings


def settings_rows(campaign: Campaign) -> list[tuple[str, str]]:
    """The settings summary as (name, value) pairs of plain text."""
    s: Settings = campaign.settings
    quiet = f"{s.quiet_hours.start:%H:%M}–{s.quiet_hours.end:%H:%M}" if s.quiet_hours else "none"
    freq = (
        f"{s.frequency_cap.max} per {format_duration(s.frequency_cap.per)} (all campaigns)"
        if s.frequency_cap
        else "none"
    )
    return [
        ("goal", campaign.goal),
        ("spacing", format_duration(s.spacing)),
        ("follow-up cap", f"{s.followup_cap} in a row"),
        ("conversion window", format_duration(s.window)),
        ("quiet hours", quiet),
        ("frequency cap", freq),
        ("max sends", str(s.max_sends) if s.max_sends is not None else "no limit"),
        ("holdout", percent(round(s.holdout * 10000), 10000)),
        ("re-entry", format_duration(s.reentry) if s.reentry else "never"),
        ("exit on", ", ".join(s.exit_on) or "none"),
        ("schedule", s.schedule),
        ("timezone", s.timezone),
        ("ttl · urgency", f"{format_duration(s.ttl)} · {s.urgency}"),
        ("rate limit", str(s.rate_limit) if s.rate_limit is not None else "none"),
        ("send time", _send_time(s.send_time)),
    ]


def _send_time(spec: SendTimeSpec) -> str:
    if spec.mode == "immediate":
        return "at once"
    return (
        f"best hour within {format_duration(spec.max_delay)} "
        f"(exploring {percent(round(spec.explore * 10000), 10000)}, "
        f"comparison {percent(round(spec.compare * 10000), 10000)})"
    )


def _settings(campaign: Campaign) -> str:
    items = "".join(
        f"<div><dt>{_t(name)}</dt><dd>{_t(value)}</dd></div>"
        for name, value in settings_rows(campaign)
    )
    return f'<h2>Settings</h2><dl class="settings">{items}</dl>'


# ------------------------------------------------------------------ node table


def _content(node: AnyNode) -> str:
    parts: list[str] = []
    if isinstance(node, NotificationNode):
        n = node.notification
        parts.append(f"<strong>{_t(n.title)}</strong>")
        if n.body:
            parts.append(_t(n.body))
        if n.url:
            parts.append(f"<code>{_t(n.url)}</code>")
        if n.actions:
            parts.append("actions: " + ", ".join(_t(a.title) for a in n.actions))
        if node.delay:
            parts.append(f"waits {_t(format_duration(node.delay))} before sending")
        if node.at is not None:
            parts.append(f"sends at {node.at:%H:%M}, the subscriber's time")
        elif node.send_time is not None:
            parts.append(f"send time: {_t(_send_time(node.send_time))}")
    if node.description:
        parts.append(f'<span class="muted">{_t(node.description)}</span>')
    return "<br>".join(parts)


def _window_goal(campaign: Campaign, node: AnyNode) -> tuple[str, str]:
    if not isinstance(node, NotificationNode):
        return "", ""
    window = (
        _t(format_duration(node.window))
        if node.window
        else f'<span class="muted">{_t(format_duration(campaign.settings.window))}</span>'
    )
    goal = _t(node.goal) if node.goal else f'<span class="muted">{_t(campaign.goal)}</span>'
    return window, goal


def _edges(drawing: Drawing, node_id: str) -> str:
    items = []
    for edge in drawing.edges:
        if edge.source != node_id:
            continue
        target = END if edge.target.startswith(f"{END}:") else edge.target
        word = edge.label or KIND_WORDS[edge.kind]
        items.append(
            f'<li><span class="e-{edge.kind}">{_t(word)}</span> → <code>{_t(target)}</code></li>'
        )
    return f'<ul class="edges">{"".join(items)}</ul>'


def figures_cell(figures: NodeCounts | None) -> str:
    if not figures:
        return ""
    text = " · ".join(f"{name.replace('_', ' ')} {value}" for name, value in figures.items())
    if figures.get("sent") and "converted" in figures:
        text += f" · conv {percent(figures['converted'], figures['sent'])}"
    return _t(text)


def _row(drawing: Drawing, node_id: str, *, counts: dict[str, NodeCounts] | None) -> str:
    campaign, shown = drawing.campaign, drawing.nodes[node_id]
    node = drawing.graph.nodes[node_id]
    window, goal = _window_goal(campaign, node)
    start = '<span class="badge">start</span>' if shown.start else ""
    cells = [
        _t(shown.sub),
        f'<code class="id">{_t(node_id)}</code>{start}',
        f'<span class="kind {shown.kind}">{_t(shown.headline if shown.kind == "wait" else shown.kind)}</span>',
        _content(node),
        window,
        goal,
        _edges(drawing, node_id),
    ]
    if counts is not None:
        cells.append(figures_cell(counts.get(node_id)))
    tds = "".join(f"<td>{cell}</td>" for cell in cells)
    return f'<tr data-node="{_t(node_id)}">{tds}</tr>'


def _table(drawing: Drawing, counts: dict[str, NodeCounts] | None) -> str:
    heads = ["sub-campaign", "node", "kind", "title / body", "window", "goal", "edges"]
    if counts is not None:
        heads.append("figures")
    head = "".join(f"<th>{h}</th>" for h in heads)
    rows = "".join(_row(drawing, node_id, counts=counts) for node_id in drawing.graph.nodes)
    return f'<h2>Nodes</h2><table class="nodes"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _exits(exits: dict[str, int] | None) -> str:
    if not exits:
        return ""
    rows = "".join(
        f"<tr><td>{_t(reason.replace('_', ' '))}</td><td>{n}</td></tr>"
        for reason, n in exits.items()
    )
    total = sum(exits.values())
    return (
        '<h2>Journeys ended</h2><table class="exits" style="width:auto">'
        f"<thead><tr><th>reason</th><th>journeys</th></tr></thead><tbody>{rows}"
        f"<tr><td><strong>total</strong></td><td><strong>{total}</strong></td></tr></tbody></table>"
    )


def _segments(campaign: Campaign) -> str:
    if not campaign.segments:
        return ""
    items = "".join(
        f"<li><code>{_t(name)}</code> {_t(seg.description or '')}</li>"
        for name, seg in campaign.segments.items()
    )
    return f"<h2>Segments</h2><ul>{items}</ul>"


# ------------------------------------------------------------------ page


def write(
    drawing: Drawing,
    *,
    picture: str,
    counts: dict[str, NodeCounts] | None,
    exits: dict[str, int] | None,
) -> str:
    campaign = drawing.campaign
    description = f'<p class="lead">{_t(campaign.description)}</p>' if campaign.description else ""
    subs = len(campaign.subcampaigns)
    summary = (
        f'<p class="muted"><code>{_t(campaign.campaign)}</code> · {subs} sub-campaign'
        f"{'s' if subs != 1 else ''} · {len(drawing.graph.nodes)} nodes · goal "
        f"<code>{_t(campaign.goal)}</code></p>"
    )
    chart = (
        '<h2>Flowchart</h2><p class="toolbar"><label><input type="checkbox" id="fit"> '
        "fit to width</label> · hover a node to follow its edges</p>"
        f'<div class="chart">{picture}</div>'
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_t(campaign.title)} · campaign-flow</title><style>{_CSS}</style></head>\n"
        f"<body><header><h1>{_t(campaign.title)}</h1>{summary}{description}</header>\n"
        f"{_settings(campaign)}\n{chart}\n{_table(drawing, counts)}\n{_exits(exits)}"
        f"{_segments(campaign)}\n<script>{_SCRIPT}</script></body></html>\n"
    )
