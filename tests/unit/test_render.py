"""Drawings of a campaign: mermaid, dot, svg (own layout) and the self-contained html page."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator import render
from orchestrator.language import loader
from orchestrator.language.graph import CampaignGraph
from orchestrator.language.spec import Campaign
from orchestrator.render import layout as layout_module
from orchestrator.render.geometry import text_width
from orchestrator.render.layout import isotonic_place
from orchestrator.render.model import NodeCounts, build, truncate
from orchestrator.render.routes import rect
from tests.helpers import ROOT

EXAMPLES = sorted((ROOT / "campaign_graphs").glob("*.yaml"))
SVG = "{http://www.w3.org/2000/svg}"

# A campaign with every kind of node, entry and setting (docs/language.md's example, grown).
SPEC_EXAMPLE = """\
campaign: cloud-storage-launch
title: Cloud storage launch
goal: signup
settings:
  spacing: 12h
  followup_cap: 2
  window: 48h
  quiet_hours: {start: "21:00", end: "08:00"}
  max_sends: 6
  frequency_cap: {max: 3, per: 7d}
  holdout: 5%
  reentry: never
  exit_on: [unsubscribe]
  ttl: 1d
  urgency: normal
  schedule: "*/5 * * * *"

include: [segments/common.yaml]

segments:
  small_business:
    description: Companies of 2-50 people
    match: {all: [{attr: company_size, gte: 2}, {attr: company_size, lte: 50}]}
  photographers:
    match: {any: [{tag: photographer}, {event: viewed, where: {page: /photo-proofs}, within: 30d}]}
  tax_backup:
    match: {event: viewed, where: {page: /tax-backup}, within: 30d, at_least: 2}
  family_photos:
    match: {all: [{attr: plan, eq: consumer}, {not: {tag: business}}]}

