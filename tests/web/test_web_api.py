"""The HTTP service against the real app and a real database (SQLite file and PostgreSQL)."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from orchestrator.app import tokens
from orchestrator.app.service import open_context
from orchestrator.app.ticking import tick
from orchestrator.config import Config
from orchestrator.push.vapid import VapidKey
from orchestrator.store.models import Event, Journey, PushSubscription, Send, Subscriber
from orchestrator.web import create_app
from tests.conftest import p256dh_key
from tests.helpers import API_KEY, PASSWORD, WEB_CAMPAIGN, row_count, subscription
from tests.web.conftest import World


def _subscribe(w: World, *, backend: bool = True, **extra: object) -> dict[str, object]:
    """Subscribe as the site's backend (the API key: every field trusted) or as a browser."""
    body = {"subscription": subscription(str(extra.pop("name", "a"))), **extra}
    answer = w.client.post("/api/subscriptions", json=body, headers=_auth() if backend else {})
    assert answer.status_code in (200, 201), answer.text
    return dict(answer.json())


# ------------------------------------------------------------------ subscriptions


def test_subscribing_stores_the_subscriber_once_and_again_is_a_no_op(world: World) -> None:
    body = {
        "subscription": subscription(),
        "timezone": "Europe/Berlin",
        "attributes": {"plan": "pro", "first_name": "Ana"},
        "tags": ["topic:space"],
    }
    first = world.client.post("/api/subscriptions", json=body, headers=_auth())
    assert first.status_code == 201, first.text
    again = world.client.post("/api/subscriptions", json={"subscription": body["subscription"]})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert first.json()["profile_url"].startswith("https://push.example.com/me/")
    assert row_count(world.ctx, Subscriber) == 1 and row_count(world.ctx, PushSubscription) == 1
    with world.ctx.session() as s:
        sub = s.get(Subscriber, first.json()["id"])
        assert sub is not None
        # left out on the second call: kept, not wiped
        assert (sub.timezone, sub.attributes, sub.tags) == (
            "Europe/Berlin",
            {"plan": "pro", "first_name": "Ana"},
            ["topic:space"],
        )
        opt_ins = s.execute(select(Event).where(Event.name == "subscribed")).scalars().all()
    assert len(opt_ins) == 1


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"endpoint": "http://fcm.googleapis.com/fcm/send/x"}, "not an allowed push service"),
        ({"endpoint": "https://10.0.0.1/push/x"}, "not an allowed push service"),
        ({"keys": {"p256dh": "AAAA", "auth": "MDEyMzQ1Njc4OWFiY2RlZg"}}, "P-256"),
        ({"keys": {"p256dh": p256dh_key(), "auth": "MDEyMzQ1Njc4OWFiY2Rl"}}, "16 bytes"),
        ({"endpoint": None}, "endpoint: missing"),
    ],
)
def test_a_bad_subscription_is_refused_with_the_reason_and_nothing_stored(
    world: World, change: dict[str, object], expected: str
) -> None:
    sub = {**subscription(), **change}
    answer = world.client.post("/api/subscriptions", json={"subscription": sub})
    assert answer.status_code == 422 and expected in answer.json()["detail"], answer.text
    assert row_count(world.ctx, Subscriber) == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"{not json", "not JSON"),
        (b"", "empty"),
        (b"[1, 2]", "expected a JSON object"),
        (json.dumps({"subscription": {}, "colour": "red"}).encode(), "unknown field(s): colour"),
        (
            json.dumps({"subscription": subscription(), "timezone": "Mars/Olympus"}).encode(),
            "timezone",
        ),
        (
            json.dumps({"subscription": subscription(), "id": "has space"}).encode(),
            "subscriber id",
        ),
    ],
)
def test_bad_bodies_get_a_422_that_says_what(world: World, raw: bytes, expected: str) -> None:
    answer = world.client.post(
        "/api/subscriptions", content=raw, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422 and expected in answer.json()["detail"], answer.text


def test_deleting_the_last_subscription_unsubscribes_and_ends_journeys(world: World) -> None:
    sid = _subscribe(world, attributes={"plan": "pro", "first_name": "Ana"})["id"]
    tick(world.ctx, now=datetime.now(UTC))
    assert len(world.delivery.requests) == 1
    browser = subscription("a")
    stranger = {"endpoint": browser["endpoint"], "keys": {"auth": "QUFBQUFBQUFBQUFBQUFBQQ"}}
    refused = world.client.request("DELETE", "/api/subscriptions", json=stranger)
    assert refused.status_code == 200 and refused.json() == {"removed": False}
    answer = world.client.request("DELETE", "/api/subscriptions", json=browser)
    assert answer.status_code == 200 and answer.json() == {"removed": True}
    again = world.client.request("DELETE", "/api/subscriptions", json=browser)
    assert again.json() == {"removed": False}
    tick(world.ctx, now=datetime.now(UTC) + timedelta(minutes=1))
    with world.ctx.session() as s:
        sub = s.get(Subscriber, sid)
        (journey,) = s.execute(select(Journey)).scalars()
    assert sub is not None and sub.status == "unsubscribed"
    assert journey.exit_reason == "unsubscribed"


# ------------------------------------------------------------------ events


def _auth(key: str = API_KEY) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_events_need_the_api_key(world: World) -> None:
    sid = _subscribe(world)["id"]
    event = {"subscriber": sid, "name": "purchase"}
    assert world.client.post("/api/events", json=event).status_code == 401
    assert world.client.post("/api/events", json=event, headers=_auth("wrong")).status_code == 401
    assert row_count(world.ctx, Event) == 1  # only the opt-in


def test_events_single_list_and_wrapped_are_stored(world: World) -> None:
    sid = _subscribe(world)["id"]
    one = world.client.post(
        "/api/events",
        json={"subscriber": sid, "name": "cart_abandoned", "properties": {"product": "Carafe"}},
        headers=_auth(),
    )
    assert one.status_code == 202 and one.json()["stored"] == 1
    many = world.client.post(
        "/api/events",
        json=[{"subscriber": sid, "name": "purchase", "at": "2026-11-20T10:00:00Z"}] * 3,
        headers=_auth(),
    )
    wrapped = world.client.post(
        "/api/events", json={"events": [{"subscriber": sid, "name": "x"}]}, headers=_auth()
    )
    assert many.json()["stored"] == 3 and wrapped.json()["stored"] == 1
    assert row_count(world.ctx, Event) == 1 + 1 + 3 + 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {
                "events": [
                    {"subscriber": "S", "name": "ok"},
                    {"subscriber": "S", "name": "bad name"},
                ]
            },
            "events[1].name",
        ),
        (
            [
                {"subscriber": "S", "name": "ok"},
                {"subscriber": "S", "name": "ok", "at": "yesterday"},
            ],
            "[1].at",
        ),
        ({"subscriber": "S", "name": "ok", "extra": 1}, "unknown field(s): extra"),
        ({"subscriber": "nobody", "name": "ok"}, "unknown subscriber: nobody"),
        ({"events": []}, "no events"),
        ([{"subscriber": "S", "name": "ok"}] * 1001, "at most 1,000"),
    ],
)
def test_a_bad_event_refuses_the_whole_request(world: World, body: object, expected: str) -> None:
    sid = str(_subscribe(world)["id"])
    raw = json.dumps(body).replace('"S"', json.dumps(sid))
    answer = world.client.post(
        "/api/events",
        content=raw,
        headers={**_auth(), "content-type": "application/json"},
    )
    assert answer.status_code == 422 and expected in answer.json()["detail"], answer.text
    assert row_count(world.ctx, Event) == 1  # the opt-in only: nothing of the request


