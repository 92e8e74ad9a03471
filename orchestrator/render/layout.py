"""A layered (Sugiyama-style) layout of a campaign drawing, in pure Python.

1. ranks: each sub-campaign's `graph.layers`, then pushed down so that every
   forward edge, also one crossing sub-campaigns, points at a lower row;
2. an edge spanning several rows gets a dummy point per row it passes, placed
   in the cluster of its lower end, so it runs in a lane between boxes; a back
   edge (one that closes a loop) is laid out reversed and drawn upward;
3. per cluster, a few barycenter sweeps order each row to reduce crossings;
4. x: rows are packed, then pulled toward their neighbours (isotonic regression
   keeps the order and the gaps); clusters stand side by side;
5. edges are routed by `routes`: cubic Béziers through the gaps between rows
   and straight through their lanes; labels go where they overlap nothing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from graphlib import TopologicalSorter

from orchestrator.render.geometry import (
    CLUSTER_GAP,
    CLUSTER_HEAD,
    CLUSTER_PAD,
    DUMMY,
    FONT,
    HEADER_H,
    ROW_GAP,
    SMALL,
    Box,
    ClusterBox,
    Layout,
    node_size,
    text_width,
)
from orchestrator.render.model import Drawing
from orchestrator.render.routes import LOOP_LANE, Bands, Router, label_width

# ------------------------------------------------------------------ ranks and chains


def assign_ranks(drawing: Drawing) -> dict[str, int]:
    rank: dict[str, int] = dict.fromkeys(drawing.nodes, 0)
    for cluster in drawing.clusters:
        for depth, layer in enumerate(drawing.graph.layers(cluster.sub)):
            for key in layer:
                rank[key] = depth
    preds: dict[str, set[str]] = {key: set() for key in drawing.nodes}
    for edge in drawing.edges:
        if not edge.back:
            preds[edge.target].add(edge.source)
    for key in TopologicalSorter(preds).static_order():
        for pred in preds[key]:
            rank[key] = max(rank[key], rank[pred] + 1)
    return rank


def make_chains(drawing: Drawing, boxes: dict[str, Box]) -> dict[int, list[str]]:
    """Each edge as the keys it passes from its upper end to its lower end, a dummy per row between.

    A back edge is laid out reversed (its target is the upper end) and drawn upward;
    a loop on one node is a chain of that one key.
    """
    chains: dict[int, list[str]] = {}
    for edge in drawing.edges:
        if edge.source == edge.target:
            chains[edge.index] = [edge.source]
            continue
        upper, lower = (edge.target, edge.source) if edge.back else (edge.source, edge.target)
        keys = [upper]
        for rank in range(boxes[upper].rank + 1, boxes[lower].rank):
            key = f"~{edge.index}:{rank}"
            boxes[key] = Box(key, DUMMY, boxes[lower].cluster, w=14.0, h=0.0, rank=rank)
            keys.append(key)
        keys.append(lower)
        chains[edge.index] = keys
    return chains


@dataclass
class Links:
    """Neighbours one row up and one row down."""

    above: dict[str, list[str]] = field(default_factory=dict)
    below: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, chains: dict[int, list[str]]) -> Links:
        links = cls()
        for keys in chains.values():
            for upper, lower in itertools.pairwise(keys):
                links.below.setdefault(upper, []).append(lower)
                links.above.setdefault(lower, []).append(upper)
        return links


def link_weight(a: Box, b: Box) -> float:
    return {0: 1.0, 1: 2.0, 2: 6.0}[int(a.dummy) + int(b.dummy)]


# ------------------------------------------------------------------ ordering


def _sort_row(
    row: list[str], ref: list[str], *, nbrs: dict[str, list[str]], boxes: dict[str, Box]
) -> None:
    index = {key: i for i, key in enumerate(ref)}

    def barycenter(item: tuple[int, str]) -> tuple[float, int]:
        i, key = item
        me = boxes[key].cluster
        values = []
        for other in nbrs.get(key, []):
            if other in index:
                values.append(float(index[other]))
            elif boxes[other].cluster != me:
                values.append(-1.0 if boxes[other].cluster < me else float(len(ref)))
        return (sum(values) / len(values) if values else float(i), i)

    row[:] = [key for _, key in sorted(enumerate(row), key=barycenter)]


def crossings(rows: list[list[str]], links: Links) -> int:
    total = 0
    for upper, lower in itertools.pairwise(rows):
        pos = {key: i for i, key in enumerate(lower)}
        segs = [
            (i, pos[n]) for i, key in enumerate(upper) for n in links.below.get(key, []) if n in pos
        ]
        total += sum(
            1
            for j, (a1, b1) in enumerate(segs)
            for a2, b2 in segs[j + 1 :]
            if (a1 - a2) * (b1 - b2) < 0
        )
    return total


def order_rows(rows: list[list[str]], *, links: Links, boxes: dict[str, Box]) -> list[list[str]]:
    best, best_count = [list(r) for r in rows], crossings(rows, links)
    for _ in range(6):
        for r in range(1, len(rows)):
            _sort_row(rows[r], rows[r - 1], nbrs=links.above, boxes=boxes)
        for r in range(len(rows) - 2, -1, -1):
            _sort_row(rows[r], rows[r + 1], nbrs=links.below, boxes=boxes)
        count = crossings(rows, links)
        if count < best_count:
            best, best_count = [list(r) for r in rows], count
    return best


# ------------------------------------------------------------------ x placement


def _gap(a: Box, b: Box) -> float:
    return {0: 40.0, 1: 22.0, 2: 12.0}[int(a.dummy) + int(b.dummy)]


def isotonic_place(
    widths_gaps: list[float], *, desired: list[float], weights: list[float]
) -> list[float]:
    """Centres closest (weighted least squares) to `desired`, keeping order and minimum gaps.

    widths_gaps[i] is the least distance between centre i and centre i+1.
    """
    offsets = [0.0]
    for gap in widths_gaps:
        offsets.append(offsets[-1] + gap)
    blocks: list[list[float]] = []  # [value, weight, count]
    for want, off, weight in zip(desired, offsets, weights, strict=True):
        blocks.append([want - off, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, n2 = blocks.pop()
            v1, w1, n1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    values = [value for value, _, count in blocks for _ in range(int(count))]
    return [value + off for value, off in zip(values, offsets, strict=True)]


def _align_row(row: list[str], *, nbrs: list[dict[str, list[str]]], boxes: dict[str, Box]) -> None:
    if not row:
        return
    desired, weights = [], []
    for key in row:
        box = boxes[key]
        pull = [
            (boxes[n].x, link_weight(box, boxes[n]))
            for side in nbrs
            for n in side.get(key, [])
            if boxes[n].cluster == box.cluster
        ]
        total = sum(w for _, w in pull)
        desired.append(sum(x * w for x, w in pull) / total if total else box.x)
        weights.append(total if total else 0.3)
    gaps = [
        (boxes[a].w + boxes[b].w) / 2 + boxes[a].extra + _gap(boxes[a], boxes[b])
        for a, b in itertools.pairwise(row)
    ]
    for key, x in zip(row, isotonic_place(gaps, desired=desired, weights=weights), strict=True):
        boxes[key].x = x


def place_rows(rows: list[list[str]], *, links: Links, boxes: dict[str, Box]) -> None:
    for row in rows:
        x = 0.0
        for key in row:
            boxes[key].x = x + boxes[key].w / 2
            x += boxes[key].w + boxes[key].extra + 40
    for _ in range(8):
        for row in rows[1:]:
            _align_row(row, nbrs=[links.above], boxes=boxes)
        for row in reversed(rows[:-1]):
            _align_row(row, nbrs=[links.below], boxes=boxes)
    for row in rows:
        _align_row(row, nbrs=[links.above, links.below], boxes=boxes)


# ------------------------------------------------------------------ the whole layout


def _real_boxes(drawing: Drawing, rank: dict[str, int]) -> dict[str, Box]:
    incoming: dict[str, int] = {}
    for edge in drawing.edges:
        incoming[edge.target] = incoming.get(edge.target, 0) + 1
    boxes: dict[str, Box] = {}
    for index, cluster in enumerate(drawing.clusters):
        for key in cluster.nodes:
            node = drawing.nodes[key]
            w, h = node_size(node)
            if node.kind == "end":  # room for every arrow that ends here
                w = max(w, 18.0 * incoming.get(key, 0) + h)
            boxes[key] = Box(key, node.kind, index, w=w, h=h, rank=rank[key])
    for edge in drawing.edges:
        if edge.source == edge.target:  # room for the loop and its label on the right
            boxes[edge.source].extra += LOOP_LANE + label_width(edge.label) + 8
    return boxes


def _grids(count: int, boxes: dict[str, Box]) -> list[list[list[str]]]:
    """Per cluster, its rows (real nodes in file order, then lanes)."""
    depth = max(box.rank for box in boxes.values()) + 1
    grids: list[list[list[str]]] = [[[] for _ in range(depth)] for _ in range(count)]
    for box in sorted(boxes.values(), key=lambda b: b.dummy):
        grids[box.cluster][box.rank].append(box.key)
    return grids


def _bands(boxes: dict[str, Box]) -> Bands:
    depth = max(box.rank for box in boxes.values()) + 1
    heights = [24.0] * depth
    for box in boxes.values():
        heights[box.rank] = max(heights[box.rank], box.h)
    bands, y = Bands(), HEADER_H + CLUSTER_HEAD
    for rank, height in enumerate(heights):
        bands.top[rank], bands.bottom[rank] = y, y + height
        y += height + ROW_GAP
    for box in boxes.values():
        box.y = (bands.top[box.rank] + bands.bottom[box.rank]) / 2
    return bands


def _place_clusters(drawing: Drawing, *, boxes: dict[str, Box], bands: Bands) -> list[ClusterBox]:
    """Clusters side by side, each as wide as its widest row (or its title)."""
    placed: list[ClusterBox] = []
    x = 16.0
    for index, cluster in enumerate(drawing.clusters):
        members = [b for b in boxes.values() if b.cluster == index]
        lo, hi = min(b.left for b in members), max(b.right + b.extra for b in members)
        title_w = max(
            text_width(cluster.sub, FONT, bold=True), text_width(cluster.entry, SMALL + 0.5)
        )
        inner = max(hi - lo, title_w)
        shift = x + CLUSTER_PAD - lo + (inner - (hi - lo)) / 2
        for box in members:
            box.x += shift
        top = min(bands.top[b.rank] for b in members if not b.dummy) - CLUSTER_HEAD
        bottom = max(bands.bottom[b.rank] for b in members)
        frame = ClusterBox(index, cluster.sub, cluster.entry, cluster.start, x=x, y=top)
        frame.w, frame.h = inner + 2 * CLUSTER_PAD, bottom + 24 - top
        placed.append(frame)
        x += frame.w + CLUSTER_GAP
    return placed


def compute(drawing: Drawing) -> Layout:
    """Place every box, cluster, edge and label of the drawing."""
    rank = assign_ranks(drawing)
    boxes = _real_boxes(drawing, rank)
    chains = make_chains(drawing, boxes)
    links = Links.of(chains)
    for rows in _grids(len(drawing.clusters), boxes):
        ordered = order_rows(rows, links=links, boxes=boxes)
        place_rows(ordered, links=links, boxes=boxes)
    bands = _bands(boxes)
    clusters = _place_clusters(drawing, boxes=boxes, bands=bands)
    router = Router(boxes=boxes, chains=chains, bands=bands)
    router.run(drawing.edges)
    layout = Layout(clusters=clusters, routes=router.routes, labels=router.labels)
    layout.boxes = {key: box for key, box in boxes.items() if not box.dummy}
    layout.width = max(c.x + c.w for c in clusters) + 16
    layout.height = max(c.y + c.h for c in clusters) + 16
    return layout