subcampaigns:
  small-business:
    segment: small_business
    start: sb_intro
    nodes:
      sb_intro:
        notification:
          title: "Back up the whole team for $5 a seat"
          body: "{{ subscriber.attributes.company | default('Your team') }}, never lose a file again."
          url: https://example.com/business?utm_campaign={{ campaign.id }}
          icon: https://example.com/icon.png
          actions: [{action: trial, title: Start trial}]
        on_convert: sb_addons
        on_no_convert: {to: sb_photo_angle, delay: 1d}
      sb_photo_angle:
        branch:
          - {segment: photographers, to: sb_proofs}
          - {else: sb_last_call}
      sb_proofs:
        notification: {title: "Share proofs with your clients", body: "…", url: https://example.com/proofs}
        window: 72h
        on_convert: sb_addons
        on_no_convert: end
      sb_last_call:
        notification: {title: "Last call: 30 days free", body: "…", url: https://example.com/trial}
        on_convert: sb_addons
      sb_addons:
        notification: {title: "Add version history", body: "…", url: https://example.com/addons}
        goal: purchase
  consumers:
    segment: tax_backup
    start: cta_test
    nodes:
      cta_test:
        split: {preorder_link: 50, free_carafe: 50}
      preorder_link: {notification: {title: "…", body: "…", url: https://example.com/a}, on_no_convert: family_angle}
      free_carafe:  {notification: {title: "…", body: "…", url: https://example.com/b}, on_no_convert: family_angle}
      family_angle: {notification: {title: "Your family photos, safe", body: "…", url: https://example.com/photos}}
  cart-recovery:
    trigger: {event: cart_abandoned, delay: 1h}
    start: cart_nudge
    nodes:
      cart_nudge:
        notification:
          title: "Still thinking about {{ trigger.properties.product }}?"
          body: "Your cart is saved."
          url: "{{ trigger.properties.cart_url }}"
        window: 24h
        on_no_convert: end
"""

COMMON_SEGMENTS = """\
segments:
  newsletter_readers:
    match: {tag: newsletter}
"""

# Quotes, markup, ampersands, templates, '#', backticks and pipes in titles; ids with '-';
# a follow-up loop (a back edge), a loop on one node, a wait, a 3-way split, a branch,
# edges that cross sub-campaigns and a triggered sub-campaign.
TRICKY = """\
campaign: tricky-chars
title: 'Tricky <b>"quotes"</b> & {{ braces }}'
description: "Escaping check: <script>alert(1)</script>"
settings: {followup_cap: 3, max_sends: 6}
segments:
  vip-fans: {match: {tag: vip}}
  everyone: {match: {attr: plan, exists: true}}
subcampaigns:
  main-flow:
    segment: everyone
    start: first-send
    nodes:
      first-send:
        notification:
          title: 'Say "hi" <now> & #1 `tick` | pipe {{ subscriber.id }}'
          body: "<i>body</i> & more"
          url: https://example.com/?a=1&b=2
        on_convert: {to: pause, delay: 1d}
        on_no_convert: {to: retry_send, delay: 2d}
      retry_send:
        notification: {title: "Retry: still there?", url: https://example.com/r}
        on_no_convert: {to: first-send, delay: 3d}
        on_convert: three-way
      pause: {wait: 2d, next: three-way}
      three-way:
        split: {a_leg: 34, b_leg: 33, c_leg: 33}
      a_leg: {notification: {title: "A leg"}, on_no_convert: vip-check}
      b_leg: {notification: {title: "B leg"}, on_no_convert: other_start}
      c_leg: {notification: {title: "C leg"}}
      vip-check:
        branch:
          - {segment: vip-fans, to: other_start}
          - {else: end}
  triggered:
    trigger: {event: cart_abandoned, delay: 1h}
    start: other_start
    nodes:
      other_start:
        notification: {title: "Cart: {{ trigger.properties.product }} & more"}
        on_no_convert: {to: other_start, delay: 1d}
"""


def _load(path: Path) -> Campaign:
    loaded = loader.load(path)
    assert loaded.ok and loaded.campaign is not None, [d.format() for d in loaded.diagnostics]
    return loaded.campaign


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def spec_campaign(tmp_path: Path) -> Campaign:
    (tmp_path / "segments").mkdir()
    _write(tmp_path / "segments", "common.yaml", COMMON_SEGMENTS)
    return _load(_write(tmp_path, "cloud-storage-launch.yaml", SPEC_EXAMPLE))


@pytest.fixture
def tricky(tmp_path: Path) -> Campaign:
    return _load(_write(tmp_path, "tricky.yaml", TRICKY))


def _project_files() -> list[Path]:
    """The project's campaign files that validate (none is fine: the spec example remains)."""
    folder = ROOT / "campaign_graphs"
    files = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
    return [p for p in files if loader.load(p).ok]


CASES = ["spec-example", "tricky", *(p.name for p in _project_files())]


@pytest.fixture(params=CASES)
def any_campaign(request: pytest.FixtureRequest, tmp_path: Path) -> Campaign:
    if request.param == "spec-example":
        (tmp_path / "segments").mkdir()
        _write(tmp_path / "segments", "common.yaml", COMMON_SEGMENTS)
        return _load(_write(tmp_path, "c.yaml", SPEC_EXAMPLE))
    if request.param == "tricky":
        return _load(_write(tmp_path, "c.yaml", TRICKY))
    return _load(ROOT / "campaign_graphs" / request.param)


def _ends(campaign: Campaign) -> set[str]:
    graph = CampaignGraph(campaign)
    return {f"end:{campaign.subcampaign_of(e.source)}" for e in graph.edges if e.target == "end"}


# ------------------------------------------------------------------ every campaign, every format


def test_every_format_renders(any_campaign: Campaign) -> None:
    for fmt in render.FORMATS:
        text = render.render(any_campaign, fmt)
        assert text.strip(), fmt


def test_unknown_format_is_refused(spec_campaign: Campaign) -> None:
    with pytest.raises(ValueError, match="unknown drawing format 'png'"):
        render.render(spec_campaign, "png")


def test_svg_has_a_cluster_per_subcampaign_and_a_box_per_node(any_campaign: Campaign) -> None:
    root = ET.fromstring(render.to_svg(any_campaign))
    assert root.tag == f"{SVG}svg"
    assert {"width", "height", "viewBox"} <= set(root.attrib)
    clusters = [
        g.get("data-subcampaign") for g in root.iter(f"{SVG}g") if g.get("class") == "cluster"
    ]
    assert clusters == list(any_campaign.subcampaigns)
    nodes = [g.get("data-node", "") for g in root.iter(f"{SVG}g") if g.get("data-node")]
    assert sorted(nodes) == sorted([*any_campaign.all_nodes(), *_ends(any_campaign)])
    edges = [p for p in root.iter(f"{SVG}path") if "edge" in (p.get("class") or "").split()]
    assert len(edges) == len(CampaignGraph(any_campaign).edges)


def test_svg_layout_is_clean(any_campaign: Campaign) -> None:
    """No two boxes overlap, every box is inside its cluster, clusters and labels stay clear."""
    drawing = build(any_campaign)
    placed = layout_module.compute(drawing)
    boxes = placed.boxes
    for a, b in itertools.combinations(boxes.values(), 2):
        assert not _overlap(rect(a), rect(b)), (a.key, b.key)
    for key, box in boxes.items():
        frame = placed.clusters[box.cluster]
        assert frame.sub == drawing.nodes[key].sub
        assert frame.x <= box.left and box.right <= frame.x + frame.w, key
        assert frame.y <= box.top and box.bottom <= frame.y + frame.h, key
    for left, right in itertools.pairwise(placed.clusters):
        assert left.x + left.w <= right.x
    for label in placed.labels:
        for box in boxes.values():
            assert not _overlap(rect(label), rect(box)), (label.edge.label, box.key)
    assert placed.width > 0 and placed.height > 0


def test_labels_never_overlap(spec_campaign: Campaign, tricky: Campaign) -> None:
    for campaign in (spec_campaign, tricky):
        placed = layout_module.compute(build(campaign))
        assert len(placed.labels) == sum(1 for r in placed.routes if r.edge.label)
        for one, other in itertools.combinations(placed.labels, 2):
            assert not _overlap(rect(one), rect(other)), (one.edge.label, other.edge.label)


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_mermaid_is_well_formed(any_campaign: Campaign) -> None:
    text = render.to_mermaid(any_campaign)
    lines = text.splitlines()
    assert lines[0] == "flowchart TB"
    assert sum(1 for line in lines if line.strip().startswith("subgraph ")) == len(
        any_campaign.subcampaigns
    )
    assert sum(1 for line in lines if line.strip() == "end") == len(any_campaign.subcampaigns)
    edge_lines = [line for line in lines if re.search(r" (==>|-\.->|-->)", line)]
    assert len(edge_lines) == len(CampaignGraph(any_campaign).edges)
    for line in edge_lines:  # ids are safe: letters, digits, '_'
        assert re.fullmatch(r'  \w+ (==>|-\.->|-->)(\|"[^"]*"\|)? \w+', line), line
    styled = sorted(
        int(n)
        for line in lines
        if line.strip().startswith("linkStyle")
        for n in line.split()[1].split(",")
    )
    assert styled == list(range(len(edge_lines)))


def test_dot_is_structurally_valid(any_campaign: Campaign) -> None:
    text = render.to_dot(any_campaign)
    _check_dot_structure(text)
    assert len(re.findall(r"^\s*subgraph cluster_\w+ \{", text, re.M)) == len(
        any_campaign.subcampaigns
    )
    assert "rankdir=TB" in text
    if shutil.which("dot"):  # graphviz itself, where installed
        subprocess.run(["dot", "-Tsvg"], input=text.encode(), check=True, capture_output=True)


def _check_dot_structure(text: str) -> None:
    """Braces and brackets balance outside quoted strings, and every string is closed."""
    depth = {"{": 0, "[": 0}
    closing = {"}": "{", "]": "["}
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in depth:
            depth[ch] += 1
        elif ch in closing:
            depth[closing[ch]] -= 1
            assert depth[closing[ch]] >= 0
    assert not in_string
    assert depth == {"{": 0, "[": 0}


def test_html_is_self_contained(any_campaign: Campaign) -> None:
    page = render.to_html(any_campaign)
    assert page.startswith("<!doctype html>")
    assert "<svg" in page and "</svg>" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<link" not in page.lower()
    assert page.count("<script") == 1 and "<script>" in page  # one inline script, no src
    assert page.count('<tr data-node="') == len(any_campaign.all_nodes())


# ------------------------------------------------------------------ mermaid


def test_mermaid_clusters_edges_and_labels(spec_campaign: Campaign) -> None:
    text = render.to_mermaid(spec_campaign)
    assert 'subgraph sub_small_business["small-business · segment: small_business"]' in text
    assert 'subgraph sub_consumers["consumers · segment: tax_backup"]' in text
    assert 'subgraph sub_cart_recovery["cart-recovery · trigger: cart_abandoned +1h"]' in text
    assert '  n_sb_intro ==>|"convert"| n_sb_addons' in text
    assert '  n_sb_intro -.->|"no convert · 1d"| n_sb_photo_angle' in text
    assert text.count('|"50%"|') == 2
    assert '  n_sb_photo_angle -->|"photographers"| n_sb_proofs' in text
    assert '  n_sb_photo_angle -.->|"else"| n_sb_last_call' in text
    # one end node per sub-campaign; an edge to `end` goes to its own cluster's end
    for sub in ("small_business", "consumers", "cart_recovery"):
        assert f'    end_{sub}(["end"])' in text
    assert '  n_sb_proofs -.->|"no convert"| end_small_business' in text
    assert '  n_cart_nudge -.->|"no convert"| end_cart_recovery' in text
    assert "class n_sb_intro,n_cta_test,n_cart_nudge start" in text
    assert 'n_cta_test{{"A/B split<br/>▶ cta_test"}}' in text
    assert 'n_sb_photo_angle{"branch<br/>sb_photo_angle"}' in text
    assert 'n_sb_proofs("Share proofs with your clients<br/>sb_proofs")' in text


def test_mermaid_convert_and_no_convert_look_different(spec_campaign: Campaign) -> None:
    lines = render.to_mermaid(spec_campaign).splitlines()
    converts = [line for line in lines if '"convert' in line]
    no_converts = [line for line in lines if '"no convert' in line]
    assert converts and all("==>" in line for line in converts)
    assert no_converts and all("-.->" in line for line in no_converts)
    styles = {line.split(maxsplit=2)[2] for line in lines if line.strip().startswith("linkStyle")}
    assert any("stroke:#1a7f37" in s for s in styles)
    assert any("stroke-dasharray" in s and "#d1661b" in s for s in styles)


def test_mermaid_escapes_labels(tricky: Campaign) -> None:
    text = render.to_mermaid(tricky)
    assert (
        'n_first_send("Say #quot;hi#quot; #lt;now#gt; #amp; #35;1 #96;tick#96; #124; pipe [id]'
        in text
    )
    assert 'subgraph sub_main_flow["main-flow · segment: everyone"]' in text
    assert "n_vip_check" in text and "vip-check" in text  # the id is made safe, shown as written
    for line in text.splitlines():
        for label in re.findall(r'"(.*?)"', line):
            assert "<" not in label.replace("<br/>", ""), line
            assert ">" not in label.replace("<br/>", ""), line
        assert line.count('"') % 2 == 0, line
    assert '  n_retry_send -.->|"no convert · 3d"| n_first_send' in text
    assert '  n_other_start -.->|"no convert · 1d"| n_other_start' in text
    assert '  n_pause -->|"after 2d"| n_three_way' in text
    assert '  n_b_leg -.->|"no convert"| n_other_start' in text  # crosses sub-campaigns


def test_mermaid_safe_ids_never_collide(tmp_path: Path) -> None:
    text = TRICKY.replace("retry_send", "first_send")  # first-send and first_send
    campaign = _load(_write(tmp_path, "c.yaml", text))
    mermaid = render.to_mermaid(campaign)
    assert "    n_first_send(" in mermaid and "    n_first_send_2(" in mermaid


# ------------------------------------------------------------------ dot


def test_dot_styles_and_escaping(spec_campaign: Campaign, tricky: Campaign) -> None:
    text = render.to_dot(spec_campaign)
    assert re.search(r"n_sb_intro -> n_sb_addons \[color=darkgreen [^]]*penwidth=2", text)
    assert re.search(
        r'n_sb_intro -> n_sb_photo_angle \[style=dashed color=darkorange[^]]*label="no convert · 1d"',
        text,
    )
    assert 'label="small-business\\nsegment: small_business"' in text
    assert "end_consumers [shape=oval" in text
    odd = render.to_dot(tricky)
    assert 'label="Tricky <b>\\"quotes\\"</b> & {{ braces }}"' in odd
    assert '"Say \\"hi\\" <now> & #1 `tick` | pipe [id]\\n▶ first-send"' in odd


# ------------------------------------------------------------------ svg


def _svg(campaign: Campaign, counts: dict[str, NodeCounts] | None = None) -> ET.Element:
    return ET.fromstring(render.to_svg(campaign, counts=counts))


def _title(element: ET.Element) -> str:
    title = element.find(f"{SVG}title")
    assert title is not None
    return "".join(title.itertext())


def _texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def test_svg_nodes_edges_and_labels(spec_campaign: Campaign) -> None:
    root = _svg(spec_campaign)
    node = {g.get("data-node"): g for g in root.iter(f"{SVG}g") if g.get("data-node")}
    assert node["sb_intro"].get("class") == "node notification start"
    assert node["sb_photo_angle"].get("class") == "node branch"
    assert node["cta_test"].get("class") == "node split start"
    assert node["end:consumers"].get("class") == "node end"
    assert node["sb_photo_angle"].find(f"{SVG}polygon") is not None
    texts = _texts(root)
    for label in ("no convert · 1d", "50%", "photographers", "else", "A/B split", "convert"):
        assert label in texts, label
    assert "small-business" in texts and "segment: small_business" in texts
    assert "trigger: cart_abandoned +1h" in texts
    assert "Still thinking about [product]?" in texts  # readable; the source on hover
    assert "Still thinking about {{ trigger.properties.product }}?" in _title(node["cart_nudge"])
    paths = {
        (p.get("data-source"), p.get("data-target")): p
        for p in root.iter(f"{SVG}path")
        if p.get("data-source")
    }
    convert, no_convert = paths[("sb_intro", "sb_addons")], paths[("sb_intro", "sb_photo_angle")]
    assert convert.get("stroke") != no_convert.get("stroke")
    assert no_convert.get("stroke-dasharray") and not convert.get("stroke-dasharray")
    assert convert.get("marker-end") == "url(#arrow-convert)"
    assert ("sb_proofs", "end:small-business") in paths
    legend = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "legend")
    assert {"convert", "no convert", "split", "branch"} <= set(_texts(legend))


def test_svg_escapes_text(tricky: Campaign) -> None:
    raw = render.to_svg(tricky)
    assert "<now>" not in raw and "<b>" not in raw
    root = ET.fromstring(raw)
    texts = _texts(root)
    assert 'Say "hi" <now> & #1 `tick` | pipe [id]' in texts
    assert _title(root) == 'Tricky <b>"quotes"</b> & {{ braces }}'
    node = next(g for g in root.iter(f"{SVG}g") if g.get("data-node") == "first-send")
    tooltip = _title(node)
    assert "<i>body</i> & more" in tooltip and "https://example.com/?a=1&b=2" in tooltip


def test_svg_draws_back_edges_upward_and_loops_aside(tricky: Campaign) -> None:
    drawing = build(tricky)
    placed = layout_module.compute(drawing)
    routes = {(r.edge.source, r.edge.target): r for r in placed.routes}
    back = routes[("retry_send", "first-send")]
    assert back.edge.back
    start_y = float(back.d.split()[0].split(",")[1])
    end_y = float(back.d.split()[-1].split(",")[1])
    assert start_y == pytest.approx(placed.boxes["retry_send"].top)
    assert end_y == pytest.approx(placed.boxes["first-send"].bottom)
    loop = routes[("other_start", "other_start")]
    box = placed.boxes["other_start"]
    xs = [float(n) for n in re.findall(r"[-\d.]+", loop.d)[::2]]
    assert max(xs) > box.right  # goes round the right-hand side
    lanes = [k for k in placed.boxes if k.startswith("~")]
    assert not lanes  # dummies are not part of the result


def test_svg_counts_only_when_given(spec_campaign: Campaign) -> None:
    plain = render.to_svg(spec_campaign)
    assert 'class="counts"' not in plain and "sent " not in plain
    counts = {
        "sb_intro": {"entered": 120, "sent": 100, "converted": 12, "no_convert": 80},
        "sb_photo_angle": {"entered": 80},
        "end:small-business": {"end": 40, "followup_cap": 12},
    }
    root = _svg(spec_campaign, counts=counts)
    texts = _texts(root)
    assert "sent 100 · conv 12%" in texts
    assert "entered 80" in texts
    assert "end 40 · followup cap 12" in texts
    counted = [t for t in root.iter(f"{SVG}text") if t.get("class") == "counts"]
    assert len(counted) == 3


def test_counts_in_mermaid_and_dot(spec_campaign: Campaign) -> None:
    counts = {"sb_intro": {"sent": 100, "converted": 12, "deferred": 3}}
    assert "sent 100 · conv 12% · deferred 3" in render.to_mermaid(spec_campaign, counts=counts)
    assert "sent 100 · conv 12% · deferred 3" in render.to_dot(spec_campaign, counts=counts)
    assert "sent" not in render.to_mermaid(spec_campaign)


# ------------------------------------------------------------------ html


def test_html_page(spec_campaign: Campaign) -> None:
    page = render.to_html(spec_campaign)
    assert "<h1>Cloud storage launch</h1>" in page
    for name, value in (
        ("spacing", "12h"),
        ("follow-up cap", "2 in a row"),
        ("conversion window", "2d"),
        ("quiet hours", "21:00–08:00"),
        ("frequency cap", "3 per 1w (all campaigns)"),
        ("max sends", "6"),
        ("holdout", "5%"),
        ("schedule", "*/5 * * * *"),
    ):
        assert f"<dt>{name}</dt><dd>{value}</dd>" in page, name
    row = re.search(r'<tr data-node="sb_proofs">(.*?)</tr>', page)
    assert row is not None
    assert "Share proofs with your clients" in row[1] and "<td>3d</td>" in row[1]
    assert "https://example.com/proofs" in row[1]  # as text, not as a link
    assert "<th>figures</th>" not in page


def test_html_escapes_and_shows_counts(tricky: Campaign) -> None:
    counts = {"first-send": {"entered": 10, "sent": 8, "converted": 2}}
    page = render.to_html(tricky, counts=counts, exits={"end": 5, "followup_cap": 1})
    assert "<h1>Tricky &lt;b&gt;&quot;quotes&quot;&lt;/b&gt; &amp; {{ braces }}</h1>" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "alert(1)</script>" not in page
    assert "<th>figures</th>" in page
    assert "entered 10 · sent 8 · converted 2 · conv 25%" in page
    assert "<td>followup cap</td><td>1</td>" in page
    assert "sent 8 · conv 25%" in page  # on the chart too


# ------------------------------------------------------------------ pieces


def test_isotonic_place_keeps_order_and_gaps() -> None:
    xs = isotonic_place([10.0, 10.0], desired=[5.0, 5.0, 5.0], weights=[1.0, 1.0, 1.0])
    assert xs == pytest.approx([-5.0, 5.0, 15.0])
    xs = isotonic_place([10.0], desired=[0.0, 100.0], weights=[1.0, 1.0])
    assert xs == pytest.approx([0.0, 100.0])


def test_text_helpers() -> None:
    assert truncate("a" * 50) == "a" * 39 + "…"
    assert truncate("two\n  lines") == "two lines"
    assert text_width("WWW", 13) > text_width("iii", 13)
    assert text_width("abc", 13, bold=True) > text_width("abc", 13)


def test_cli_render_writes_each_format(tmp_path: Path) -> None:
    from orchestrator.cli import app

    path = _write(tmp_path, "c.yaml", TRICKY)
    for fmt in render.FORMATS:
        out = tmp_path / f"out.{fmt}"
        result = CliRunner().invoke(app, ["render", str(path), "--format", fmt, "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert out.read_text(encoding="utf-8") == render.render(_load(path), fmt)


def test_the_language_references_example_validates(tmp_path: Path) -> None:
    """docs/language.md opens with a complete example: it must be a valid campaign."""
    page = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    block = page.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "segments").mkdir()
    _write(tmp_path / "segments", "common.yaml", COMMON_SEGMENTS)
    loaded = loader.load(_write(tmp_path, "cloud-storage-launch.yaml", block))
    assert loaded.ok, [d.format() for d in loaded.diagnostics]
    assert [d.format() for d in loaded.diagnostics if d.severity == "warning"] == []


@pytest.mark.parametrize(
    "title, label",
    [
        (
            "Still thinking about {{ trigger.properties.product | truncate(30) }}?",
            "Still thinking about [product]?",
        ),
        (
            "How's {{ trigger.properties.first_item | default('your order') }}?",
            "How's [first item]?",
        ),
        (
            "{% if subscriber.tags %}Hi{% else %}Hello{% endif %} {{ subscriber.id }}",
            "Hi / Hello [id]",
        ),
        ("{# note #}Plain", "Plain"),
        ("{{ }}", "[…]"),
    ],
)
def test_drawings_show_templates_as_readable_placeholders(title: str, label: str) -> None:
    from orchestrator.render.model import readable

    assert readable(title) == label


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_no_drawing_of_an_example_shows_raw_template_source(path: Path) -> None:
    loaded = loader.load(path)
    assert loaded.campaign is not None
    mermaid = re.findall(r'"((?:[^"\\]|\\.)*)"', render.to_mermaid(loaded.campaign))
    dot = re.findall(r'\blabel="((?:[^"\\]|\\.)*)"', render.to_dot(loaded.campaign))
    assert dot and not [label for label in mermaid + dot if "{{" in label or "{%" in label]
    svg = render.to_svg(loaded.campaign)
    labels = re.sub(r"<title>.*?</title>", "", svg, flags=re.S)  # hover text keeps the source
    assert "{{" not in labels and "{%" not in labels


def test_a_notifications_bar_shows_the_shares_that_converted_and_did_not() -> None:
    loaded = loader.load(ROOT / "campaign_graphs" / "cart-recovery.yaml")
    assert loaded.campaign is not None
    counts = {"cart_nudge": {"sent": 200, "converted": 50, "no_convert": 100}}
    root = ET.fromstring(render.to_svg(loaded.campaign, counts=counts))
    ns = "{http://www.w3.org/2000/svg}"
    node = next(g for g in root.iter(f"{ns}g") if g.get("data-node") == "cart_nudge")
    bars = {r.get("class"): float(r.get("width") or 0) for r in node.iter(f"{ns}rect")}
    whole = bars["outcome pending"]
    assert bars["outcome converted"] == pytest.approx(whole * 0.25, abs=0.1)
    assert bars["outcome dropped"] == pytest.approx(whole * 0.5, abs=0.1)
    others = [g for g in root.iter(f"{ns}g") if g.get("data-node") == "vip_nudge"]
    assert not [
        r for g in others for r in g.iter(f"{ns}rect") if "outcome" in (r.get("class") or "")
    ]
    assert "in window" in "".join(root.itertext())
    assert "in window" not in render.to_svg(loaded.campaign)  # no counts, no bars


def test_the_flowchart_artifact_is_a_picture_per_sub_campaign_within_bounds() -> None:
    import base64

    from orchestrator.render import artifact

    loaded = loader.load(ROOT / "campaign_graphs" / "cloud-storage-launch.yaml")
    assert loaded.campaign is not None
    campaign = loaded.campaign
    counts = {n: {"sent": 100, "converted": 10, "no_convert": 50} for n in campaign.all_nodes()}
    text = artifact.flowchart_markdown(
        campaign, counts=counts, exits={"completed": 3}, dashboard_url="https://x.example/c"
    )
    pictures = re.findall(r"!\[([^\]]*) flowchart\]\(data:image/svg\+xml;base64,([^)]+)\)", text)
    assert [name for name, _ in pictures] == list(campaign.subcampaigns)
    for _, data in pictures:
        svg = base64.b64decode(data)
        assert len(svg) < artifact.MAX_PICTURE_BYTES
        width = float(re.search(rb'width="([\d.]+)"', svg).group(1))  # type: ignore[union-attr]
        assert width < 1100  # readable at the Prefect UI's width, not shrunk
    assert "**Exits:** completed 3 · [Open in the campaign dashboard](https://x.example/c)" in text
    assert "{{" not in text.split("<details>")[0]
    assert len(text) < 200_000


def test_a_picture_too_large_for_an_artifact_is_named_not_embedded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from orchestrator.render import artifact

    loaded = loader.load(ROOT / "campaign_graphs" / "cart-recovery.yaml")
    assert loaded.campaign is not None
    monkeypatch.setattr(artifact, "MAX_PICTURE_BYTES", 1000)
    monkeypatch.setattr(artifact, "MAX_MERMAID_BYTES", 100)
    text = artifact.flowchart_markdown(loaded.campaign, counts={}, exits={})
    assert "data:image" not in text and "more than an artifact holds" in text
    assert "<details>" not in text


def test_markdown_in_a_campaign_title_stays_text() -> None:
    from orchestrator.render.artifact import markdown_text

    assert markdown_text("*Big* [sale](http://x) <b>now</b> #1") == (
        "\\*Big\\* \\[sale\\](http://x) &lt;b&gt;now&lt;/b&gt; \\#1"
    )


def test_a_promoted_split_and_a_bandit_say_so_in_the_drawing() -> None:
    """A finished test's edges read winner / ended (new journeys all take the winner); a
    bandit is named as one."""
    loaded = loader.load(ROOT / "tests" / "corpus" / "valid" / "split_promoted_and_bandit.yaml")
    assert loaded.campaign is not None
    drawn = render.to_mermaid(loaded.campaign)
    assert '"split: b won<br/>▶ pick"' in drawn
    assert 'n_pick -->|"winner"| n_b' in drawn and 'n_pick -->|"ended"| n_a' in drawn
    assert '"bandit<br/>band"' in drawn
    svg = render.to_svg(loaded.campaign)
    assert "b won" in svg and "winner" in svg
