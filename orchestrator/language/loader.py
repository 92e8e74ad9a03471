"""Campaign files → validated models: read, parse with positions, include, validate.

Validation is piecewise, so one broken node does not hide problems elsewhere:
settings, each segment, each sub-campaign and each node are validated on their
own; what validates is assembled into a `Campaign`, and the cross-reference,
graph and template checks (`checks`) run on that. Every problem is collected;
`wording` turns pydantic's errors into positioned diagnostics in the format's terms.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigurationError, MissingFileError, UnreadableFileError
from orchestrator.language import yamlpos
from orchestrator.language.document import (
    Broken,
    LoadedCampaign,
    Reporter,
    SegmentOrigin,
    Source,
    display_name,
    outside_folder,
    read_text,
)
from orchestrator.language.spec import (
    NODE_TAGS,
    BranchNode,
    Campaign,
    Node,
    NotificationNode,
    Segment,
    SegmentFile,
    Settings,
    SplitNode,
    SubCampaign,
    WaitNode,
)
from orchestrator.language.wording import describe_value, valid_key, validate_piece

YAML_SUFFIXES = (".yaml", ".yml")
# what one load reads through `include:`, in all (each file at most once)
MAX_INCLUDED_FILES = 100
MAX_INCLUDED_CHARS = 4_000_000
# Keys that belong inside a node (edges, window, ...), never node ids themselves.
_NODE_KEYS = frozenset(
    f.alias or name
    for model in (NotificationNode, SplitNode, BranchNode, WaitNode)
    for name, f in model.model_fields.items()
    if (f.alias or name) not in NODE_TAGS and name != "description"
)


# ------------------------------------------------------------------ reading


def parse_source(path: Path, text: str, reporter: Reporter) -> Source | None:
    source = Source(path, display_name(path), text, yamlpos.Located(None))
    try:
        source.located = yamlpos.parse(text)
    except yamlpos.YamlSyntaxError as exc:
        reporter.at(source, exc.pos, exc.message, code="yaml-syntax")
        return None
    for issue in source.located.issues:
        reporter.at(source, issue.pos, issue.message, code=issue.code)
    return source


# ------------------------------------------------------------------ segments and includes


def _load_segments(
    source: Source,
    raw: Any,
    *,
    reporter: Reporter,
    loaded: LoadedCampaign,
    broken: set[str],
) -> dict[str, Segment]:
    """Validate a `segments:` mapping piece by piece; record where each came from."""
    out: dict[str, Segment] = {}
    if not isinstance(raw, dict):
        return out
    for name, body in raw.items():
        path = ("segments", name)
        if not valid_key(name, what="segment name", source=source, path=path, reporter=reporter):
            broken.add(str(name))
            continue
        if name in loaded.segment_origins:
            first = loaded.segment_origins[name]
            first_pos = first.source.located.pos(first.path)
            reporter.key(
                source,
                path,
                f"segment {name!r} is defined twice (first in {first.source.display}:{first_pos.line})",
                code="duplicate-segment",
            )
            continue
        segment = validate_piece(Segment, body, source=source, prefix=path, reporter=reporter)
        loaded.segment_origins[name] = SegmentOrigin(source, path)
        if segment is None:
            broken.add(name)
        else:
            out[name] = segment
    return out


def _load_includes(
    source: Source,
    includes: Any,
    *,
    reporter: Reporter,
    loaded: LoadedCampaign,
    stack: tuple[Path, ...],
    broken: set[str],
) -> dict[str, Segment]:
    out: dict[str, Segment] = {}
    if not isinstance(includes, list):
        return out
    for index, item in enumerate(includes):
        path = ("include", index)
        if not isinstance(item, str) or not item.strip():
            reporter.value(source, path, "an include is a file path (text)", code="wrong-type")
            continue
        escape = outside_folder(source.path.parent / item, stack[0].parent)
        if escape is not None:  # checked first: it also catches a loop of links
            reporter.value(source, path, f"include {item!r}: {escape}", code="include-outside")
            continue
        if Path(item).suffix not in YAML_SUFFIXES:
            reporter.value(
                source, path, f"include {item!r}: not a .yaml file", code="include-not-yaml"
            )
            continue
        target = (source.path.parent / item).resolve()
        if target in stack:
            chain = " -> ".join(display_name(p) for p in (*stack[stack.index(target) :], target))
            reporter.value(source, path, f"include cycle: {chain}", code="include-cycle")
            continue
        if any(src.path == target for src in loaded.sources):
            continue  # read once per load: a file two others include (or one twice) counts once
        if len(loaded.sources) > MAX_INCLUDED_FILES:
            reporter.value(
                source,
                path,
                f"more than {MAX_INCLUDED_FILES} included files; the rest are not read",
                code="include-limit",
            )
            return out
        try:
            text = loaded.reader(target)
        except MissingFileError:
            reporter.value(
                source,
                path,
                f"included file {item!r} not found (looked for {display_name(target)})",
                code="include-missing",
            )
            continue
        except UnreadableFileError as exc:
            reporter.value(source, path, str(exc), code="include-unreadable")
            continue
        read = sum(len(src.text) for src in loaded.sources) + len(text)
        if read > MAX_INCLUDED_CHARS:
            reporter.value(
                source,
                path,
                f"the included files pass {MAX_INCLUDED_CHARS:,} characters in all; not read",
                code="include-limit",
            )
            return out
        included = parse_source(target, text, reporter)
        if included is None:
            continue
        loaded.sources.append(included)
        data = included.located.data
        if not isinstance(data, dict):
            reporter.at(
                included,
                yamlpos.Pos(1, 1),
                "an included file is a mapping with 'segments:'",
                code="wrong-type",
            )
            continue
        header = {k: v for k, v in data.items() if k != "segments"}
        header["segments"] = {}
        if (
            validate_piece(SegmentFile, header, source=included, prefix=(), reporter=reporter)
            is None
        ):
            continue
        out.update(
            _load_includes(
                included,
                data.get("include", []),
                reporter=reporter,
                loaded=loaded,
                stack=(*stack, target),
                broken=broken,
            )
        )
        out.update(
            _load_segments(
                included, data.get("segments"), reporter=reporter, loaded=loaded, broken=broken
            )
        )
    return out


# ------------------------------------------------------------------ campaign


def _load_subcampaigns(
    source: Source, raw: Any, *, reporter: Reporter, broken: Broken
) -> dict[str, SubCampaign]:
    out: dict[str, SubCampaign] = {}
    if not isinstance(raw, dict):
        return out
    seen_nodes: dict[str, str] = {}
    for sub_name, sub_raw in raw.items():
        sub_path = ("subcampaigns", sub_name)
        if not valid_key(
            sub_name, what="sub-campaign id", source=source, path=sub_path, reporter=reporter
        ):
            broken.subcampaigns.add(str(sub_name))
            continue
        if not isinstance(sub_raw, dict):
            validate_piece(SubCampaign, sub_raw, source=source, prefix=sub_path, reporter=reporter)
            broken.subcampaigns.add(sub_name)
            continue
        nodes_raw = sub_raw.get("nodes")
        header = dict(sub_raw)
        had_broken = False
        if isinstance(nodes_raw, dict):
            good: dict[str, Any] = {}
            for node_id, node_raw in nodes_raw.items():
                node_path = (*sub_path, "nodes", node_id)
                if not valid_key(
                    node_id, what="node id", source=source, path=node_path, reporter=reporter
                ):
                    broken.nodes.add(str(node_id))
                    had_broken = True
                    continue
                if node_id in seen_nodes:
                    first = source.located.pos(
                        ("subcampaigns", seen_nodes[node_id], "nodes", node_id)
                    )
                    reporter.key(
                        source,
                        node_path,
                        f"duplicate node id {node_id!r}: node ids are unique across the file "
                        f"(first defined in sub-campaign {seen_nodes[node_id]!r}, line {first.line})",
                        code="duplicate-node",
                    )
                    had_broken = True
                    continue
                seen_nodes[node_id] = sub_name
                if not isinstance(node_raw, dict) and node_id in _NODE_KEYS:
                    # `on_no_convert: end` indented one level too little reads as a node.
                    reporter.key(
                        source,
                        node_path,
                        f"{node_id!r} is a key of a node, not a node id: "
                        "indent it under the node it belongs to",
                        code="node-kind",
                    )
                    had_broken = True
                    continue
                kinds = [k for k in NODE_TAGS if isinstance(node_raw, dict) and k in node_raw]
                if len(kinds) > 1:
                    reporter.key(
                        source,
                        (*node_path, kinds[1]),
                        f"a node is exactly one of: {', '.join(NODE_TAGS)} "
                        f"(this one has {', '.join(kinds[:-1])} and {kinds[-1]})",
                        code="node-kind",
                    )
                    broken.nodes.add(node_id)
                    broken.raw_nodes[node_id] = (sub_name, node_raw)
                    had_broken = True
                    continue
                node = validate_piece(
                    Node, node_raw, source=source, prefix=node_path, reporter=reporter
                )
                if node is None:
                    broken.nodes.add(node_id)
                    broken.raw_nodes[node_id] = (sub_name, node_raw)
                    had_broken = True
                else:
                    good[node_id] = node
            header["nodes"] = good
        skip = ("too_short",) if had_broken else ()
        sub = validate_piece(
            SubCampaign, header, source=source, prefix=sub_path, reporter=reporter, skip=skip
        )
        if sub is None or had_broken:
            broken.subcampaigns.add(sub_name)
        if sub is not None:
            out[sub_name] = sub
    return out


_VALID: dict[Path, LoadedCampaign] = {}


def load_unchanged(path: Path) -> LoadedCampaign:
    """`load(path)`, reusing the last valid result while every file it read still reads the same.

    A tick loads its campaign on every run; reading a few files back is far cheaper
    than parsing and validating them again (which scheduled ticks would repeat
    every few minutes)."""
    key = path.resolve()
    cached = _VALID.get(key)
    if cached is not None:
        try:
            if all(read_text(src.path) == src.text for src in cached.sources):
                return cached
        except UnreadableFileError:
            pass
    loaded = load(path)
    if loaded.ok:
        if len(_VALID) >= 256:
            _VALID.clear()
        _VALID[key] = loaded
    else:
        _VALID.pop(key, None)
    return loaded


def load(path: Path, *, reader: Callable[[Path], str] | None = None) -> LoadedCampaign:
    """Load and validate one campaign file. Raises UnreadableFileError if it cannot be read.

    `reader` reads a file's text (default: from disk); a stored campaign version
    is loaded again from its saved sources this way.
    """
    from orchestrator.language import checks  # checks imports graph; keep start-up light

    read = reader or read_text
    if reader is None:
        escape = outside_folder(path, path.absolute().parent)
        if escape is not None:
            raise UnreadableFileError(escape)
    text = read(path)
    loaded = LoadedCampaign(path=path, display=display_name(path), text=text, reader=read)
    reporter = Reporter()
    source = parse_source(path, text, reporter)
    if source is not None:
        loaded.sources.append(source)
        _load_document(source, loaded=loaded, reporter=reporter, checks_module=checks)
    digest = hashlib.sha256()
    for src in loaded.sources or [Source(path, loaded.display, text, yamlpos.Located(None))]:
        digest.update(src.display.encode() + b"\0" + src.text.encode() + b"\0")
    loaded.content_hash = digest.hexdigest()
    loaded.diagnostics = sorted(
        set(reporter.items),
        key=lambda d: (d.file != loaded.display, d.file, d.line, d.col, d.message),
    )
    return loaded


def _load_document(
    source: Source, *, loaded: LoadedCampaign, reporter: Reporter, checks_module: Any
) -> None:
    data = source.located.data
    if not isinstance(data, dict):
        what = "empty" if data is None else f"{describe_value(data)}"
        reporter.at(
            source,
            source.located.value_pos(()),
            f"a campaign file is a mapping with 'campaign:', 'title:' and 'subcampaigns:' (this file is {what})",
            code="wrong-type",
        )
        return
    broken = Broken()
    if "campaign" not in data and "subcampaigns" not in data and "segments" in data:
        loaded.is_segment_file = True
        _load_includes(
            source,
            data.get("include", []),
            reporter=reporter,
            loaded=loaded,
            stack=(source.path.resolve(),),
            broken=broken.segments,
        )
        header = {k: v for k, v in data.items() if k != "segments"}
        header["segments"] = {}
        validate_piece(SegmentFile, header, source=source, prefix=(), reporter=reporter)
        _load_segments(
            source, data.get("segments"), reporter=reporter, loaded=loaded, broken=broken.segments
        )
        return
    included = _load_includes(
        source,
        data.get("include", []),
        reporter=reporter,
        loaded=loaded,
        stack=(source.path.resolve(),),
        broken=broken.segments,
    )
    own = _load_segments(
        source, data.get("segments"), reporter=reporter, loaded=loaded, broken=broken.segments
    )
    subs = _load_subcampaigns(source, data.get("subcampaigns"), reporter=reporter, broken=broken)
    top = dict(data)
    if isinstance(data.get("segments"), dict):
        top["segments"] = {**included, **own}
    else:
        top.setdefault("segments", {})
        if not isinstance(top["segments"], dict):
            pass  # pydantic reports the wrong type
        else:
            top["segments"] = included
    if isinstance(data.get("subcampaigns"), dict):
        top["subcampaigns"] = subs
    skip = ("too_short",) if broken.subcampaigns else ()
    campaign = validate_piece(Campaign, top, source=source, prefix=(), reporter=reporter, skip=skip)
    if campaign is not None:
        loaded.campaign = campaign
    else:
        # Still check what did validate, so every problem shows at once.
        campaign = _partial_campaign(data, segments=top.get("segments"), subcampaigns=subs)
    checks_module.run(campaign, source=source, loaded=loaded, reporter=reporter, broken=broken)


def _partial_campaign(
    data: dict[str, Any], *, segments: Any, subcampaigns: dict[str, SubCampaign]
) -> Campaign:
    """A Campaign from the parts that validated, for the cross-checks of a file with errors."""
    quiet = Reporter()
    dummy = Source(Path("-"), "-", "", yamlpos.Located(None))

    def piece(name: str, default: Any) -> Any:
        if name not in data:
            return default
        value = validate_piece(
            Campaign.model_fields[name].annotation,
            data[name],
            source=dummy,
            prefix=(),
            reporter=quiet,
        )
        return default if value is None else value

    return Campaign.model_construct(
        campaign=str(data.get("campaign") or "-"),
        title=str(data.get("title") or "-"),
        goal=piece("goal", "click"),
        settings=piece("settings", Settings()),
        segments=segments if isinstance(segments, dict) else {},
        subcampaigns=subcampaigns,
    )


# ------------------------------------------------------------------ many files


def campaign_files(paths: list[Path]) -> list[Path]:
    """Expand folders into the campaign files directly inside them (sub-folders hold includes)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(
                sorted(p for p in path.iterdir() if p.suffix in YAML_SUFFIXES and p.is_file())
            )
        else:
            out.append(path)
    return out


def campaigns_in(folder: Path) -> list[Path]:
    """The campaign files of a campaigns folder, or a ConfigurationError that says what to
    do when there is no such folder or no campaign in it (a command that reads campaigns
    never goes on with none)."""
    if not folder.is_dir():
        raise ConfigurationError(
            f"{folder}: no such folder of campaigns. Set CAMPAIGN_GRAPHS to yours, or "
            "run `campaign init` to start one"
        )
    found = campaign_files([folder])
    if not found:
        raise ConfigurationError(
            f"{folder}: no campaign files (*.yaml) in it. Set CAMPAIGN_GRAPHS to your "
            "campaigns folder, or run `campaign init` to start one"
        )
    return found


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"  # shipped in the package