# ------------------------------------------------------------------ clicks


def _sent_link(w: World) -> str:
    tick(w.ctx, now=datetime.now(UTC))
    (request,) = w.delivery.requests
    return str(json.loads(request.payload)["data"]["url"])


def test_a_click_is_recorded_against_its_send_converts_and_redirects(world: World) -> None:
    sid = _subscribe(world, attributes={"plan": "pro", "first_name": "Ana"})["id"]
    link = _sent_link(world)
    answer = world.client.get(urlsplit(link).path)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"https://example.com/pro?who={sid}"
    action = world.client.get(urlsplit(link).path + "?a=docs")
    assert action.headers["location"] == "https://example.com/docs"
    replayed = world.client.get(urlsplit(link).path)  # the same link again: one click stored
    assert replayed.headers["location"] == answer.headers["location"]
    with world.ctx.session() as s:
        clicks = s.execute(select(Event).where(Event.name == "click")).scalars().all()
        (send,) = s.execute(select(Send)).scalars()
    assert len(clicks) == 2 and {c.send_id for c in clicks} == {send.id}  # body, and the action
    tick(world.ctx, now=datetime.now(UTC) + timedelta(seconds=5))
    with world.ctx.session() as s:
        (journey,) = s.execute(select(Journey)).scalars()
        converted = s.get(Send, send.id)
    assert journey.node == "thanks" and converted is not None and converted.converted_at


