"""YAML → plain Python data, keeping the source position of every key and value.

Only the safe subset of YAML is accepted: no object tags, no anchors used as
"billion laughs" bombs (node count is limited), a bounded size and depth.
Implicit typing follows YAML 1.2's core schema rather than PyYAML's YAML 1.1
defaults, so `21:00` stays a string (not the sexagesimal 1260) and `on`/`no`
stay strings (not booleans): what a campaign author means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from orchestrator.errors import CampaignError

Path_ = tuple[str | int, ...]

MAX_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_NODES = 200_000


@dataclass(frozen=True)
class Pos:
    """1-based line and column in a source file."""

    line: int
    col: int


@dataclass
class YamlIssue:
    pos: Pos
    message: str
    code: str


@dataclass
class Located:
    """Parsed data plus where each piece of it came from."""

    data: Any
    values: dict[Path_, Pos] = field(default_factory=dict)  # path -> position of the value
    keys: dict[Path_, Pos] = field(default_factory=dict)  # path -> position of the mapping key
    block: set[Path_] = field(default_factory=set)  # scalars written as | or > blocks
    issues: list[YamlIssue] = field(default_factory=list)  # non-fatal (duplicate keys)

    def pos(self, path: Path_) -> Pos:
        """Best position for a path: the key if known, else the value, else the nearest parent."""
        p = tuple(path)
        while True:
            if p in self.keys:
                return self.keys[p]
            if p in self.values:
                return self.values[p]
            if not p:
                return Pos(1, 1)
            p = p[:-1]

    def data_at(self, path: Path_) -> Any:
        """The parsed value at a path, or None."""
        value = self.data
        for part in path:
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
                value = value[part]
            else:
                return None
        return value

    def value_pos(self, path: Path_) -> Pos:
        p = tuple(path)
        if p in self.values:
            return self.values[p]
        return self.pos(p)


class YamlSyntaxError(CampaignError):
    def __init__(self, pos: Pos, message: str) -> None:
        super().__init__(message)
        self.pos = pos
        self.message = message


class CoreLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema implicit types."""


CoreLoader.yaml_implicit_resolvers = {}
CoreLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
CoreLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
CoreLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
CoreLoader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)

_ALLOWED_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}


def _mark(node: yaml.Node) -> Pos:
    return Pos(node.start_mark.line + 1, node.start_mark.column + 1)


def _scalar(loader: CoreLoader, node: yaml.ScalarNode) -> Any:
    tag = node.tag
    if tag == "tag:yaml.org,2002:int":
        text = node.value.replace("_", "")
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text)
    if tag == "tag:yaml.org,2002:float":
        return loader.construct_yaml_float(node)
    if tag == "tag:yaml.org,2002:bool":
        return node.value.lower() == "true"
    if tag == "tag:yaml.org,2002:null":
        return None
    return node.value


def _syntax_error(exc: yaml.MarkedYAMLError) -> YamlSyntaxError:
    """PyYAML's error, worded for a campaign author and placed where the mistake is."""
    problem = exc.problem or exc.context or "invalid YAML"
    context = exc.context or ""
    start, mark = exc.context_mark, exc.problem_mark or exc.context_mark
    pos = Pos(mark.line + 1, mark.column + 1) if mark else Pos(1, 1)
    if start is not None and "quoted scalar" in context and "end of stream" in problem:
        # Reported at the end of the file; the mistake is the opening quote.
        buffer, pointer = getattr(start, "buffer", None), getattr(start, "pointer", -1)
        quote = buffer[pointer] if buffer and 0 <= pointer < len(buffer) else "quote"
        message = f"unclosed quote: the file ends before the closing {quote}"
        return YamlSyntaxError(
            Pos(start.line + 1, start.column + 1), f"YAML syntax error: {message}"
        )
    flow = context.startswith("while parsing a flow")
    if flow and start is not None and mark is not None and mark.line != start.line:
        # `{a: 1, b: 2` without its `}`: point at the bracket that is not closed.
        opener = "[" if "sequence" in context else "{"
        message = f"unclosed {opener!r}: {problem} at line {mark.line + 1}, col {mark.column + 1}"
        return YamlSyntaxError(
            Pos(start.line + 1, start.column + 1), f"YAML syntax error: {message}"
        )
    if flow and problem.endswith(("':'", "'?'", "','", "'['", "'{'")):
        problem += " (inside {...} or [...], quote text that contains : ? , [ ] { or })"
    if start is not None and context == "while scanning a simple key":
        # A line without `key:`; PyYAML notices only on the next line.
        pos = Pos(start.line + 1, start.column + 1)
        problem = "expected 'key: value' (could not find the ':')"
    elif "'\\t'" in problem:
        problem = "tab character: indent with spaces, not tabs"
    elif problem == "expected <block end>, but found '<block mapping start>'":
        problem = "bad indentation: this line does not line up with the lines above it"
    elif problem == "mapping values are not allowed here":
        problem += " (is this line indented too far, or does an unquoted value contain ': '?)"
    elif context.startswith("expected"):
        problem = f"{context}, {problem}"
    return YamlSyntaxError(pos, f"YAML syntax error: {problem}")


