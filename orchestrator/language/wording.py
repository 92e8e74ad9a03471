"""Pydantic's validation errors, worded for campaign authors and placed in the file.

`validate_piece` validates one part of a document (settings, a segment, a node) and
reports what is wrong at the YAML position of the offending key or value, in the
language of the campaign format ("unknown key 'tittle' in notification; did you
mean 'title'?"), never in pydantic's.
"""

from __future__ import annotations

import types
import typing
from functools import cache
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError as PydanticValidationError

from orchestrator.language import yamlpos
from orchestrator.language.diagnostics import did_you_mean
from orchestrator.language.scalars import check_id
from orchestrator.language.spec import NODE_TAGS, RULE_TAGS

if TYPE_CHECKING:
    from orchestrator.language.document import Reporter, Source

_TAG_MODELS: dict[str, type[BaseModel]] = {}


@cache
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


def _tag_models() -> dict[str, type[BaseModel]]:
    if not _TAG_MODELS:
        import orchestrator.language.spec as spec_module

        for tag in (*NODE_TAGS.values(), *RULE_TAGS.values(), "SplitOptions"):
            _TAG_MODELS[tag] = getattr(spec_module, tag)
        _TAG_MODELS["SplitWeights"] = dict[str, float]  # type: ignore[assignment]
    return _TAG_MODELS


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is typing.Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _model_at(root: Any, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class found by walking a pydantic error location from a root type."""
    tp = _unwrap(root)
    tags = _tag_models()
    for part in loc:
        if isinstance(part, str) and part in tags:
            tp = tags[part]
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fld = next((f for name, f in tp.model_fields.items() if part in (name, f.alias)), None)
            if fld is None:
                return None
            tp = _unwrap(fld.annotation)
        elif get_origin(tp) is dict:
            tp = _unwrap(get_args(tp)[1])
        elif get_origin(tp) is list:
            tp = _unwrap(get_args(tp)[0])
        else:
            return None
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def describe_value(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the text {value!r}"
    return f"{type(value).__name__} {value!r}"


_TYPE_WORDS = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
}


def report_pydantic(
    exc: PydanticValidationError,
    *,
    root: Any,
    source: Source,
    prefix: yamlpos.Path_,
    reporter: Reporter,
    skip: tuple[str, ...] = (),
) -> None:
    """Turn pydantic's errors into positioned, human-worded diagnostics."""
    tags = _tag_models()
    for err in exc.errors():
        raw_loc = tuple(err["loc"])
        loc = tuple(p for p in raw_loc if not (isinstance(p, str) and (p in tags or p == "[key]")))
        path = (*prefix, *loc)
        kind = err["type"]
        name = str(loc[-1]) if loc else ""
        if kind in skip:
            continue
        if kind == "extra_forbidden":
            model = _model_at(root, raw_loc[:-1])
            hint = did_you_mean(name, _allowed_keys(model)) if model else ""
            where = f" in {_noun(model)}" if model else ""
            reporter.key(source, path, f"unknown key {name!r}{where}{hint}", code="unknown-key")
        elif kind == "missing":
            model = _model_at(root, raw_loc[:-1])
            where = f" in {_noun(model)}" if model else ""
            reporter.key(
                source, path[:-1], f"missing required key {name!r}{where}", code="missing-key"
            )
        elif kind in ("node_kind", "rule_kind"):
            keys = list(err["input"]) if isinstance(err["input"], dict) else []
            wanted = list(NODE_TAGS) if kind == "node_kind" else list(RULE_TAGS)
            hints = [(k, did_you_mean(str(k), wanted)) for k in keys]
            misspelt, hint = next(((k, h) for k, h in hints if h), (None, ""))
            message = (
                err["msg"]
                if isinstance(err["input"], dict)
                else (f"{err['msg']}; got {describe_value(err['input'])}")
            )
            at = path if misspelt is None else (*path, misspelt)  # the misspelt kind key
            reporter.key(source, at, f"{message}{hint}", code=kind.replace("_", "-"))
        elif kind == "value_error":
            message = str(err["msg"]).removeprefix("Value error, ")
            # A whole mapping is wrong (no entry, two operators): point at its key, not
            # at its first inner key, which would blame a line that is fine.
            whole = isinstance(source.located.data_at(path), dict)
            report = reporter.key if whole else reporter.value
            report(source, path, message, code="invalid-value")
        elif kind in _TYPE_WORDS:
            what = f"{name!r} must be" if name and not name.isdigit() else "expected"
            reporter.value(
                source,
                path,
                f"{what} {_TYPE_WORDS[kind]}, got {describe_value(err['input'])}",
                code="wrong-type",
            )
        elif kind == "literal_error":
            what = f"{name!r} must be" if name and not name.isdigit() else "expected"
            expected = err.get("ctx", {}).get("expected", "one of the allowed values")
            reporter.value(
                source,
                path,
                f"{what} {expected}, got {describe_value(err['input'])}",
                code="invalid-value",
            )
        elif kind == "string_pattern_mismatch" and name == "campaign":
            reporter.value(
                source,
                path,
                f"campaign id {err['input']!r} must be lowercase letters, digits and '-', "
                "starting with a letter or digit, at most 63 characters",
                code="invalid-id",
            )
        elif kind in _BOUNDS:
            what = f"{name!r}" if name and not name.isdigit() else "the value"
            bound = err.get("ctx", {}).get(_BOUNDS[kind])
            got = err["input"]
            if kind == "string_too_short" and bound == 1:
                message = f"{what} must not be empty"
            elif kind.endswith(("too_short", "too_long")):
                most = "at least" if kind.endswith("short") else "at most"
                one, many = (
                    ("character", "characters") if "string" in kind else ("entry", "entries")
                )
                units = one if bound == 1 else many
                message = f"{what} must have {most} {bound} {units}, got {len(got)}"
            else:
                words = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}
                message = f"{what} must be {words[_BOUNDS[kind]]} {bound}, got {got!r}"
            reporter.value(source, path, message, code="invalid-value")
        else:
            label = f"{name}: " if name and not name.isdigit() else ""
            message = str(err["msg"])
            reporter.value(
                source, path, f"{label}{message[0].lower()}{message[1:]}", code="invalid-value"
            )