def test_a_tampered_or_unknown_click_link_records_nothing(world: World) -> None:
    _subscribe(world, attributes={"plan": "pro", "first_name": "Ana"})
    token = urlsplit(_sent_link(world)).path.removeprefix("/c/")
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    other = tokens.sign(world.ctx.secret(), "click", 999_999)
    for bad in (forged, other, "x", tokens.sign("another secret", "click", 1)):
        answer = world.client.get(f"/c/{bad}?a=https://evil.example")
        assert answer.status_code == 404 and "location" not in answer.headers
    with world.ctx.session() as s:
        assert s.execute(select(Event).where(Event.name == "click")).first() is None


def test_an_action_parameter_cannot_redirect_elsewhere(world: World) -> None:
    _subscribe(world, attributes={"plan": "pro", "first_name": "Ana"})
    path = urlsplit(_sent_link(world)).path
    for action in ("https://evil.example", "//evil.example", "nope"):
        answer = world.client.get(path, params={"a": action})
        assert answer.headers["location"].startswith("https://example.com/pro")


# ------------------------------------------------------------------ the profile page


def _profile_path(answer: dict[str, object]) -> str:
    return urlsplit(str(answer["profile_url"])).path


def test_the_profile_page_shows_edits_pauses_exports_and_deletes(world: World) -> None:
    made = _subscribe(world, attributes={"plan": "pro", "first_name": "Ana"})
    path, sid = _profile_path(made), str(made["id"])
    page = world.client.get(path)
    assert page.status_code == 200 and "Ana" in page.text and "space" in page.text
    saved = world.client.post(
        path, data={"attr:first_name": "Anna", "topic": "space", "topics_shown": "1"}
    )
    assert saved.status_code == 303
    refused = world.client.post(path, data={"attr:plan": "enterprise"})
    assert refused.status_code == 200 and "not editable here: plan" in refused.text
    with world.ctx.session() as s:
        sub = s.get(Subscriber, sid)
        assert sub is not None and sub.attributes == {"plan": "pro", "first_name": "Anna"}
        assert sub.tags == ["topic:space"]
    assert world.client.post(path + "/pause").status_code == 303
    assert "Paused until" in world.client.get(path).text
    exported = world.client.get(path + "/export")
    data = exported.json()
    assert data["attributes"]["first_name"] == "Anna" and data["paused_until"]
    assert {e["name"] for e in data["events"]} == {"subscribed", "paused"}
    assert "attachment" in exported.headers["content-disposition"]
    assert world.client.post(path + "/delete", data={}).status_code == 200  # needs the box ticked
    assert row_count(world.ctx, PushSubscription) == 1
    gone = world.client.post(path + "/delete", data={"confirm": "yes"})
    assert gone.status_code == 200 and "deleted" in gone.text
    with world.ctx.session() as s:
        sub = s.get(Subscriber, sid)
        assert sub is not None and (sub.status, sub.attributes, sub.tags) == ("deleted", {}, [])
        left = s.execute(select(Event).where(Event.subscriber_id == sid)).scalars().all()
    # one event is left: the opt-out this deletion is, naming no more than the tombstone
    assert [(e.name, e.properties) for e in left] == [("unsubscribed", {"source": "profile"})]
    assert row_count(world.ctx, PushSubscription) == 0
    assert world.client.get(path).status_code == 404


def test_profile_links_that_are_forged_expired_or_for_someone_else_are_refused(
    world: World,
) -> None:
    made = _subscribe(world, attributes={"plan": "pro"})
    sid = str(made["id"])
    secret = world.ctx.secret()
    expired = tokens.sign_profile(secret, sid, expires=int(datetime.now(UTC).timestamp()) - 1)
    foreign = tokens.sign_profile("not our secret", sid, expires=2_000_000_000)
    token = _profile_path(made).removeprefix("/me/")
    swapped = tokens.sign_profile(secret, "someone-else", expires=2_000_000_000)
    for bad in (expired, foreign, token[:-3] + "AAA", swapped):
        assert world.client.get(f"/me/{bad}").status_code == 404
        assert world.client.post(f"/me/{bad}/delete", data={"confirm": "yes"}).status_code == 404
    assert row_count(world.ctx, PushSubscription) == 1


# ------------------------------------------------------------------ scripts and dashboard


