"""Edge paths and label positions for a placed layout.

An edge leaves the bottom of its upper end, crosses each gap between rows as a
cubic Bézier (vertical tangents, so it stays in the gap), runs straight through
a row in its lane (a dummy point) and enters the top of its lower end. A back
edge is the same path drawn the other way: up from the top of its source into
the bottom of its target. Several edges at one side of a box are spread along
it; long sideways hops through one gap run at different heights. A loop on one
node goes round its right side. A label sits on the first place along its
edge where it overlaps no box and no other label.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.render.geometry import LABEL_H, SMALL, Box, Label, Route, text_width
from orchestrator.render.model import DEdge

Point = tuple[float, float]
Bezier = tuple[Point, Point, Point, Point]
Step = tuple[Point, bool]  # a point, and whether the segment leading to it crosses a gap

LONG_HOP = 90.0
LOOP_LANE = 22.0
_TRIES = (0.5, 0.38, 0.62, 0.27, 0.73, 0.18, 0.82)


@dataclass
class Bands:
    """The vertical extent of each row."""

    top: dict[int, float] = field(default_factory=dict)
    bottom: dict[int, float] = field(default_factory=dict)


def fmt(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def label_width(text: str) -> float:
    return text_width(text, SMALL) + 12


# ------------------------------------------------------------------ ports


def _offsets(box: Box, count: int) -> list[float]:
    if count <= 1:
        return [0.0] * count
    step = min(22.0, 2 * box.spread() / (count - 1))
    return [(i - (count - 1) / 2) * step for i in range(count)]


def assign_ports(
    chains: dict[int, list[str]], *, boxes: dict[str, Box]
) -> tuple[dict[int, float], dict[int, float]]:
    """The x where each chain leaves its upper end and where it enters its lower end."""
    outs: dict[str, list[tuple[float, int]]] = {}
    ins: dict[str, list[tuple[float, int]]] = {}
    for index, keys in chains.items():
        if len(keys) > 1:
            outs.setdefault(keys[0], []).append((boxes[keys[1]].x, index))
            ins.setdefault(keys[-1], []).append((boxes[keys[-2]].x, index))
    return _spread(outs, boxes), _spread(ins, boxes)


def _spread(groups: dict[str, list[tuple[float, int]]], boxes: dict[str, Box]) -> dict[int, float]:
    out: dict[int, float] = {}
    for key, items in groups.items():
        box = boxes[key]
        items.sort()
        for (_, index), offset in zip(items, _offsets(box, len(items)), strict=True):
            out[index] = box.x + offset
    return out


# ------------------------------------------------------------------ paths


def chain_steps(
    keys: list[str], *, boxes: dict[str, Box], bands: Bands, ends: tuple[float, float]
) -> list[Step]:
    """Points along a chain, top to bottom."""
    upper, lower = boxes[keys[0]], boxes[keys[-1]]
    x0, x1 = ends
    y0 = upper.outline_y(x0 - upper.x, bottom=True)
    steps: list[Step] = [((x0, y0), False)]
    if bands.bottom[upper.rank] > y0 + 0.5:
        steps.append(((x0, bands.bottom[upper.rank]), False))
    for key in keys[1:-1]:
        lane = boxes[key]
        steps.append(((lane.x, bands.top[lane.rank]), True))
        steps.append(((lane.x, bands.bottom[lane.rank]), False))
    y1 = lower.outline_y(x1 - lower.x, bottom=False)
    steps.append(((x1, bands.top[lower.rank]), True))
    if y1 > bands.top[lower.rank] + 0.5:
        steps.append(((x1, y1), False))
    return steps


Hop = tuple[int, int, float, float, float, float]  # chain, step index, x0, x1, y0, y1


def assign_tracks(steps: dict[int, list[Step]]) -> dict[int, dict[int, float]]:
    """Long sideways hops that cross one gap run at different heights, not on top of each other.

    Returns, per chain, the control-point y of each such hop (by the index of its end step).
    The hop that ends first (in its own direction) runs lowest, so it drops to its target
    without crossing the others.
    """
    gaps: dict[float, list[Hop]] = {}
    for index, chain in steps.items():
        for i in range(1, len(chain)):
            ((x0, y0), _), ((x1, y1), curve) = chain[i - 1], chain[i]
            if curve and abs(x1 - x0) > LONG_HOP:
                gaps.setdefault(round(y0, 1), []).append((index, i, x0, x1, y0, y1))
    tracks: dict[int, dict[int, float]] = {}
    for hops in gaps.values():
        if len(hops) < 2:
            continue
        hops.sort(key=lambda h: h[3] if h[3] > h[2] else -h[3])
        top, bottom = hops[0][4], hops[0][5]
        low, high = bottom - 0.2 * (bottom - top), top + 0.2 * (bottom - top)
        for n, (index, i, *_) in enumerate(hops):
            tracks.setdefault(index, {})[i] = low - (low - high) * n / (len(hops) - 1)
    return tracks


def segments(steps: list[Step], *, tracks: dict[int, float]) -> list[Bezier]:
    """The chain as cubic segments (a straight one has its controls on the line)."""
    out: list[Bezier] = []
    for i in range(1, len(steps)):
        (x0, y0), ((x1, y1), curve) = steps[i - 1][0], steps[i]
        if curve:
            mid = tracks.get(i, (y0 + y1) / 2)
            out.append(((x0, y0), (x0, mid), (x1, mid), (x1, y1)))
        else:
            out.append(((x0, y0), (x0, y0), (x1, y1), (x1, y1)))
    return out


def reverse(parts: list[Bezier]) -> list[Bezier]:
    return [(d, c, b, a) for a, b, c, d in reversed(parts)]


def path_d(parts: list[Bezier]) -> str:
    (x, y), *_ = parts[0]
    out = [f"M{fmt(x)},{fmt(y)}"]
    for p0, p1, p2, p3 in parts:
        if p0 == p1 and p2 == p3:
            out.append(f"L{fmt(p3[0])},{fmt(p3[1])}")
        else:
            out.append(
                f"C{fmt(p1[0])},{fmt(p1[1])} {fmt(p2[0])},{fmt(p2[1])} {fmt(p3[0])},{fmt(p3[1])}"
            )
    return " ".join(out)


def loop_path(box: Box) -> tuple[str, Point]:
    """A loop out of a node's right side and back into it; returns the path and the lane."""
    sy, ty = box.y + box.h / 4, box.y - box.h / 4
    sx, tx = box.outline_x(sy - box.y), box.outline_x(ty - box.y)
    lane = box.right + LOOP_LANE
    r = max(min(8.0, (sy - ty) / 2 - 1), 0.0)
    d = (
        f"M{fmt(sx)},{fmt(sy)} H{fmt(lane - r)} Q{fmt(lane)},{fmt(sy)} {fmt(lane)},{fmt(sy - r)} "
        f"V{fmt(ty + r)} Q{fmt(lane)},{fmt(ty)} {fmt(lane - r)},{fmt(ty)} H{fmt(tx)}"
    )
    return d, (lane, box.y)


