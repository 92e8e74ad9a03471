"""Notification templates: Jinja2 in a sandbox, checked at validation, rendered at send time.

Templates see `subscriber` (id, attributes, tags, timezone), `campaign` (id,
title), `node` (id) and, in triggered sub-campaigns, `trigger` (event,
properties, at). The sandbox refuses attribute access to internals
(`''.__class__.__mro__` and friends) and anything unsafe to call.

Rendering is bounded (docs/language.md, "Template limits"): no text or list an operation
builds may exceed MAX_BUILT, whole numbers stay within MAX_INT_BITS, and one render takes
at most MAX_STEPS steps and MAX_RENDER_SECONDS, builds at most MAX_BUILT_TOTAL in all,
nests macro calls at most MAX_DEPTH deep and outputs at most MAX_OUTPUT characters.
Growth an operation's arguments predict (`'x'|center(10**9)`, `'x' * 10**9`,
`7 ** 300000000`) is refused before anything is allocated. The limits hold both when a
campaign is validated (every notification is rendered with a worst-case context) and
at send time; going past one raises TemplateLimitError.

- `limits`: the values of the limits, the longest context values, and the errors for
  going past a limit;
- `budget`: one render's steps, deadline, total built and nesting depth;
- `sizes`: the size of a value or of a result its arguments predict, and the checks
  that refuse one past a limit;
- `filters`: Jinja's filters and tests, bounded;
- `codegen`: the code generator that puts the limits' hooks into compiled templates;
- `sandbox`: the sandboxed environment whose operators, calls and `str` methods are
  bounded (`environment`);
- `source`: a template's source checked at validation (`check`) and the names it reads;
- `rendering`: `render`, within the limits.
"""

from orchestrator.language.templates.limits import (
    MAX_BUILT,
    MAX_BUILT_TOTAL,
    MAX_DEPTH,
    MAX_EVENT_NAME,
    MAX_INT_BITS,
    MAX_OUTPUT,
    MAX_RENDER_SECONDS,
    MAX_STEPS,
    MAX_SUBSCRIBER_ID,
    MAX_TEMPLATE_LENGTH,
    MAX_TIMEZONE,
    TemplateLimitError,
)
from orchestrator.language.templates.rendering import render
from orchestrator.language.templates.sandbox import environment
from orchestrator.language.templates.source import (
    TOP_LEVEL_NAMES,
    TemplateProblem,
    check,
    is_template,
    names_used,
)

# What the rest of the project may import; the modules are this package's own.
__all__ = [
    "MAX_BUILT",
    "MAX_BUILT_TOTAL",
    "MAX_DEPTH",
    "MAX_EVENT_NAME",
    "MAX_INT_BITS",
    "MAX_OUTPUT",
    "MAX_RENDER_SECONDS",
    "MAX_STEPS",
    "MAX_SUBSCRIBER_ID",
    "MAX_TEMPLATE_LENGTH",
    "MAX_TIMEZONE",
    "TOP_LEVEL_NAMES",
    "TemplateLimitError",
    "TemplateProblem",
    "check",
    "environment",
    "is_template",
    "names_used",
    "render",
]
