"""Checks of each node on its own, after parsing: a branch's else case, a split's
weights, and a notification's templates (their variables, then their render limits with
the worst-case context), its number of actions and its worst-case payload size.
`checks` runs them with its checks across nodes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.errors import TemplateRenderError
from orchestrator.language import payload, templates
from orchestrator.language.spec import (
    BranchNode,
    Campaign,
    NotificationNode,
    SplitNode,
    SplitOptions,
)
from orchestrator.language.yamlpos import Pos

if TYPE_CHECKING:
    from orchestrator.language.document import Broken, Reporter, Source
    from orchestrator.language.yamlpos import Path_

MAX_ACTIONS = 2


def check_nodes(campaign: Campaign, *, source: Source, reporter: Reporter, broken: Broken) -> None:
    """Every node of `campaign`, and the notification templates of nodes that failed to parse."""
    for sub_name, sub in campaign.subcampaigns.items():
        triggered = sub.trigger is not None
        allowed = templates.TOP_LEVEL_NAMES if triggered else templates.TOP_LEVEL_NAMES[:-1]
        for node_id, node in sub.nodes.items():
            path: Path_ = ("subcampaigns", sub_name, "nodes", node_id)
            if isinstance(node, BranchNode):
                _check_branch(node, source=source, path=path, reporter=reporter)
            elif isinstance(node, SplitNode):
                total = sum(node.arms.values())
                if abs(total - 100) > 1e-9:
                    reporter.key(
                        source,
                        (*path, "split", "arms")
                        if isinstance(node.split, SplitOptions)
                        else (*path, "split"),
                        f"split weights sum to {total:g}, not 100",
                        code="split-weights",
                    )
                for key, message in node.options.problems():
                    reporter.value(source, (*path, "split", key), message, code="split-options")
                _check_split_goal(campaign, node, source=source, path=path, reporter=reporter)
            elif isinstance(node, NotificationNode):
                _check_notification(
                    campaign,
                    node_id,
                    node,
                    source=source,
                    path=path,
                    reporter=reporter,
                    allowed=allowed,
                    triggered=triggered,
                )
    for node_id, (sub_name, raw) in broken.raw_nodes.items():
        notification = raw.get("notification") if isinstance(raw, dict) else None
        if isinstance(notification, dict):
            triggered = "trigger" in _raw_sub(source, sub_name)
            allowed = templates.TOP_LEVEL_NAMES if triggered else templates.TOP_LEVEL_NAMES[:-1]
            fields = {f: notification.get(f) for f in payload.TEMPLATED_FIELDS}
            _check_templates(
                fields,
                source=source,
                path=("subcampaigns", sub_name, "nodes", node_id),
                reporter=reporter,
                allowed=allowed,
            )


def _raw_sub(source: Source, sub_name: str) -> dict[str, Any]:
    raw = source.located.data_at(("subcampaigns", sub_name))
    return raw if isinstance(raw, dict) else {}


def _check_branch(node: BranchNode, *, source: Source, path: Path_, reporter: Reporter) -> None:
    else_at = [i for i, c in enumerate(node.branch) if c.else_ is not None]
    last = len(node.branch) - 1
    if not else_at:
        reporter.key(
            source,
            (*path, "branch"),
            "branch has no else case: add {else: TARGET} as the last case",
            code="branch-else",
        )
    for index in else_at:
        if index != last:
            reporter.key(
                source,
                (*path, "branch", index),
                "else must be the last case of a branch (cases after it are never tried)",
                code="branch-else",
            )


def _check_templates(
    fields: dict[str, Any],
    *,
    source: Source,
    path: Path_,
    reporter: Reporter,
    allowed: tuple[str, ...],
) -> bool:
    ok = True
    for field, text in fields.items():
        if not isinstance(text, str):
            continue
        field_path = (*path, "notification", field)
        for problem in templates.check(text, allowed=allowed):
            ok = False
            at = _template_pos(source, field_path, problem.line_offset)
            reporter.at(source, at, problem.message, code="template")
    return ok


def _template_pos(source: Source, field_path: Path_, line_offset: int) -> Pos:
    """The position of a line inside the template text of a field."""
    pos = source.located.value_pos(field_path)
    line = pos.line + line_offset + (1 if field_path in source.located.block else 0)
    col = pos.col if line == pos.line else _indent_col(source.text, line)
    return Pos(line, col)


def _check_template_limits(
    campaign: Campaign,
    node_id: str,
    node: NotificationNode,
    *,
    source: Source,
    path: Path_,
    reporter: Reporter,
    triggered: bool,
) -> bool:
    """Render each template with the worst-case context: one that goes past a render limit
    (size, numbers, steps, time, output, nesting) is an error at its line. Other render
    errors are not: attributes and trigger properties are unknown here (they render
    empty), so they are left to send time, as the payload size check does."""
    context = payload.worst_case_context(campaign, node_id, triggered=triggered)
    ok = True
    for field in payload.TEMPLATED_FIELDS:
        text = getattr(node.notification, field)
        if text is None:
            continue
        try:
            templates.render(text, context, strict=False)
        except templates.TemplateLimitError as exc:
            ok = False
            field_path = (*path, "notification", field)
            at = _template_pos(source, field_path, exc.line_offset)
            reporter.at(source, at, str(exc), code="template")
        except TemplateRenderError:
            continue  # an unknown value (see above): judged when the send is rendered
    return ok


def _indent_col(text: str, line: int) -> int:
    """The column of the first character of a line (a line inside a block scalar)."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return 1
    content = lines[line - 1]
    return len(content) - len(content.lstrip()) + 1


