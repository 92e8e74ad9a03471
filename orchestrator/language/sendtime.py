"""`send_time` in the campaign language: when a due send leaves (docs/language.md;
the engine's side is `orchestrator.engine.sendtime`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BeforeValidator, WithJsonSchema, model_validator

from orchestrator.language.scalars import DURATION_SCHEMA, Percent, PositiveDuration, Strict

MAX_SEND_DELAY = timedelta(days=7)


def _send_time_input(value: Any) -> Any:
    if isinstance(value, str):
        if value not in ("best", "immediate"):
            raise ValueError(
                f"{value!r} is not a send_time: write best (each subscriber's best hour, "
                "within max_delay) or immediate, or {mode: best, max_delay: 12h}"
            )
        return {"mode": value}
    if isinstance(value, dict):
        tuning = sorted(k for k in ("max_delay", "explore", "compare") if k in value)
        if "mode" not in value:
            raise ValueError("send_time needs its mode: {mode: best, …} (or write best)")
        if value["mode"] == "immediate" and tuning:
            raise ValueError(
                f"{', '.join(tuning)} tune mode: best; with mode: immediate they do nothing"
            )
        return value
    if isinstance(value, SendTimeSpec):
        return value
    raise ValueError(
        f"a send_time is best, immediate or {{mode: best, max_delay: 12h}}, got {value!r}"
    )


class SendTimeSpec(Strict):
    """When a due send leaves: at once (`immediate`), or at the subscriber's best local hour
    within `max_delay` (`best`; docs/engine.md, "Send-time optimisation"). `explore` of the
    journeys go at a random hour inside the allowed delay (so the model keeps learning) and
    `compare` go at once: the comparison group the optimiser's lift is measured against."""

    mode: Literal["immediate", "best"] = "immediate"
    max_delay: PositiveDuration = timedelta(hours=24)
    explore: Percent = 0.10
    compare: Percent = 0.10

    @model_validator(mode="after")
    def _bounds(self) -> SendTimeSpec:
        if self.max_delay > MAX_SEND_DELAY:
            raise ValueError("send_time max_delay is at most 7d")
        if self.explore + self.compare >= 1:
            raise ValueError("send_time explore and compare together must leave room for best")
        return self


SendTime: TypeAlias = Annotated[
    SendTimeSpec,
    BeforeValidator(_send_time_input),
    WithJsonSchema(
        {
            "anyOf": [
                {"enum": ["best", "immediate"]},
                {
                    "type": "object",
                    "properties": {
                        "mode": {"enum": ["best", "immediate"]},
                        "max_delay": DURATION_SCHEMA,
                        "explore": {"type": ["string", "number"]},
                        "compare": {"type": ["string", "number"]},
                    },
                    "required": ["mode"],
                    "additionalProperties": False,
                },
            ]
        }
    ),
]
