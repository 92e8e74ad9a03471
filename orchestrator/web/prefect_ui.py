"""Links from the dashboard's campaign page to the campaign in the Prefect UI.

Each campaign's tick is the deployment `campaign-tick/tick-<campaign>` (`campaign
deploy`). The page links to that deployment and to its latest flow runs; their ids
come from the Prefect API (`PREFECT_API_URL`), the addresses from the UI's
(`PREFECT_UI_URL`, by default the API's address without its `/api`).

The Prefect API is another service's answer: it is read with a short timeout and a
size bound, every id must be a UUID, and what it says is cached per campaign for a
short while (a failure too), so a slow or unreachable Prefect server costs a page at
most one timeout per campaign per `TTL` and never fails the page.

`PrefectDirectory.switch_schedule` pauses or resumes that deployment (Prefect's
`pause_deployment` / `resume_deployment`: the deployment's `paused`, the toggle the
Prefect UI shows; pausing also deletes its runs already scheduled). It is the
`control.ScheduleSwitch` of `campaign pause|resume|stop` and of the dashboard's buttons,
and takes at most about `SWITCH_SECONDS`.
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
SWITCH_SECONDS = 4.0  # the budget of both requests that pause or resume a deployment
PAUSED, RESUMED, NOT_DEPLOYED, UNREACHABLE = "paused", "resumed", "not deployed", "unreachable"


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
    paused: bool | None = None  # whether that deployment is paused in Prefect
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
        self._headers = _headers(config)
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

    def switch_schedule(self, campaign_id: str, running: bool) -> str:
        """Pause (`running` False) or resume the campaign's deployment; what became of it:
        `paused`, `resumed`, `not deployed`, or `unreachable: why`. Never raises for what
        the server does or does not answer; takes at most about SWITCH_SECONDS."""
        try:
            return self._switch(campaign_id, running)
        finally:
            with self._lock:  # the page shows the deployment as it is now
                self._cache.pop(campaign_id, None)

    def _switch(self, campaign_id: str, running: bool) -> str:
        if self.api is None:
            return f"{UNREACHABLE}: PREFECT_API_URL is not set"
        name = f"tick-{campaign_id}"
        deadline = time.monotonic() + SWITCH_SECONDS
        try:
            with httpx.Client(
                base_url=self.api,
                timeout=SWITCH_SECONDS,
                headers=self._headers,
                transport=self._transport,
            ) as client:
                path = f"/deployments/name/{FLOW_NAME}/{quote(name, safe='')}"
                answer = _read(client, "GET", path, deadline=deadline)
                if answer is None:
                    return NOT_DEPLOYED
                deployment = _uuid(answer, "id")
                verb = "resume_deployment" if running else "pause_deployment"
                path = f"/deployments/{deployment}/{verb}"
                with client.stream("POST", path, timeout=_left(deadline)) as done:
                    if done.status_code == 404:  # deleted in between
                        return NOT_DEPLOYED
                    if not 200 <= done.status_code < 300:
                        raise Unreadable(f"POST {path} answered {done.status_code}")
        except (httpx.HTTPError, Unreadable) as exc:
            late = isinstance(exc, httpx.TimeoutException)
            why = f"no answer within {SWITCH_SECONDS:g} s" if late else _reason(exc)
            return f"{UNREACHABLE}: {self.api}: {why}"
        return RESUMED if running else PAUSED

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
            paused=paused if isinstance(paused := answer.get("paused"), bool) else None,
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


def _headers(config: Config) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if config.prefect_api_key:
        headers["Authorization"] = f"Bearer {config.prefect_api_key}"
    elif config.prefect_api_auth_string:
        token = base64.b64encode(config.prefect_api_auth_string.encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return headers


def _read(
    client: httpx.Client,
    method: str,
    path: str,
    body: object = None,
    *,
    deadline: float | None = None,
) -> Any:
    """The answer's JSON; None for a 404. At most MAX_ANSWER bytes are read, and with a
    `deadline` (time.monotonic()) none after it."""
    timeout = _left(deadline) if deadline is not None else httpx.USE_CLIENT_DEFAULT
    with client.stream(method, path, json=body, timeout=timeout) as answer:
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
            if deadline is not None and time.monotonic() > deadline:
                raise httpx.ReadTimeout(f"{method} {path} answered too slowly")
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


def _left(deadline: float) -> float:
    """Seconds to the deadline, for one request's timeout; a timeout when it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpx.TimeoutException("the deadline has passed")
    return left


def _reason(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {TIMEOUT:.0f} s"
    if isinstance(exc, httpx.HTTPError):
        return type(exc).__name__
    return str(exc)
