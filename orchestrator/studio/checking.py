"""Checking the editor's text as it is typed: the real loader on the unsaved text (the
files it includes read from the folder), every diagnostic with its line and column, the
flowchart drawn by our SVG renderer when the campaign is valid, and where each node and
segment is written, so that the page can link the chart and the text both ways."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import render
from orchestrator.errors import CampaignError, UnreadableFileError
from orchestrator.language import loader
from orchestrator.language.document import LoadedCampaign, read_text
from orchestrator.language.spec import Campaign, NotificationNode
from orchestrator.studio.workspace import MAX_BYTES, StudioError, Workspace

MAX_DIAGNOSTICS = 200  # sent to the page; `total` says how many there are


@dataclass
class Checked:
    """What the page shows for one version of the text."""

    ok: bool  # valid: the flowchart is this text's
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    svg: str | None = None
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> line, col, sub, kind
    segments: list[str] = field(default_factory=list)
    notifications: list[str] = field(default_factory=list)  # nodes that send
    total: int = 0  # diagnostics in all (at most MAX_DIAGNOSTICS are sent)
    campaign: Campaign | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "diagnostics": self.diagnostics,
            "total": self.total,
            "svg": self.svg,
            "nodes": self.nodes,
            "segments": self.segments,
            "notifications": self.notifications,
            "seconds": round(self.seconds, 4),
        }


def load_text(workspace: Workspace, name: str, text: str) -> LoadedCampaign:
    """Load `text` as the file `name` of the workspace, without saving it; the files it
    includes are read from the folder (never from outside it)."""
    target = workspace.path(name)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise StudioError(f"{name}: larger than {MAX_BYTES:,} bytes")

    def reader(path: Path) -> str:
        if path.resolve() == target.resolve():
            return text
        if not path.resolve().is_relative_to(workspace.root):
            raise UnreadableFileError(f"{path.name}: outside the campaigns folder")
        return read_text(path)

    return loader.load(target, reader=reader)


def valid_campaign(workspace: Workspace, name: str, text: str, *, to: str) -> Campaign:
    """The campaign of the unsaved `text`; StudioError (saying what it was wanted `to` do)
    when it does not validate."""
    loaded = load_text(workspace, name, text)
    if not loaded.ok or loaded.campaign is None:
        raise StudioError(f"the campaign does not validate: fix its errors to {to}")
    return loaded.campaign


def notification_node(campaign: Campaign, node_id: str) -> NotificationNode:
    node = campaign.all_nodes().get(node_id)
    if not isinstance(node, NotificationNode):
        raise StudioError(f"node {node_id[:100]!r}: not a notification node of this campaign")
    return node


def check(workspace: Workspace, name: str, text: str) -> Checked:
    """Diagnostics, positions and (when valid) the flowchart of the unsaved `text`."""
    started = time.perf_counter()
    try:
        loaded = load_text(workspace, name, text)
    except CampaignError as exc:  # the text cannot be read at all (too large, …)
        result = Checked(ok=False, diagnostics=[problem(str(exc))], total=1)
        result.seconds = time.perf_counter() - started
        return result
    result = Checked(ok=loaded.ok, campaign=loaded.campaign if loaded.ok else None)
    result.total = len(loaded.diagnostics)
    result.diagnostics = [
        {
            **d.as_dict(),
            "here": d.file == loaded.display,
            "text": d.format() if d.file != loaded.display else _local(d.line, d.col, d),
        }
        for d in loaded.diagnostics[:MAX_DIAGNOSTICS]
    ]
    if loaded.sources:
        result.nodes, result.segments = _positions(loaded.sources[0].located)
    if loaded.ok and loaded.campaign is not None:
        campaign = loaded.campaign
        result.svg = render.to_svg(campaign)
        result.notifications = [
            nid for nid, node in campaign.all_nodes().items() if isinstance(node, NotificationNode)
        ]
        for nid, node in campaign.all_nodes().items():
            if nid in result.nodes:
                result.nodes[nid]["kind"] = type(node).__name__.removesuffix("Node").lower()
    result.seconds = time.perf_counter() - started
    return result


def _local(line: int, col: int, d: Any) -> str:
    return f"{line}:{col}: {d.severity}: {d.message}"


def problem(message: str) -> dict[str, Any]:
    """One error at 1:1, for a text that could not be checked at all."""
    return {
        "file": "",
        "line": 1,
        "col": 1,
        "severity": "error",
        "message": message,
        "code": "unreadable",
        "here": True,
        "text": f"1:1: error: {message}",
    }


def unchecked(message: str) -> dict[str, Any]:
    """The answer for a text the studio could not check: `message` as its one error."""
    return Checked(ok=False, diagnostics=[problem(message)], total=1).as_dict()


def _positions(located: Any) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Where each node of each sub-campaign is written (its key), and the segment names
    defined in this file, read from the parsed text even when it does not validate."""
    nodes: dict[str, dict[str, Any]] = {}
    data = located.data if isinstance(located.data, dict) else {}
    subs = data.get("subcampaigns")
    if isinstance(subs, dict):
        for sub, body in subs.items():
            if not isinstance(body, dict) or not isinstance(body.get("nodes"), dict):
                continue
            for nid in body["nodes"]:
                if not isinstance(nid, str):
                    continue
                pos = located.pos(("subcampaigns", sub, "nodes", nid))
                nodes[nid] = {"line": pos.line, "col": pos.col, "subcampaign": str(sub)}
    segments = data.get("segments")
    names = [str(s) for s in segments] if isinstance(segments, dict) else []
    return nodes, names
