"""Sizes and shapes of the drawing's boxes, and the result of a layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from orchestrator.render.model import DEdge, DNode

FONT = 13.0
SMALL = 11.0
HEADER_H = 70.0  # campaign title and legend
CLUSTER_HEAD = 72.0  # cluster title, entry and the entry marker
CLUSTER_PAD = 22.0
CLUSTER_GAP = 36.0
ROW_GAP = 66.0
LABEL_H = 17.0
DUMMY = "dummy"

# Advance widths (em) of DejaVu Sans, the widest of the usual sans-serif fonts, so that
# text fits its box on Linux and has a little room to spare elsewhere.
_EM_GROUPS = {
    0.28: "ijlIJ'",
    0.32: " .,·",
    0.34: ":;|/\\",
    0.35: "f",
    0.36: "-",
    0.39: "()[]t",
    0.40: "!",
    0.41: "r",
    0.46: '"',
    0.50: "`*_^~",
    0.52: "s",
    0.53: "z?",
    0.55: "c",
    0.56: "L",
    0.57: "F",
    0.58: "k",
    0.59: "vxy",
    0.60: "P",
    0.61: "aeoTY",
    0.63: "hnuE",
    0.64: "bdgpq0123456789{}$S",
    0.66: "K",
    0.68: "AV",
    0.69: "BRXZ",
    0.70: "C",
    0.73: "U",
    0.75: "HN",
    0.77: "D",
    0.78: "G&",
    0.79: "OQ",
    0.82: "w",
    0.84: "#+=<>×",
    0.86: "M",
    0.95: "%",
    0.97: "m",
    0.99: "W",
    1.00: "@…",
}
_EM = {ch: em for em, chars in _EM_GROUPS.items() for ch in chars}
_EM_OTHER = 0.8  # anything else (accents are mostly narrower, CJK and symbols wider)
_BOLD = 1.12


def text_width(text: str, size: float, *, bold: bool = False) -> float:
    """An estimate of the rendered width of `text` in px."""
    em = sum(_EM.get(ch, _EM_OTHER) for ch in text)
    return em * size * (_BOLD if bold else 1.0)


# ------------------------------------------------------------------ geometry


@dataclass
class Box:
    key: str
    kind: str
    cluster: int
    w: float
    h: float
    rank: int = 0
    extra: float = 0.0  # room kept free on the right (for a loop)
    x: float = 0.0  # centre
    y: float = 0.0  # centre

    @property
    def dummy(self) -> bool:
        return self.kind == DUMMY

    @property
    def left(self) -> float:
        return self.x - self.w / 2

    @property
    def right(self) -> float:
        return self.x + self.w / 2

    @property
    def top(self) -> float:
        return self.y - self.h / 2

    @property
    def bottom(self) -> float:
        return self.y + self.h / 2

    def spread(self) -> float:
        """How far from the centre edge ends may be spread along the top or bottom."""
        if self.kind == "branch":
            return self.w * 0.22
        if self.kind in ("split", "end"):
            return max(self.w / 2 - self.h / 2, 0.0)
        if self.kind == DUMMY:
            return 0.0
        return max(self.w / 2 - 16, 0.0)

    def outline_y(self, dx: float, *, bottom: bool) -> float:
        """The y of the box outline at horizontal offset dx from the centre."""
        depth = self.h / 2
        if self.kind == "branch":
            depth = self.h / 2 * max(1 - abs(dx) / (self.w / 2), 0.0)
        return self.y + depth if bottom else self.y - depth

    def outline_x(self, dy: float) -> float:
        """The x of the right-hand outline at vertical offset dy from the centre."""
        if self.kind == "branch":
            return self.x + self.w / 2 * max(1 - abs(dy) / (self.h / 2), 0.0)
        if self.kind == "split":
            inset = self.h / 2 * 0.6
            return self.right - inset * abs(dy) / (self.h / 2)
        return self.right


@dataclass
class ClusterBox:
    index: int
    sub: str
    entry: str
    start: str
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0


@dataclass
class Route:
    edge: DEdge
    d: str


@dataclass
class Label:
    edge: DEdge
    x: float  # centre
    y: float
    w: float
    h: float = LABEL_H


@dataclass
class Layout:
    width: float = 0.0
    height: float = 0.0
    clusters: list[ClusterBox] = field(default_factory=list)
    boxes: dict[str, Box] = field(default_factory=dict)  # real nodes only
    routes: list[Route] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)


# ------------------------------------------------------------------ sizes


class TextLine(NamedTuple):
    text: str
    size: float
    bold: bool
    role: str  # title | id | counts


def node_lines(node: DNode) -> list[TextLine]:
    """The text lines of a node box."""
    lines = [TextLine(node.headline, FONT, True, "title")]
    if node.detail:
        lines.append(TextLine(node.detail, SMALL, False, "id"))
    if node.figures:
        lines.append(TextLine(node.figures, SMALL, True, "counts"))
    return lines


def node_size(node: DNode) -> tuple[float, float]:
    lines = node_lines(node)
    text_w = max(text_width(line.text, line.size, bold=line.bold) for line in lines)
    text_h = 17.0 + 15.0 * (len(lines) - 1)
    if node.kind == "notification":
        return max(150.0, text_w + 28), text_h + 18
    if node.kind == "wait":
        return max(96.0, text_w + 24), text_h + 12
    if node.kind == "split":
        return max(120.0, text_w + 44), text_h + 20
    if node.kind == "branch":
        return max(130.0, (text_w / 2 / 0.62 + 6) * 2), max(64.0, (text_h / 2 / 0.4 + 2) * 2)
    return max(72.0, text_w + 36), text_h + 14
