"""The numbers that bound a template and its render, and the errors for going past them.

The values are the ones docs/language.md lists under "Template limits". The longest
context values (MAX_SUBSCRIBER_ID, MAX_TIMEZONE, MAX_EVENT_NAME) make the worst-case
context every notification is rendered with at validation. Inside the sandbox a limit
raises `LimitReached`, which `render` turns into the `TemplateLimitError` callers see.
"""

from __future__ import annotations

from orchestrator.errors import TemplateRenderError

# Longest text or list one operation of a template may build (a list counts its items and
# the characters of texts in it): far beyond any payload (3,993 bytes), far below what
# would exhaust memory (`{{ 'x' * 10**12 }}`).
MAX_BUILT = 100_000
# Everything one render may build in all (texts, lists, captured output of macros and
# `{% set %}` blocks): bounds the memory of a render.
MAX_BUILT_TOTAL = 1_000_000
# Largest whole number (in bits, about 1,233 decimal digits) a template may compute.
MAX_INT_BITS = 4_096
# Longest output of one template; a whole notification payload is at most 3,993 bytes.
MAX_OUTPUT = 16_384
# Steps of one render: loop iterations, calls, operators, comparisons of two variables,
# and one per item a filter goes through.
MAX_STEPS = 50_000
# Time one render may take (checked every few steps).
MAX_RENDER_SECONDS = 0.2
# Nesting of macro calls and recursive loops.
MAX_DEPTH = 30
# Longest template source: compiling a template costs time and memory in its length.
MAX_TEMPLATE_LENGTH = 10_000

# Longest values the engine allows (enforced at import / event intake).
MAX_SUBSCRIBER_ID = 128
MAX_TIMEZONE = 40
MAX_EVENT_NAME = 64


class TemplateLimitError(TemplateRenderError):
    """A template went past one of the render limits; `line_offset` is the (0-based) line
    inside the template text where it did."""

    def __init__(self, message: str, line_offset: int = 0) -> None:
        super().__init__(message)
        self.line_offset = line_offset


class LimitReached(Exception):
    """Raised inside the sandbox; `render` turns it into TemplateLimitError. (Jinja's
    compile-time constant folding swallows it: the expression is then left to run time.)"""


# Why a template is refused whole, by `check` and by `render`.
TOO_LONG = f"it is {{:,}} characters long (at most {MAX_TEMPLATE_LENGTH:,})"
TOO_DEEP = "it nests too deeply (recursive macros or loops, or deeply nested brackets)"
