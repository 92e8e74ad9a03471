"""A campaign as read: its source files, the diagnostics found in them, the model if valid;
and reading a file (`read_text`), its name as shown (`display_name`) and whether a path
leads out of the campaign's folder (`outside_folder`).

Shared by `loader` (which fills them), `checks` and `wording` (which report into them).
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import MissingFileError, UnreadableFileError
from orchestrator.language import yamlpos
from orchestrator.language.diagnostics import Diagnostic, Severity
from orchestrator.language.spec import Campaign


def read_text(path: Path) -> str:
    """A campaign or segment file's text. Anything but a regular file (a FIFO, a device,
    a folder) and a file over yamlpos.MAX_BYTES are refused before a byte is read;
    at most that many bytes are ever read (a file growing meanwhile included)."""
    limit = yamlpos.MAX_BYTES
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFileError(f"{path}: not a regular file")
        if info.st_size > limit:
            raise UnreadableFileError(
                f"{path}: file is larger than {limit:,} bytes ({info.st_size:,}); not read"
            )
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise MissingFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise UnreadableFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise UnreadableFileError(f"{path}: file is larger than {limit:,} bytes; not read")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def outside_folder(path: Path, root: Path) -> str | None:
    """Why `path` must not be read as part of a campaign whose folder is `root`: it is (or
    goes through) a symbolic link, or a `..`, that leads out of the folder. None if fine."""
    try:
        target = path.resolve()
        target.relative_to(root.resolve())
    except ValueError:
        how = "a symbolic link" if path.is_symlink() else "a path"
        return f"{display_name(path)}: {how} leading outside {display_name(root)} is refused"
    except (OSError, RuntimeError) as exc:  # a symlink loop, say
        return f"{display_name(path)}: cannot be resolved ({exc})"
    return None


def display_name(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):  # elsewhere, or a loop of links
        return str(path)


@dataclass
class Source:
    """One file as read and parsed."""

    path: Path
    display: str
    text: str
    located: yamlpos.Located


@dataclass
class SegmentOrigin:
    source: Source
    path: yamlpos.Path_


@dataclass
class LoadedCampaign:
    path: Path
    display: str
    text: str
    content_hash: str = ""
    campaign: Campaign | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    segment_origins: dict[str, SegmentOrigin] = field(default_factory=dict)
    is_segment_file: bool = False
    reader: Callable[[Path], str] = field(default=lambda p: read_text(p), repr=False)

    def source_texts(self) -> dict[str, str]:
        """Every file this campaign was read from, by path relative to the campaign file."""
        base = self.path.resolve().parent
        out: dict[str, str] = {}
        for src in self.sources:
            try:
                key = str(src.path.resolve().relative_to(base))
            except ValueError:
                key = str(src.path.resolve())
            out[key] = src.text
        return out

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def ok(self) -> bool:
        return self.campaign is not None and not self.errors


class Reporter:
    """Collects diagnostics for one campaign (across the files it includes)."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def at(
        self,
        source: Source,
        pos: yamlpos.Pos,
        message: str,
        *,
        code: str,
        severity: Severity = "error",
    ) -> None:
        self.items.append(Diagnostic(source.display, pos.line, pos.col, severity, message, code))

    def key(
        self,
        source: Source,
        path: yamlpos.Path_,
        message: str,
        *,
        code: str,
        severity: Severity = "error",
    ) -> None:
        self.at(source, source.located.pos(path), message, code=code, severity=severity)

    def value(
        self,
        source: Source,
        path: yamlpos.Path_,
        message: str,
        *,
        code: str,
        severity: Severity = "error",
    ) -> None:
        self.at(source, source.located.value_pos(path), message, code=code, severity=severity)


@dataclass
class Broken:
    """Names that exist in the file but did not validate: references to them are not reported."""

    nodes: set[str] = field(default_factory=set)
    subcampaigns: set[str] = field(default_factory=set)
    segments: set[str] = field(default_factory=set)
    raw_nodes: dict[str, tuple[str, Any]] = field(default_factory=dict)  # id -> (sub-campaign, raw)

    def any(self) -> bool:
        return bool(self.nodes or self.subcampaigns or self.segments)