# pydantic's bound errors and the ctx key that holds the bound.
_BOUNDS = {
    "greater_than_equal": "ge",
    "greater_than": "gt",
    "less_than_equal": "le",
    "less_than": "lt",
    "too_short": "min_length",
    "too_long": "max_length",
    "string_too_short": "min_length",
    "string_too_long": "max_length",
}


def _noun(model: type[BaseModel] | None) -> str:
    if model is None:
        return ""
    words = {
        "Campaign": "the campaign",
        "Settings": "settings",
        "SubCampaign": "sub-campaign",
        "NotificationNode": "notification node",
        "Notification": "notification",
        "SplitNode": "split node",
        "BranchNode": "branch node",
        "BranchCase": "branch case",
        "WaitNode": "wait node",
        "EdgeSpec": "edge",
        "Segment": "segment",
        "SegmentFile": "segment file",
        "Trigger": "trigger",
        "QuietHours": "quiet_hours",
        "FrequencyCap": "frequency_cap",
        "SendTimeSpec": "send_time",
        "SplitOptions": "split",
        "SplitPlan": "split plan",
        "Action": "action",
        "AttrRule": "attr rule",
        "EventRule": "event rule",
        "TagRule": "tag rule",
        "SegmentRef": "segment rule",
        "AllRule": "all rule",
        "AnyRule": "any rule",
        "NotRule": "not rule",
    }
    return words.get(model.__name__, model.__name__)


def validate_piece(
    tp: Any,
    data: Any,
    *,
    source: Source,
    prefix: yamlpos.Path_,
    reporter: Reporter,
    skip: tuple[str, ...] = (),
) -> Any | None:
    try:
        return _adapter(tp).validate_python(data)
    except PydanticValidationError as exc:
        report_pydantic(exc, root=tp, source=source, prefix=prefix, reporter=reporter, skip=skip)
        return None


def valid_key(
    name: Any, *, what: str, source: Source, path: yamlpos.Path_, reporter: Reporter
) -> bool:
    try:
        check_id(name, what)
    except ValueError as exc:
        reporter.key(source, path, str(exc), code="invalid-id")
        return False
    return True