def _reader_error(text: str, exc: yaml.reader.ReaderError) -> YamlSyntaxError:
    """A character YAML does not allow (NUL, other control characters), with its position."""
    at = min(max(exc.position, 0), len(text))
    line = text.count("\n", 0, at) + 1
    col = at - (text.rfind("\n", 0, at) + 1) + 1
    char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
    return YamlSyntaxError(
        Pos(line, col), f"YAML syntax error: character U+{char:04X} is not allowed in a YAML file"
    )


def parse(text: str) -> Located:
    """Parse one YAML document. Raises YamlSyntaxError with a position."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlSyntaxError(Pos(1, 1), f"file is larger than {MAX_BYTES:,} bytes")
    try:
        loader = CoreLoader(text)  # the reader rejects control characters here
    except yaml.reader.ReaderError as exc:
        raise _reader_error(text, exc) from None
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            raise _syntax_error(exc) from None
        except yaml.reader.ReaderError as exc:
            raise _reader_error(text, exc) from None
        except yaml.YAMLError as exc:
            raise YamlSyntaxError(Pos(1, 1), f"YAML syntax error: {exc}") from None
        except RecursionError:  # PyYAML's parser recurses per level: `[[[[…` 1,000 deep
            raise YamlSyntaxError(
                Pos(loader.line + 1, loader.column + 1),
                f"document is nested deeper than {MAX_DEPTH} levels",
            ) from None
    finally:
        loader.dispose()
    located = Located(data=None)
    if root is None:
        return located
    count = [0]

    def build(node: yaml.Node, path: Path_, depth: int) -> Any:
        count[0] += 1
        if count[0] > MAX_NODES:
            raise YamlSyntaxError(_mark(node), f"document has more than {MAX_NODES:,} nodes")
        if depth > MAX_DEPTH:
            raise YamlSyntaxError(_mark(node), f"document is nested deeper than {MAX_DEPTH} levels")
        if node.tag not in _ALLOWED_TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!", 1)  # as the author wrote it
            raise YamlSyntaxError(
                _mark(node), f"YAML tag {tag!r} is not allowed: a campaign file is plain data"
            )
        located.values[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise YamlSyntaxError(_mark(key_node), "YAML merge keys (<<) are not supported")
                if not isinstance(key_node, yaml.ScalarNode):
                    raise YamlSyntaxError(_mark(key_node), "mapping keys must be plain scalars")
                key = _scalar(loader, key_node)
                key = key if isinstance(key, str) else str(key) if key is not None else "null"
                kpath = (*path, key)
                if key in out:
                    first = located.keys[kpath]
                    located.issues.append(
                        YamlIssue(
                            _mark(key_node),
                            f"duplicate key {key!r} (first defined at line {first.line})",
                            "duplicate-key",
                        )
                    )
                    continue
                located.keys[kpath] = _mark(key_node)
                out[key] = build(value_node, kpath, depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        if node.style in ("|", ">"):
            located.block.add(path)
        return _scalar(loader, node)

    located.data = build(root, (), 0)
    return located