def _check_notification(
    campaign: Campaign,
    node_id: str,
    node: NotificationNode,
    *,
    source: Source,
    path: Path_,
    reporter: Reporter,
    allowed: tuple[str, ...],
    triggered: bool,
) -> None:
    fields = {f: getattr(node.notification, f) for f in payload.TEMPLATED_FIELDS}
    template_ok = _check_templates(
        fields, source=source, path=path, reporter=reporter, allowed=allowed
    )
    if template_ok:
        template_ok = _check_template_limits(
            campaign,
            node_id,
            node,
            source=source,
            path=path,
            reporter=reporter,
            triggered=triggered,
        )
    actions = node.notification.actions
    if len(actions) > MAX_ACTIONS:
        reporter.key(
            source,
            (*path, "notification", "actions"),
            f"{len(actions)} actions: browsers show at most {MAX_ACTIONS}, the rest are dropped",
            code="too-many-actions",
            severity="warning",
        )
    if template_ok:
        size = payload.worst_case_size(campaign, node_id, triggered=triggered)
        if size > payload.MAX_PLAINTEXT_BYTES:
            reporter.key(
                source,
                (*path, "notification"),
                f"notification payload can reach {size:,} bytes; Web Push allows "
                f"{payload.MAX_PLAINTEXT_BYTES:,} (shorten the title, body or urls)",
                code="payload-size",
            )


def _check_split_goal(
    campaign: Campaign, node: SplitNode, *, source: Source, path: Path_, reporter: Reporter
) -> None:
    """A warning for an arm whose first notification converts on another event than the
    one the test is judged on: its conversions would not count, and the test would
    compare unlike things."""
    judged = node.options.goal or campaign.goal
    nodes = campaign.all_nodes()
    for arm in node.arms:
        target = nodes.get(arm)
        if isinstance(target, NotificationNode) and (target.goal or campaign.goal) != judged:
            reporter.key(
                source,
                (*path, "split"),
                f"the split is judged on {judged!r}, but arm {arm!r} converts on "
                f"{target.goal or campaign.goal!r}: its conversions are not counted; give the "
                "split the event every arm leads to (split: {arms: …, goal: EVENT})",
                code="split-goal",
                severity="warning",
            )
