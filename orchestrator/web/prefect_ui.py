"""Links from the dashboard's campaign page to the campaign in the Prefect UI.

Each campaign's tick is the deployment `campaign-tick/tick-<campaign>` (`campaign
deploy`). The page links to that deployment and to its latest flow runs; their ids
come from the Prefect API (`PREFECT_API_URL`), the addresses from the UI's
(`PREFECT_UI_URL`, by default the API's address without its `/api`).

The Prefect API is another service's answer: it is read with a short timeout and a
size bound, every id must be a UUID, and what it says is cached per campaign for a
short while (a failure too), so a slow or unreachable Prefect server costs a page at
most one timeout per campaign per `TTL` and never fails the page.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from orchestrator.config import Config
from orchestrator.errors import CampaignError

FLOW_NAME = "campaign-tick"
TTL = 30.0  # seconds an answer (or a failure) is reused
TIMEOUT = 2.0  # seconds for each request to the Prefect API
MAX_ANSWER = 256 * 1024  # bytes read from one answer
LATEST_RUNS = 5


@dataclass(frozen=True)
class RunLink:
    name: str
    state: str  # the state's name: Completed, Failed, Running, …
    state_type: str  # COMPLETED, FAILED, … (for the pill's colour)
    started: datetime | None
    url: str


@dataclass(frozen=True)
class PrefectLinks:
    """What the campaign page shows of the campaign in Prefect."""

    deployments: str  # the UI's deployments page: always a place to go
    deployment: str | None = None  # the campaign's deployment page
    runs: list[RunLink] = field(default_factory=list)
    problem: str | None = None  # why the deployment or its runs are not shown


class Unreadable(CampaignError):
    """The Prefect API's answer was not what it documents."""


def ui_address(config: Config) -> str | None:
    """The Prefect UI's address, or None when neither it nor the API's is configured."""
    if config.prefect_ui_url:
        return config.prefect_ui_url
    api = config.prefect_api_url
    if api is None:
        return None
    return api[: -len("/api")] if api.endswith("/api") else api


class PrefectDirectory:
    """Finds a campaign's deployment and latest flow runs, cached per campaign."""

    def __init__(self, config: Config, *, transport: httpx.BaseTransport | None = None) -> None:
        self.ui = ui_address(config)
        self.api = config.prefect_api_url
        headers = {"Accept": "application/json"}
        if config.prefect_api_key:
            headers["Authorization"] = f"Bearer {config.prefect_api_key}"
        elif config.prefect_api_auth_string:
            token = base64.b64encode(config.prefect_api_auth_string.encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        self._headers = headers
        self._transport = transport
        self._cache: dict[str, tuple[float, PrefectLinks]] = {}
        self._lock = threading.Lock()

    def links(self, campaign_id: str) -> PrefectLinks | None:
        """The campaign's links; None when no Prefect server is configured."""
        if self.ui is None:
            return None
        moment = time.monotonic()
        with self._lock:
            cached = self._cache.get(campaign_id)
        if cached is not None and cached[0] > moment:
            return cached[1]
        found = self._look_up(campaign_id)
        with self._lock:
            if len(self._cache) > 1000:  # campaign ids come from files, but bound it anyway
                self._cache.clear()
            self._cache[campaign_id] = (moment + TTL, found)
        return found

    def _look_up(self, campaign_id: str) -> PrefectLinks:
        assert self.ui is not None
        base = PrefectLinks(deployments=f"{self.ui}/deployments")
        if self.api is None:
            return PrefectLinks(
                deployments=base.deployments,
                problem="set PREFECT_API_URL to link the campaign's deployment and runs",
            )
        name = f"tick-{campaign_id}"
        try:
            with httpx.Client(
                base_url=self.api,
                timeout=TIMEOUT,
                headers=self._headers,
                transport=self._transport,
            ) as client:
                answer = _read(
                    client, "GET", f"/deployments/name/{FLOW_NAME}/{quote(name, safe='')}"
                )
                if answer is None:
                    return PrefectLinks(
                        deployments=base.deployments,
                        problem=f"Prefect has no deployment {FLOW_NAME}/{name} "
                        "(run `campaign deploy` to create it)",
                    )
                deployment = _uuid(answer, "id")
                runs = _read(
                    client,
                    "POST",
                    "/flow_runs/filter",
                    {
                        "deployments": {"id": {"any_": [deployment]}},
                        "flow_runs": {"start_time": {"is_null_": False}},
                        "sort": "START_TIME_DESC",
                        "limit": LATEST_RUNS,
                    },
                )
        except (httpx.HTTPError, Unreadable) as exc:
            return PrefectLinks(
                deployments=base.deployments,
                problem=f"the Prefect API at {self.api} did not answer usefully ({_reason(exc)})",
            )
        if not isinstance(runs, list):
            return PrefectLinks(
                deployments=base.deployments,
                deployment=f"{self.ui}/deployments/deployment/{deployment}",
                problem="the Prefect API's list of flow runs is not a list",
            )
        return PrefectLinks(
            deployments=base.deployments,
            deployment=f"{self.ui}/deployments/deployment/{deployment}",
            runs=[self._run(r) for r in runs[:LATEST_RUNS] if _is_run(r)],
        )

    def _run(self, run: dict[str, Any]) -> RunLink:
        state = run.get("state") if isinstance(run.get("state"), dict) else {}
        assert isinstance(state, dict)
        return RunLink(
            name=_short(run.get("name")) or "(unnamed)",
            state=_short(state.get("name")) or _short(run.get("state_type")) or "unknown",
            state_type=_short(run.get("state_type")) or "UNKNOWN",
            started=_moment(run.get("start_time")),
            url=f"{self.ui}/runs/flow-run/{_uuid(run, 'id')}",
        )


def _read(client: httpx.Client, method: str, path: str, body: object = None) -> Any:
    """The answer's JSON; None for a 404. At most MAX_ANSWER bytes are read."""
    with client.stream(method, path, json=body) as answer:
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise Unreadable(f"{method} {path} answered {answer.status_code}")
        chunks: list[bytes] = []
        size = 0
        for chunk in answer.iter_bytes():
            size += len(chunk)
            if size > MAX_ANSWER:
                raise Unreadable(f"{method} {path} answered more than {MAX_ANSWER} bytes")
            chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        raise Unreadable(f"{method} {path} answered something that is not JSON") from None


def _uuid(record: object, key: str) -> str:
    value = record.get(key) if isinstance(record, dict) else None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise Unreadable(f"{key} {str(value)[:40]!r} is not a UUID") from None


def _is_run(record: object) -> bool:
    try:
        _uuid(record, "id")
    except Unreadable:
        return False
    return True


def _short(value: object) -> str | None:
    return value[:120] if isinstance(value, str) and value else None


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _reason(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {TIMEOUT:.0f} s"
    if isinstance(exc, httpx.HTTPError):
        return type(exc).__name__
    return str(exc)