# ------------------------------------------------------------------ labels


def bezier_at(curve: Bezier, t: float) -> Point:
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = curve
    u = 1 - t
    a, b, c, d = u * u * u, 3 * u * u * t, 3 * u * t * t, t * t * t
    return a * x0 + b * x1 + c * x2 + d * x3, a * y0 + b * y1 + c * y2 + d * y3


def candidates(parts: list[Bezier]) -> list[Point]:
    """Places for a label: along the first gap crossing, then the last, then the others."""
    curves = [p for p in parts if not (p[0] == p[1] and p[2] == p[3])]
    if not curves:
        return []
    ordered = [curves[0]] + ([curves[-1]] if len(curves) > 1 else []) + curves[1:-1]
    return [bezier_at(curve, t) for curve in ordered for t in _TRIES]


Rect = tuple[float, float, float, float]


def rect(box: Box | Label) -> Rect:
    if isinstance(box, Label):
        return (box.x - box.w / 2, box.y - box.h / 2, box.x + box.w / 2, box.y + box.h / 2)
    return (box.left, box.top, box.right, box.bottom)


def _overlap(label: Label, box: Rect) -> float:
    left, top, right, bottom = box
    dx = min(label.x + label.w / 2 + 3, right) - max(label.x - label.w / 2 - 3, left)
    dy = min(label.y + label.h / 2 + 2, bottom) - max(label.y - label.h / 2 - 2, top)
    return dx * dy if dx > 0 and dy > 0 else 0.0


def place_label(
    edge: DEdge, spots: list[Point], *, boxes: list[Rect], labels: list[Rect]
) -> Label | None:
    """The first spot where the label covers nothing; failing that, the one covering least
    (a box counts ten times a label)."""
    if not edge.label or not spots:
        return None
    width = label_width(edge.label)
    best: Label | None = None
    best_cost = float("inf")
    for x, y in spots:
        label = Label(edge, x, y, width, LABEL_H)
        cost = 10 * sum(_overlap(label, r) for r in boxes) + sum(_overlap(label, r) for r in labels)
        if cost < best_cost:
            best, best_cost = label, cost
        if cost == 0:
            break
    return best


# ------------------------------------------------------------------ all edges


@dataclass
class Router:
    boxes: dict[str, Box]
    chains: dict[int, list[str]]
    bands: Bands
    routes: list[Route] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)

    def run(self, edges: list[DEdge]) -> None:
        out_x, in_x = assign_ports(self.chains, boxes=self.boxes)
        steps = {
            index: chain_steps(
                keys, boxes=self.boxes, bands=self.bands, ends=(out_x[index], in_x[index])
            )
            for index, keys in self.chains.items()
            if len(keys) > 1
        }
        tracks = assign_tracks(steps)
        spots: dict[int, list[Point]] = {}
        for edge in edges:
            if edge.index not in steps:
                d, lane = loop_path(self.boxes[edge.source])
                width = label_width(edge.label)
                spots[edge.index] = [(lane[0] + 6 + width / 2, lane[1])]
            else:
                parts = segments(steps[edge.index], tracks=tracks.get(edge.index, {}))
                parts = reverse(parts) if edge.back else parts
                d = path_d(parts)
                spots[edge.index] = candidates(parts)
            self.routes.append(Route(edge, d))
        self._place_labels(edges, spots)

    def _place_labels(self, edges: list[DEdge], spots: dict[int, list[Point]]) -> None:
        boxes = [rect(b) for b in self.boxes.values() if not b.dummy]
        placed: list[Rect] = []
        for edge in sorted(edges, key=lambda e: len(spots[e.index])):
            label = place_label(edge, spots[edge.index], boxes=boxes, labels=placed)
            if label is not None:
                self.labels.append(label)
                placed.append(rect(label))