def test_the_scripts_are_served_with_our_public_key(world: World) -> None:
    sw = world.client.get("/sw.js")
    assert sw.status_code == 200 and "showNotification" in sw.text
    assert sw.headers["content-type"].startswith("text/javascript")
    snippet = world.client.get("/subscribe.js").text
    key = VapidKey.load(world.ctx.config.vapid_private_key).public_key_b64()
    assert key in snippet and "__VAPID_PUBLIC_KEY__" not in snippet
    assert "requestPermission" in snippet


def test_the_dashboard_needs_a_login_and_shows_the_campaign(world: World) -> None:
    _subscribe(world, attributes={"plan": "pro", "first_name": "Ana"})
    tick(world.ctx, now=datetime.now(UTC))
    assert world.client.get("/").headers["location"].startswith("/login")
    assert world.client.get("/campaigns/launch").status_code == 303
    wrong = world.client.post("/login", data={"password": "nope", "next": "/"})
    assert "failed=1" in wrong.headers["location"]
    evil = world.client.post("/login", data={"password": PASSWORD, "next": "//evil.example/x"})
    assert evil.headers["location"] == "/"
    page = world.client.get("/")
    assert page.status_code == 200 and "Launch" in page.text and "<svg" in page.text
    detail = world.client.get("/campaigns/launch")
    assert detail.status_code == 200
    assert 'id="flowchart"' in detail.text and "hello" in detail.text
    assert world.client.get("/campaigns/nope").status_code == 404
    world.client.post("/logout")
    world.client.cookies.clear()
    assert world.client.get("/").status_code == 303


def test_a_visitor_subscribes_receives_through_a_push_service_clicks_converts_and_leaves(
    tmp_path: Path,
) -> None:
    """The whole visitor story on real parts: the HTTP API, the local push service (which
    checks VAPID and decrypts like a browser), the tick, the click link and the profile page."""
    from orchestrator.push.setup import WebPushDelivery
    from orchestrator.testing.receiver import Receiver

    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "launch.yaml").write_text(textwrap.dedent(WEB_CAMPAIGN), encoding="utf-8")
    key = VapidKey.generate()
    key.save(tmp_path / "vapid.pem")
    with Receiver() as receiver:
        config = Config(
            db=f"sqlite:///{tmp_path / 'c.db'}",
            graphs=graphs,
            vapid_private_key=str(tmp_path / "vapid.pem"),
            vapid_subject="mailto:ops@example.com",
            push_allowed_origins=(receiver.origin,),
            public_url="https://push.example.com",
            api_key=API_KEY,
        )
        delivery = WebPushDelivery(config)
        ctx = open_context(config, delivery=delivery)
        try:
            with TestClient(
                create_app(ctx), base_url="https://testserver", follow_redirects=False
            ) as client:
                browser = receiver.subscribe(application_server_key=key.public_key_b64())
                made = client.post(  # the browser: anonymous, its own first name only
                    "/api/subscriptions",
                    json={
                        "subscription": browser,
                        "timezone": "Europe/Lisbon",
                        "attributes": {"first_name": "Rui"},
                    },
                ).json()
                linked = client.post(  # the site's backend: the plan it knows of
                    "/api/subscriptions",
                    json={
                        "subscription": browser,
                        "id": made["id"],
                        "attributes": {"plan": "pro", "first_name": "Rui"},
                    },
                    headers=_auth(),
                )
                assert linked.status_code == 200 and linked.json()["id"] == made["id"]
                tick(ctx, now=datetime.now(UTC))
                (message,) = receiver.received(str(browser["endpoint"]))
                shown = json.loads(message.payload)
                assert shown["title"] == "Hi Rui" and message.vapid_sub == "mailto:ops@example.com"
                clicked = client.get(urlsplit(shown["data"]["url"]).path)
                assert clicked.headers["location"] == f"https://example.com/pro?who={made['id']}"
                tick(ctx, now=datetime.now(UTC) + timedelta(seconds=5))
                with ctx.session() as s:
                    (journey,) = s.execute(select(Journey)).scalars()
                assert journey.node == "thanks"  # converted by the click
                profile = _profile_path(made)
                assert "Rui" in client.get(profile).text
                client.post(profile + "/delete", data={"confirm": "yes"})
                tick(ctx, now=datetime.now(UTC) + timedelta(hours=2))
                with ctx.session() as s:
                    (journey,) = s.execute(select(Journey)).scalars()
                assert journey.exit_reason == "unsubscribed"
                assert len(receiver.received(str(browser["endpoint"]))) == 1  # nothing more sent
        finally:
            delivery.close()
            ctx.engine.dispose()
