"""The campaign author's pages: campaign list with the seed's metrics, and each campaign's flowchart."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from orchestrator.app import control, insights
from orchestrator.app.broadcasts import broadcast_status
from orchestrator.app.service import drawing_counts
from orchestrator.delivery import Outcome
from orchestrator.errors import UnreadableFileError
from orchestrator.language import loader
from orchestrator.render import to_svg
from orchestrator.web import charts
from orchestrator.web.common import (
    HERE,
    SESSION_COOKIE,
    SESSION_HOURS,
    context,
    end_sessions,
    now,
    passwords,
    same_origin,
    same_secret,
    session_cookie,
    session_valid,
    templates,
)
from orchestrator.web.prefect_ui import PrefectDirectory
from orchestrator.web.throttle import Throttle

THROTTLE_KEY = "campaign_login_throttle"
PREFECT_KEY = "campaign_prefect_directory"

router = APIRouter(include_in_schema=False)


def _logged_in(request: Request) -> bool:
    return session_valid(context(request), request.cookies.get(SESSION_COOKIE))


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path
    return RedirectResponse(f"/login?next={target}", status_code=303)


def login_required(request: Request) -> Response | None:
    """The login page for a visitor who has not logged in; None for an author."""
    return None if _logged_in(request) else _login_redirect(request)


def _refused_origin() -> HTMLResponse:
    html = templates.get_template("message.html").render(
        heading="Refused", text="This form was sent from another site."
    )
    return HTMLResponse(html, status_code=403)


def _safe_next(value: str | None) -> str:
    """Only a path on this site: never `//host` or `https://…` (no open redirect after login).
    Browsers drop tabs and newlines inside URLs, so `/`, a tab and `/evil.example` would
    lead to another host: anything but printable ASCII without spaces is refused too."""
    if (
        not value
        or len(value) > 512
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or not (value.isascii() and value.isprintable())
        or " " in value
    ):
        return "/"
    return value


@router.get("/login")
def login_page(request: Request, next: str | None = None, failed: int = 0) -> HTMLResponse:
    configured = bool(passwords(context(request)))
    html = templates.get_template("login.html").render(
        configured=configured, next=_safe_next(next), failed=bool(failed)
    )
    return HTMLResponse(html, status_code=200 if configured else 503)


@router.post("/login")
async def login(request: Request) -> Response:
    """The throttle is consulted after the form is read, and a failure counted before
    anything else is awaited: concurrent attempts cannot all pass one check."""
    ctx = context(request)
    if not same_origin(request):
        return _refused_origin()
    form = await request.form()
    client = request.client.host if request.client else "-"
    gate: Throttle = getattr(request.app.state, THROTTLE_KEY)
    wait = gate.wait(client, time.monotonic())
    if wait is not None:
        return HTMLResponse(
            templates.get_template("message.html").render(
                heading="Too many attempts",
                text=f"Too many failed log-ins. Try again in {wait} seconds.",
            ),
            status_code=429,
            headers={"Retry-After": str(wait)},
        )
    given = form.get("password", "")
    target = _safe_next(str(form.get("next", "/")))
    if not isinstance(given, str) or not any(same_secret(given, p) for p in passwords(ctx)):
        gate.failed(client, time.monotonic())
        return RedirectResponse(f"/login?failed=1&next={quote(target)}", status_code=303)
    gate.succeeded(client)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        await run_in_threadpool(session_cookie, ctx),  # reads the sessions' epoch
        max_age=SESSION_HOURS * 3600,
        httponly=True,
        samesite="lax",
        secure=ctx.config.public_url.startswith("https://"),
    )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    """Ends every dashboard session (the cookie alone would stay valid until it expires)."""
    if not same_origin(request):
        return _refused_origin()
    if _logged_in(request):
        end_sessions(context(request))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/", response_model=None)
def index(request: Request) -> Response:
    if not _logged_in(request):
        return _login_redirect(request)
    ctx = context(request)
    moment = now()
    figures = insights.metrics(ctx, now=moment)
    days = sorted({d for d, _ in figures.opt_ins} | {d for d, _ in figures.opt_outs})
    ins, outs = dict(figures.opt_ins), dict(figures.opt_outs)
    sent_days = [d for d, _, _ in figures.daily]
    rendered = {
        "optins": charts.lines(
            "Opt-ins and opt-outs per day",
            days,
            {"opt-ins": [ins.get(d, 0) for d in days], "opt-outs": [outs.get(d, 0) for d in days]},
            empty="nobody subscribed or unsubscribed in the last 30 days",
        ),
        "conversion": charts.lines(
            "Conversion rate of sends, by day sent",
            sent_days,
            {"converted / sent": [c / n if n else 0.0 for _, n, c in figures.daily]},
            percent=True,
            empty="nothing sent in the last 30 days",
        ),
        "per_week": charts.bars(
            "Subscribers by notifications received in the last 7 days",
            figures.per_week,
            empty="no active subscribers",
        ),
        "sends": charts.bars(
            "Notifications sent per day",
            [(d.strftime("%d %b"), float(n)) for d, n, _ in figures.daily],
            empty="nothing sent in the last 30 days",
        ),
    }
    html = templates.get_template("index.html").render(
        campaigns=insights.campaigns(ctx),
        charts=rendered,
        quiet=figures.quiet_segments,
        opt_sources=figures.by_source,
        graphs=ctx.config.graphs,
    )
    return HTMLResponse(html)


def _campaign(request: Request, campaign_id: str) -> Any:
    ctx = context(request)
    for path in loader.campaign_files([ctx.config.graphs]):
        if path.stem != campaign_id:
            continue
        try:
            loaded = loader.load_unchanged(path)
        except UnreadableFileError:  # listed with its reason on the index page
            return None
        if loaded.ok and loaded.campaign is not None:
            return loaded.campaign
    return None


@router.get("/campaigns/{campaign_id}", response_model=None)
def campaign_page(request: Request, campaign_id: str) -> Response:
    if not _logged_in(request):
        return _login_redirect(request)
    ctx = context(request)
    campaign = _campaign(request, campaign_id)
    if campaign is None:
        html = templates.get_template("message.html").render(
            heading="No such campaign",
            text=f"There is no valid campaign file {campaign_id}.yaml in {ctx.config.graphs}.",
        )
        return HTMLResponse(html, status_code=404)
    detail = insights.campaign_detail(ctx, campaign, now=now())
    phases = detail.figures["journeys"]
    sends = detail.figures["sends"]
    sent = sum(n for o, n in sends.items() if o != Outcome.SKIPPED)
    converted = sum(n["converted"] for n in detail.nodes)
    totals = {
        "journeys": sum(phases.values()),
        "in_flight": sum(n for p, n in phases.items() if p != "ended"),
        "sent": sent,
        Outcome.DELIVERED: sends.get(Outcome.DELIVERED, 0),
        "converted": converted,
        "rate": converted / sent if sent else None,
    }
    days = [d for d, _, _ in detail.daily]
    directory: PrefectDirectory = getattr(request.app.state, PREFECT_KEY)
    html = templates.get_template("campaign.html").render(
        c=campaign,
        control=control.state(ctx, campaign.campaign),
        history=control.history(ctx, campaign.campaign),
        broadcast=broadcast_status(ctx, campaign.campaign, campaign, now=now()),
        prefect=directory.links(campaign.campaign),
        schedule=_schedule_note(request, directory.api is not None),
        totals=totals,
        svg=to_svg(campaign, counts=drawing_counts(ctx, campaign)),
        nodes=detail.nodes,
        tests=detail.tests,
        experiment_charts={
            e.split: charts.intervals(
                f"Conversion by arm, split {e.split}",
                [(a.name, a.result.rate, a.result.low, a.result.high) for a in e.arms],
            )
            for e in detail.tests
        },
        holdout=detail.holdout,
        send_time=detail.send_time,
        horizon=_duration(insights.horizon(campaign)),
        exits=sorted(detail.figures["exits"].items(), key=lambda kv: -kv[1]),
        daily_chart=charts.bars(
            "Sends per day",
            [(d.strftime("%d %b"), float(n)) for d, n, _ in detail.daily],
            empty="nothing sent in the last 30 days",
        ),
        rate_chart=charts.lines(
            "Conversion rate by day sent",
            days,
            {"converted / sent": [c / n if n else 0.0 for _, n, c in detail.daily]},
            percent=True,
            empty="nothing sent in the last 30 days",
        ),
    )
    return HTMLResponse(html)


SCHEDULE_NOTES = {
    "paused": "Its Prefect deployment is paused: no tick runs are scheduled.",
    "resumed": "Its Prefect deployment is resumed: ticks run on its schedule.",
    "not-deployed": "Prefect has no deployment of it (`campaign deploy` registers one, "
    "paused while the campaign is held).",
    "unreachable": "Its Prefect deployment is unchanged: the Prefect API did not answer. "
    "`campaign deploy` sets it from the campaign's state; a held campaign's ticks send "
    "nothing meanwhile.",
}


def _schedule_note(request: Request, configured: bool) -> str | None:
    """What the last pause, resume or stop did to the deployment (`?schedule=`, set by the
    form's answer): only the fixed sentences above are shown, never the address's text."""
    word = request.query_params.get("schedule", "")
    if word == "unreachable" and not configured:
        return "Its Prefect deployment is unchanged: PREFECT_API_URL is not set."
    return SCHEDULE_NOTES.get(word)


def _duration(span: Any) -> str:
    hours = int(span.total_seconds() // 3600)
    return f"{hours // 24} days" if hours % 24 == 0 else f"{hours} hours"


@router.post("/campaigns/{campaign_id}/control", response_model=None)
async def campaign_control(request: Request, campaign_id: str) -> Response:
    """Pause, resume or stop the campaign (a form on its page); the author is who acts."""
    if not same_origin(request):
        return _refused_origin()
    if not _logged_in(request):
        return _login_redirect(request)
    form = await request.form()
    action, reason = form.get("action"), form.get("reason") or ""
    if not isinstance(action, str) or not isinstance(reason, str):
        return HTMLResponse("expected an action and a reason", status_code=422)
    ctx = context(request)
    directory: PrefectDirectory = getattr(request.app.state, PREFECT_KEY)
    try:
        done, _ = await run_in_threadpool(
            lambda: control.act(
                ctx,
                campaign_id,
                action,
                by="dashboard",
                reason=reason,
                now=now(),
                schedule=directory.switch_schedule,
            )
        )
    except control.ControlError as exc:
        html = templates.get_template("message.html").render(heading="Not done", text=str(exc))
        return HTMLResponse(html, status_code=409)
    # the page says what became of the Prefect deployment: the outcome's word, never its text
    outcome = (done.schedule or "").split(":", 1)[0].replace(" ", "-")
    return RedirectResponse(
        f"/campaigns/{quote(campaign_id)}?schedule={outcome}#control", status_code=303
    )


@router.get("/campaigns/{campaign_id}/flowchart.svg", response_model=None)
def flowchart(request: Request, campaign_id: str) -> Response:
    if not _logged_in(request):
        return _login_redirect(request)
    campaign = _campaign(request, campaign_id)
    if campaign is None:
        return Response("no such campaign", status_code=404, media_type="text/plain")
    svg = to_svg(campaign, counts=drawing_counts(context(request), campaign))
    return Response(svg, media_type="image/svg+xml")


@router.get("/try.js")
def try_js() -> Response:
    script = (HERE / "static" / "try.js").read_text(encoding="utf-8")
    return Response(script, media_type="text/javascript", headers={"Cache-Control": "no-cache"})


@router.get("/try")
def try_page(request: Request) -> Response:
    if not _logged_in(request):
        return _login_redirect(request)
    html = templates.get_template("try.html").render(public_url=context(request).config.public_url)
    return HTMLResponse(html)
