"""Hostile input (docs/reliability.md): YAML bombs and object tags, template escapes,
SQL fragments in every string an outsider controls, redirects toward internal
addresses, and secrets in error output."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import func, select

from orchestrator.app.ticking import tick
from orchestrator.delivery import SendRequest, Target
from orchestrator.errors import TemplateRenderError, UnreadableFileError
from orchestrator.language import loader, templates
from orchestrator.push.client import PushClient
from orchestrator.push.vapid import TokenCache, VapidKey
from orchestrator.store.models import Event, Subscriber
from orchestrator.testing.receiver import Receiver
from tests.conftest import assert_no_secret, campaign_world, secret_forms
from tests.helpers import API_KEY, T0, row_count, subscription
from tests.web.conftest import World

EVIL = "'; DROP TABLE subscriber; --"
HEADER = """\
campaign: evil
title: Evil
goal: signup
segments:
  everyone: {match: {attr: plan, exists: true}}
subcampaigns:
  all:
    segment: everyone
    start: a
    nodes:
"""

# ------------------------------------------------------------------ YAML


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_python_object_tag_is_refused_and_never_constructed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _write(
        tmp_path,
        HEADER + f'      a: !!python/object/apply:os.system ["touch {marker}"]\n',
    )
    loaded = loader.load(path)
    assert not loaded.ok
    assert any("tag" in d.message for d in loaded.errors), [d.format() for d in loaded.errors]
    assert not marker.exists()


def test_a_billion_laughs_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["campaign: evil", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 8)}]")
    loaded = loader.load(_write(tmp_path, "\n".join(lines) + "\n"))
    assert not loaded.ok
    text = " ".join(d.message for d in loaded.errors)
    assert "alias" in text or "nodes" in text, text


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    deep = "x: " + "[" * 500 + "]" * 500 + "\n"
    loaded = loader.load(_write(tmp_path, "campaign: evil\n" + deep))
    assert not loaded.ok
    assert any("deep" in d.message or "depth" in d.message for d in loaded.errors), [
        d.format() for d in loaded.errors
    ]


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = _write(tmp_path, "campaign: evil\n" + "# padding\n" * 200_000)
    with pytest.raises(UnreadableFileError, match="larger than 1,000,000 bytes"):
        loader.load(path)


# ------------------------------------------------------------------ templates

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].system('id') }}",
    "{{ self._TemplateReference__context }}",
    "{{ subscriber.__class__ }}",
    "{{ subscriber.attributes.__class__.__base__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ subscriber|attr('__class__') }}",
    "{{ subscriber['__class__'] }}",
    "{% set x = namespace() %}{{ x.__init__ }}",
    "{{ config }}",
    "{{ request }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_template_escapes_are_refused_when_the_file_is_checked(tmp_path: Path, source: str) -> None:
    title = json.dumps(source)
    loaded = loader.load(
        _write(tmp_path, HEADER + f"      a: {{notification: {{title: {title}}}}}\n")
    )
    assert not loaded.ok, source
    assert all(d.line == 11 for d in loaded.errors), [d.format() for d in loaded.errors]


@pytest.mark.parametrize("source", ESCAPES[:10])
def test_the_sandbox_refuses_the_same_escapes_when_rendering(source: str) -> None:
    """A second wall: even a template that got past the checks renders no internals."""
    context = {"subscriber": {"id": "s1", "attributes": {}, "tags": []}}
    try:
        out = templates.render(source, context)
    except TemplateRenderError:
        return
    assert "class" not in out and "function" not in out and "uid=" not in out, out


def test_subscriber_data_is_shown_as_text_never_run_as_a_template() -> None:
    source = "Hi {{ subscriber.attributes.name }}"
    for name in ("{{ 7*7 }}", "{% for x in range(9) %}x{% endfor %}", EVIL):
        context = {"subscriber": {"attributes": {"name": name}}}
        assert templates.render(source, context) == f"Hi {name}"


def test_building_huge_text_is_refused() -> None:
    for source in ("{{ 'x' * 10**9 }}", "{{ '%0999999999d' % 1 }}", "{{ range(10**9)|list }}"):
        with pytest.raises(TemplateRenderError):
            templates.render(source, {})


# ------------------------------------------------------------------ SQL in every string


def test_sql_fragments_in_api_bodies_are_stored_as_data(world: World) -> None:
    body = {
        "subscription": subscription("evil"),
        "id": "evil-1",
        "attributes": {"name": EVIL, EVIL: 'x" OR 1=1 --', "plan": "pro"},
        "tags": [EVIL, "topic:'; DELETE FROM event; --"],
    }
    headers = {"Authorization": f"Bearer {API_KEY}"}
    answer = world.client.post("/api/subscriptions", json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    events = [
        {"subscriber": "evil-1", "name": "viewed", "properties": {"q": EVIL, EVIL: 1}},
        {"subscriber": "evil-1", "name": "signup", "properties": {"q": "1; SELECT pg_sleep(5)"}},
    ]
    stored = world.client.post("/api/events", json=events, headers=headers)
    assert stored.status_code == 202, stored.text
    # an id made of SQL is refused by the id rule, not run
    bad = world.client.post("/api/subscriptions", json={**body, "id": EVIL}, headers=headers)
    assert bad.status_code == 422 and "subscriber id" in bad.json()["detail"]
    with world.ctx.session() as s:
        sub = s.get(Subscriber, "evil-1")
        assert sub is not None
        assert sub.attributes[EVIL] == 'x" OR 1=1 --' and EVIL in sub.tags
        props = [e.properties for e in s.execute(select(Event)).scalars()]
    assert {"q": EVIL, EVIL: 1} in props
    assert row_count(world.ctx, Subscriber) == 1  # the tables are all still there
    # segments and the tick read the same strings back without trouble
    tick(world.ctx, now=T0)
    with world.ctx.session() as s:
        assert s.execute(select(func.count()).select_from(Event)).scalar_one() >= 3


# ------------------------------------------------------------------ redirects (SSRF)


@pytest.fixture
def redirecting() -> Iterator[tuple[str, Callable[[], int]]]:
    """A push service that answers every push 307 toward another local port, and that
    other port, which counts whoever reaches it."""
    reached = 0

    async def internal(request: web.Request) -> web.Response:
        nonlocal reached
        reached += 1
        return web.Response(status=201)

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    origins: list[str] = []

    async def start() -> None:
        inner = web.Application()
        inner.router.add_route("*", "/{tail:.*}", internal)
        inner_runner = web.AppRunner(inner)
        await inner_runner.setup()
        inner_site = web.TCPSite(inner_runner, "127.0.0.1", 0)
        await inner_site.start()
        inner_port = inner_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

        async def push(request: web.Request) -> web.Response:
            await request.read()
            target = f"http://127.0.0.1:{inner_port}/latest/meta-data/"
            return web.Response(status=307, headers={"Location": target})

        outer = web.Application()
        outer.router.add_post("/push/{id}", push)
        outer_runner = web.AppRunner(outer)
        await outer_runner.setup()
        outer_site = web.TCPSite(outer_runner, "127.0.0.1", 0)
        await outer_site.start()
        port = outer_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        origins.append(f"http://127.0.0.1:{port}")
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield origins[0], lambda: reached
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


@pytest.mark.parametrize("transport", ["http1", "aiohttp"])
def test_a_redirect_from_a_push_service_is_never_followed(
    redirecting: tuple[str, Callable[[], int]], transport: str
) -> None:
    origin, reached = redirecting
    receiver = Receiver()  # only for a valid subscription's keys
    with receiver:
        sub = receiver.subscribe()
    client = PushClient(
        tokens=TokenCache(key=VapidKey.generate(), subject="mailto:ops@example.com"),
        allowed_origins=(origin,),
    )
    client.settings.transport = transport
    request = SendRequest(
        send_id=1,
        journey_id=1,
        step=1,
        campaign="c",
        node="a",
        subscriber_id="s1",
        payload=b'{"title": "hi"}',
        targets=(Target(f"{origin}/push/x", sub["keys"]["p256dh"], sub["keys"]["auth"]),),
        ttl=timedelta(hours=1),
        urgency="normal",
        topic="t1",
    )
    try:
        (outcome,) = client.deliver([request])
    finally:
        client.close()
    time.sleep(0.2)
    assert reached() == 0  # the internal address was never contacted
    assert outcome.outcome != "delivered" and outcome.status_code == 307, outcome


# ------------------------------------------------------------------ secrets in errors


@pytest.mark.slow
def test_failing_commands_print_no_secret(tmp_path: Path) -> None:
    """A push service refusing our VAPID key (403), an unknown subscriber, a campaign file
    that no longer validates: the messages say what is wrong and show no secret."""
    with Receiver() as receiver:
        env = campaign_world(tmp_path, receiver, db=f"sqlite:///{tmp_path / 'c.db'}", people=5)
        receiver.fault(status=403)
        campaign = str(Path(sys.executable).parent / "campaign")
        runs = [
            subprocess.run(
                [campaign, "tick", "--now", T0.isoformat()], env=env, capture_output=True, text=True
            ),
            subprocess.run(
                [campaign, "events", "add", "--subscriber", "nobody", "--event", "signup"],
                env=env,
                capture_output=True,
                text=True,
            ),
        ]
        graphs = Path(env["CAMPAIGN_GRAPHS"])
        (graphs / "launch.yaml").write_text("campaign: launch\nsubcampaigns: [\n")
        runs.append(
            subprocess.run(
                [campaign, "tick", "--now", T0.isoformat()], env=env, capture_output=True, text=True
            )
        )
    assert "403" in runs[0].stdout + runs[0].stderr  # said loudly
    assert runs[1].returncode == 1 and "nobody" in runs[1].stderr
    assert runs[2].returncode == 1 and "refused" in runs[2].stderr
    forms = secret_forms(env)
    for run in runs:
        assert_no_secret(" ".join(run.args), run.stdout + run.stderr, forms)
