"""Every door attacked: the hostile-input corpus (`tests/corpus/hostile/`) against the real
app, the real import, the real CLI and real databases (a SQLite file and PostgreSQL).

Each corpus case names the exact answer it must get. After each one the victim of the
attack is unchanged and a refused request stored nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from orchestrator.app import tokens, visitors
from orchestrator.app.service import Context, import_subscribers, open_context
from orchestrator.config import Config
from orchestrator.push.vapid import VapidKey
from orchestrator.store.models import Event, PushSubscription, Subscriber
from orchestrator.testing.fakes import RecordingDelivery
from orchestrator.web import create_app
from tests.conftest import p256dh_key
from tests.helpers import API_KEY, CORPUS, PASSWORD, WEB_CAMPAIGN, subscription

HOSTILE = CORPUS / "hostile"
TABLES = ("subscriber", "push_subscription", "event", "journey", "send")


def _cases(name: str) -> list[Any]:
    data = json.loads((HOSTILE / name).read_text(encoding="utf-8"))
    return [pytest.param(case, id=case["name"]) for case in data["cases"]]


class Door:
    """The app over a fresh database holding the victims the corpus attacks."""

    def __init__(self, tmp_path: Path, db_url: str) -> None:
        graphs = tmp_path / "graphs"
        graphs.mkdir()
        (graphs / "launch.yaml").write_text(textwrap.dedent(WEB_CAMPAIGN), encoding="utf-8")
        VapidKey.generate().save(tmp_path / "vapid.pem")
        self.config = Config(
            db=db_url,
            graphs=graphs,
            api_key=API_KEY,
            dashboard_password=PASSWORD,
            vapid_private_key=str(tmp_path / "vapid.pem"),
            public_url="https://push.example.com",
        )
        self.ctx: Context = open_context(self.config, delivery=RecordingDelivery())
        self.client = TestClient(
            create_app(self.ctx), base_url="https://push.example.com", follow_redirects=False
        )
        self.client.__enter__()
        self.victim_sub = subscription("victim")
        made = self.post(
            {
                "id": "victim-1",
                "subscription": self.victim_sub,
                "attributes": {"plan": "vip", "consent": True, "first_name": "Vic"},
                "tags": ["vip"],
            },
            backend=True,
        )
        assert made.status_code == 201, made.text
        self.victim_link = made.json()["profile_url"]
        self.fresh = 0

    def app_throttle_reset(self) -> None:
        """Forget failed log-ins (another test of this service used them up on purpose)."""
        from orchestrator.web.dashboard import THROTTLE_KEY
        from orchestrator.web.throttle import Throttle

        setattr(self.client.app.state, THROTTLE_KEY, Throttle())  # type: ignore[attr-defined]

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.ctx.engine.dispose()

    def post(self, body: Any, *, backend: bool = False, path: str = "/api/subscriptions") -> Any:
        headers = {"authorization": f"Bearer {API_KEY}"} if backend else {}
        return self.client.post(path, json=body, headers=headers)

    def victim(self) -> tuple[Any, ...]:
        with self.ctx.session() as s:
            row = s.get(Subscriber, "victim-1")
            subs = s.execute(
                select(PushSubscription.endpoint, PushSubscription.p256dh).where(
                    PushSubscription.subscriber_id == "victim-1"
                )
            ).all()
        assert row is not None
        return (row.status, row.timezone, row.attributes, row.tags, sorted(map(tuple, subs)))

    def rows(self) -> dict[str, int]:
        with self.ctx.engine.connect() as c:
            return {t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}

    def expand(self, raw: str) -> str:
        """The corpus's placeholders, filled in."""
        self.fresh += 1
        sub = subscription(f"attacker-{self.fresh}")
        out = raw.replace("$SUB_KEYS", json.dumps(sub["keys"]))
        out = out.replace("$SUB", json.dumps(sub))
        out = out.replace("$VICTIM_SUB", json.dumps(self.victim_sub))
        out = out.replace(
            "$VICTIM_DOTTED", self.victim_sub["endpoint"].replace("/send/", "/send/./x/../")
        )
        out = out.replace(
            "$VICTIM_ESCAPED", self.victim_sub["endpoint"].replace("/victim", "/%76ictim")
        )
        out = out.replace("$VICTIM_ENDPOINT", self.victim_sub["endpoint"])
        out = out.replace("$P256DH", p256dh_key())
        key = tokens.identity_key(self.ctx.secret())
        out = re.sub(r"\$PROOF\(([^)]*)\)", lambda m: tokens.identity_proof(key, m[1]), out)
        out = re.sub(r"\$DEEP\((\d+)\)", lambda m: "[" * int(m[1]) + "]" * int(m[1]), out)
        out = re.sub(r"\$DIGITS\((\d+)\)", lambda m: "9" * int(m[1]), out)
        return re.sub(r"\$REPEAT\(([^,]*),(\d+)\)", lambda m: m[1] * int(m[2]), out)

    def send(self, case: dict[str, Any], path: str, *, backend: bool) -> Any:
        body = (
            bytes.fromhex(case["raw_hex"])
            if "raw_hex" in case
            else self.expand(case["raw"]).encode("utf-8", "surrogatepass")
        )
        headers: dict[str, Any] = {"content-type": "application/json"}
        if backend or case.get("as") == "backend":
            headers["authorization"] = f"Bearer {API_KEY}"
        for name, value in case.get("headers", {}).items():
            headers[name] = value.encode("utf-8")
        return self.client.post(path, content=body, headers=headers)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]
)
def door(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Door]:
    """One service per database for the whole corpus (cases that store leave the victim alone)."""
    from tests.conftest import pg_schema

    tmp = tmp_path_factory.mktemp("door")
    if request.param == "sqlite":
        made = Door(tmp, f"sqlite:///{tmp / 'door.db'}")
        yield made
        made.close()
        return
    with pg_schema() as url:
        made = Door(tmp, url)
        yield made
        made.close()


# ------------------------------------------------------------------ POST /api/subscriptions


@pytest.mark.parametrize("case", _cases("subscriptions.json"))
def test_subscription_door(door: Door, case: dict[str, Any]) -> None:
    before, victim = door.rows(), door.victim()
    answer = door.send(case, "/api/subscriptions", backend=False)
    assert answer.status_code == case["status"], answer.text
    assert "Traceback" not in answer.text
    body = answer.json()
    if "detail" in case:
        assert case["detail"] in body["detail"], body
    if answer.status_code >= 400:
        assert door.rows() == before
        assert "profile_url" not in body
    else:
        assert body["profile_url"].startswith("https://push.example.com/me/")
        if "id" in case:
            assert body["id"] == case["id"]
    if "stored_endpoint" in case:
        with door.ctx.session() as s:
            owner = s.execute(
                select(PushSubscription.subscriber_id).where(
                    PushSubscription.endpoint == case["stored_endpoint"]
                )
            ).scalar_one()
        assert owner == body["id"]
    if not case.get("victim_changes"):
        assert door.victim() == victim


def test_a_visitor_can_only_change_what_they_may_edit(door: Door) -> None:
    """The same browser (same keys) may correct its own first name and topics; the tags and
    attributes the site set stay as they are (merged, never replaced)."""
    answer = door.client.post(
        "/api/subscriptions",
        json={
            "subscription": door.victim_sub,
            "attributes": {"first_name": "Victoria"},
            "tags": ["topic:space"],
        },
    )
    assert answer.status_code == 200 and answer.json()["id"] == "victim-1", answer.text
    _, _, attributes, tags, _ = door.victim()
    assert attributes == {"plan": "vip", "consent": True, "first_name": "Victoria"}
    assert tags == ["vip", "topic:space"]
    door.post(  # put the victim back as the corpus expects it
        {
            "id": "victim-1",
            "subscription": door.victim_sub,
            "attributes": {"plan": "vip", "consent": True, "first_name": "Vic"},
            "tags": ["vip"],
        },
        backend=True,
    )


def test_unsubscribing_needs_the_browsers_auth_secret(door: Door) -> None:
    victim = door.victim()
    guess = {"endpoint": door.victim_sub["endpoint"], "keys": {"auth": "QUFBQUFBQUFBQUFBQUFBQQ"}}
    for body in (guess, {"endpoint": door.victim_sub["endpoint"]}):
        answer = door.client.request("DELETE", "/api/subscriptions", json=body)
        assert answer.status_code in (200, 422), answer.text
        assert answer.json().get("removed") in (False, None)
    assert door.victim() == victim


# ------------------------------------------------------------------ POST /api/events


@pytest.fixture(scope="module")
def event_door(door: Door) -> Door:
    for sid in ("ann", "bea", "gone-1"):
        door.post({"id": sid, "subscription": subscription(f"e-{sid}")}, backend=True)
    with door.ctx.session() as s, s.begin():
        s.execute(
            Subscriber.__table__.update()  # type: ignore[attr-defined]
            .where(Subscriber.__table__.c.id == "gone-1")  # type: ignore[attr-defined]
            .values(status="deleted")
        )
    return door


@pytest.mark.parametrize("case", _cases("events.json"))
def test_event_door(event_door: Door, case: dict[str, Any]) -> None:
    before = event_door.rows()
    answer = event_door.send(case, "/api/events", backend="headers" not in case)
    assert answer.status_code == case["status"], answer.text
    body = answer.json()
    if "detail" in case:
        assert case["detail"] in body["detail"], body
    if answer.status_code >= 400:
        assert event_door.rows() == before
    else:
        assert (body["stored"], body["repeated"]) == (case["stored"], case["repeated"])
        assert event_door.rows()["event"] == before["event"] + case["stored"]


# ------------------------------------------------------------------ subscribers import


IMPORT_BAD = {
    2: "NaN is not a JSON number",
    4: "-Infinity is not a JSON number",
    5: "beyond ±2^53",
    6: "attributes.note: contains a NUL character",
    7: "tags[0]: contains a lone surrogate",
    8: "is not a subscriber id",
    9: "nested deeper than 20 levels",
    10: "is not an IANA timezone",
    11: "endpoint contains a NUL character",
    13: "nested deeper than 20 levels",
    14: "a number of 5,000 digits",
    15: "not UTF-8 text",
    16: "line longer than 1,048,576 bytes",
}
IMPORT_GOOD = {"good-1", "good-2", "good-3", "good-4"}


def _import_file(tmp_path: Path) -> Path:
    path = tmp_path / "people.jsonl"
    lines = (HOSTILE / "import.jsonl").read_bytes()
    lines += b'{"id": "deep-2", "attributes": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    lines += b'{"id": "digits-1", "attributes": {"n": ' + b"9" * 5000 + b"}}\n"
    lines += b'{"id": "bytes-1", "attributes": {"name": "\xff\xfe"}}\n'
    lines += b'{"id": "long-1", "attributes": {"bio": "' + b"x" * 2_200_000 + b'"}}\n'
    lines += b'{"id": "good-4"}\n'
    path.write_bytes(lines)
    return path


def test_one_bad_import_line_never_costs_a_good_one(tmp_path: Path, db_url: str) -> None:
    ctx = open_context(Config(db=db_url, graphs=tmp_path), delivery=RecordingDelivery())
    report = import_subscribers(ctx, _import_file(tmp_path))
    bad = dict(report.bad)
    assert set(bad) == set(IMPORT_BAD), bad
    for number, expected in IMPORT_BAD.items():
        assert expected in bad[number], (number, bad[number])
    with ctx.session() as s:
        stored = set(s.execute(select(Subscriber.id)).scalars())
    assert stored == IMPORT_GOOD
    assert report.added == len(IMPORT_GOOD)
    ctx.engine.dispose()


@pytest.mark.slow
def test_the_import_command_reports_every_bad_line_and_keeps_the_rest(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CAMPAIGN_DB": f"sqlite:///{tmp_path / 'c.db'}",
        "CAMPAIGN_GRAPHS": str(tmp_path),
    }
    done = _campaign(["subscribers", "import", str(_import_file(tmp_path))], env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    for number in IMPORT_BAD:
        assert f"people.jsonl:{number}: " in done.stderr, done.stderr[-2000:]
    assert "4 added" in done.stdout


# ------------------------------------------------------------------ the command line


def _campaign(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).parent / "campaign")
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=120)


CLI_CASES = [
    (
        ["events", "add", "--subscriber", "ann", "--event", "viewed", "--prop", "price=NaN"],
        1,
        "--prop price=NaN: not a finite JSON number",
    ),
    (
        ["events", "add", "--subscriber", "ann", "--event", "viewed", "--prop", "n=1e999"],
        1,
        "not a finite JSON number",
    ),
    (
        ["events", "add", "--subscriber", "ann", "--event", "viewed", "--prop", "n=" + "9" * 5000],
        1,
        "not a finite JSON number",
    ),
    (
        ["events", "add", "--subscriber", "ann", "--event", "viewed", "--prop", "q=a\x01b"],
        0,
        "recorded event",
    ),
    (
        [
            "events",
            "add",
            "--subscriber",
            "ann",
            "--event",
            "viewed",
            "--at",
            "0001-01-01T00:00:00+14:00",
        ],
        1,
        "outside the years 1970-9999",
    ),
    (["events", "add", "--subscriber", "ann\n", "--event", "viewed"], 1, "is not a subscriber id"),
    (
        ["events", "add", "--subscriber", "ann", "--event", "viewed", "--id", "a b"],
        1,
        "is not an event id",
    ),
    (["tick", "--now", "0001-01-01T00:00:00+14:00"], 2, "outside the years 1970-9999"),
    (["simulate", "{graphs}/launch.yaml", "--resolution", "999999999999w"], 2, "longer than 520w"),
    (
        ["simulate", "{graphs}/launch.yaml", "--start", "9999-12-31T00:00:00Z"],
        2,
        "a simulation ends by the year 9000",
    ),
    (["simulate", "{graphs}/launch.yaml", "--repeat-days", "366"], 2, "--repeat-days"),
    (
        [
            "simulate",
            "{graphs}/launch.yaml",
            "--population",
            "{graphs}/../p.jsonl",
            "--repeat-days",
            "3",
        ],
        1,
        "repeat days apply to the synthetic population",
    ),
    (["subscribers", "revoke-links", "nobody"], 1, "no subscriber 'nobody'"),
]


@pytest.mark.slow
def test_hostile_command_line_options_get_a_clear_error(tmp_path: Path) -> None:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "launch.yaml").write_text(textwrap.dedent(WEB_CAMPAIGN), encoding="utf-8")
    env = {
        **os.environ,
        "CAMPAIGN_DB": f"sqlite:///{tmp_path / 'c.db'}",
        "CAMPAIGN_GRAPHS": str(graphs),
        "CAMPAIGN_VAPID_SUBJECT": "mailto:ops@example.com",
        "CAMPAIGN_VAPID_PRIVATE_KEY": str(tmp_path / "vapid.pem"),
    }
    VapidKey.generate().save(tmp_path / "vapid.pem")
    people = tmp_path / "p.jsonl"
    people.write_text('{"id": "ann"}\n')
    assert _campaign(["subscribers", "import", str(people)], env).returncode == 0
    for args, status, expected in CLI_CASES:
        args = [a.replace("{graphs}", str(graphs)) for a in args]
        done = _campaign(args, env)
        out = done.stdout + done.stderr
        assert done.returncode == status, (args, out[-1500:])
        assert "Traceback" not in out, (args, out[-1500:])
        flat = " ".join(re.sub(r"[│╭╮╰╯─]", " ", out).split())
        assert expected in flat, (args, out[-1500:])
    first = _campaign(
        ["events", "add", "--subscriber", "ann", "--event", "paid", "--id", "o-1"], env
    )
    again = _campaign(
        ["events", "add", "--subscriber", "ann", "--event", "paid", "--id", "o-1"], env
    )
    assert first.returncode == again.returncode == 0
    assert "recorded event" in first.stdout and "already recorded as event" in again.stdout


# ------------------------------------------------------------------ the profile page


def test_profile_links_can_be_revoked_and_forms_from_other_sites_are_refused(
    door: Door,
) -> None:
    made = door.post({"id": "rev-1", "subscription": subscription("rev")}, backend=True).json()
    path = "/me/" + made["profile_url"].rsplit("/me/", 1)[1]
    assert door.client.get(path).status_code == 200
    forged = door.client.post(
        path + "/pause", headers={"origin": "https://evil.example", "sec-fetch-site": "cross-site"}
    )
    assert forged.status_code == 403
    for origin in ("https://evil.example", "null"):
        answer = door.client.post(
            path + "/delete", data={"confirm": "yes"}, headers={"origin": origin}
        )
        assert answer.status_code == 403 and "another site" in answer.text
    with door.ctx.session() as s:
        row = s.get(Subscriber, "rev-1")
        assert row is not None and row.status == "active" and row.paused_until is None
    ours = door.client.post(path + "/pause", headers={"origin": "https://push.example.com"})
    assert ours.status_code == 303
    bad = door.client.post(path, data={"attr:first_name": "a\x00b"})
    assert bad.status_code == 200 and "Not saved: first_name: contains a NUL character" in bad.text
    new_link = visitors.revoke_links(door.ctx, "rev-1", now=datetime.now(UTC))
    assert door.client.get(path).status_code == 404
    assert door.client.post(path + "/delete", data={"confirm": "yes"}).status_code == 404
    assert door.client.get("/me/" + new_link.rsplit("/me/", 1)[1]).status_code == 200


def test_pages_with_personal_data_are_not_cached_framed_or_referred(door: Door) -> None:
    path = "/me/" + door.victim_link.rsplit("/me/", 1)[1]
    for url in (path, path + "/export", "/login", "/api/subscriptions"):
        answer = (
            door.client.get(url)
            if url != "/api/subscriptions"
            else door.post({"subscription": door.victim_sub})
        )
        headers = answer.headers
        assert headers["cache-control"] == "no-store", url
        assert headers["x-frame-options"] == "DENY", url
        assert "frame-ancestors 'none'" in headers["content-security-policy"], url
        assert "script-src 'self'" in headers["content-security-policy"], url
        assert headers["referrer-policy"] == "no-referrer", url
        assert headers["x-content-type-options"] == "nosniff", url


# ------------------------------------------------------------------ the dashboard's login


def test_logins_are_throttled_and_the_api_key_is_not_a_password(door: Door) -> None:
    client = door.client
    for given in (API_KEY, "ключ-пароль", "wrong"):
        answer = client.post("/login", data={"password": given, "next": "/"})
        assert answer.status_code == 303 and "failed=1" in answer.headers["location"], given
    client.post("/login", data={"password": "wrong again"})
    client.post("/login", data={"password": "and again"})  # the fifth failure
    blocked = client.post("/login", data={"password": PASSWORD})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert "campaign_session" not in blocked.cookies
    foreign = client.post(
        "/login", data={"password": PASSWORD}, headers={"origin": "https://evil.example"}
    )
    assert foreign.status_code == 403


# ------------------------------------------------------------------ request bodies


def test_a_declared_oversized_body_is_refused_before_it_is_read(door: Door) -> None:
    sent: list[int] = []

    def body() -> Iterator[bytes]:
        for _ in range(64):
            sent.append(1)
            yield b"x" * 65536

    answer = door.client.post(
        "/api/subscriptions",
        content=body(),
        headers={"content-type": "application/json", "content-length": str(800 * 1024 * 1024)},
    )
    assert answer.status_code == 413 and "1,048,576" in answer.json()["detail"]


def test_a_streamed_oversized_body_is_cut_at_the_limit(door: Door) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"subscription": "'
        for _ in range(40):
            yield b"x" * 65536

    before = door.rows()
    answer = door.client.post(
        "/api/subscriptions", content=body(), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 413 and door.rows() == before


# ------------------------------------------------------------------ campaign files


def _graphs_with_traps(tmp_path: Path) -> Path:
    """A graphs folder holding a good campaign and the traps: a symlink to a file outside,
    a FIFO (reading it would block forever), and an include that climbs out."""
    outside = tmp_path / "secret.yaml"
    outside.write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "launch.yaml").write_text(textwrap.dedent(WEB_CAMPAIGN), encoding="utf-8")
    (graphs / "evil.yaml").symlink_to(outside)
    os.mkfifo(graphs / "pipe.yaml")
    climbing = textwrap.dedent(WEB_CAMPAIGN).replace("campaign: launch", "campaign: climbing")
    (graphs / "climbing.yaml").write_text(
        "include: [../secret.yaml]\n" + climbing, encoding="utf-8"
    )
    (graphs / "inside.yaml").symlink_to(graphs / "launch.yaml")  # inside the folder: fine
    return graphs


@pytest.mark.slow
def test_files_that_leave_the_campaign_folder_are_refused(tmp_path: Path) -> None:
    graphs = _graphs_with_traps(tmp_path)
    env = {
        **os.environ,
        "CAMPAIGN_DB": f"sqlite:///{tmp_path / 'c.db'}",
        "CAMPAIGN_GRAPHS": str(graphs),
    }
    done = _campaign(["validate", str(graphs), "--format", "json"], env)
    assert "Traceback" not in done.stderr and "root:x" not in done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert done.returncode == 2  # a file was refused
    (refused,) = report["unreadable"]
    assert "evil.yaml: a symbolic link leading outside" in refused
    climbing = [d["message"] for d in report["diagnostics"] if "climbing" in d["file"]]
    assert any("include '../secret.yaml'" in m and "leading outside" in m for m in climbing), (
        climbing
    )
    ok = {Path(f["file"]).name for f in report["files"] if f["ok"]}
    assert ok == {"launch.yaml", "inside.yaml"}  # the FIFO is not a file: never listed, never read


def test_the_dashboard_lists_a_refused_file_without_its_contents(tmp_path: Path) -> None:
    graphs = _graphs_with_traps(tmp_path)
    VapidKey.generate().save(tmp_path / "vapid.pem")
    config = Config(
        db=f"sqlite:///{tmp_path / 'c.db'}",
        graphs=graphs,
        dashboard_password=PASSWORD,
        vapid_private_key=str(tmp_path / "vapid.pem"),
    )
    ctx = open_context(config, delivery=RecordingDelivery())
    with TestClient(create_app(ctx), base_url="https://push.example.com") as client:
        client.post("/login", data={"password": PASSWORD})
        page = client.get("/")
        assert page.status_code == 200 and "root:x" not in page.text
        assert "leading outside" in page.text
        assert client.get("/campaigns/evil").status_code == 404
        assert client.get("/campaigns/launch").status_code == 200
    ctx.engine.dispose()


# ------------------------------------------------------------------ stored data from before


def test_a_stored_click_destination_that_is_not_http_redirects_to_our_thanks_page(
    door: Door,
) -> None:
    """A destination stored before it was checked (or by another path) is never emitted."""
    targets = ("javascript:alert(1)", "//evil.example/x", "data:text/html,x", "https://ok.example/")
    ids = _sends(door, "victim-1", targets)
    for send_id, target in zip(ids, targets, strict=True):
        answer = door.client.get(f"/c/{tokens.sign(door.ctx.secret(), 'click', send_id)}")
        assert answer.status_code == 303
        expected = target if target.startswith("https:") else "https://push.example.com/thanks"
        assert answer.headers["location"] == expected


def test_no_code_path_can_write_nan_into_a_json_column(door: Door) -> None:
    from datetime import UTC, datetime

    from orchestrator.language.records import EventRecord
    from orchestrator.store import repo

    before = door.rows()
    with pytest.raises(Exception) as caught, door.ctx.session() as s, s.begin():
        repo.add_events(s, [EventRecord("victim-1", "x", datetime.now(UTC), {"p": float("nan")})])
    assert "not storable as JSON" in str(caught.value)
    assert door.rows() == before


# ------------------------------------------------------------------ found by a hostile review


@pytest.mark.timeout(60)
def test_an_unterminated_string_of_escapes_is_refused_in_one_pass(door: Door) -> None:
    """A megabyte of escaped quotes in an unterminated string: refused at once (a scan
    that started again at every quote took hours of the event loop for this body)."""
    body = b'{"' + b'\\"' * 500_000
    answer = door.client.post(
        "/api/subscriptions", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422 and "not JSON" in answer.json()["detail"]


def test_deleting_ends_every_profile_link_even_after_subscribing_again(door: Door) -> None:
    key = tokens.identity_key(door.ctx.secret())
    body = {"id": "acc-del", "id_hash": tokens.identity_proof(key, "acc-del")}
    made = door.post({**body, "subscription": subscription("del-1")}).json()
    link = "/me/" + made["profile_url"].rsplit("/me/", 1)[1]
    assert door.client.post(link + "/delete", data={"confirm": "yes"}).status_code == 200
    again = door.post({**body, "subscription": subscription("del-2")})
    assert again.status_code == 201
    assert door.client.get(link).status_code == 404  # the link from before the deletion
    fresh = "/me/" + again.json()["profile_url"].rsplit("/me/", 1)[1]
    assert door.client.get(fresh).status_code == 200


def test_nothing_is_written_for_a_subscriber_who_deleted_their_data(door: Door) -> None:
    made = door.post({"id": "gone-2", "subscription": subscription("gone-2")}, backend=True)
    sid = made.json()["id"]
    visitors.forget(door.ctx, sid, now=datetime.now(UTC))
    for write in (
        lambda: visitors.update_profile(
            door.ctx,
            sid,
            attributes={"first_name": "Bob"},
            picked_topics=["space"],
            now=datetime.now(UTC),
        ),
        lambda: visitors.pause(door.ctx, sid, now=datetime.now(UTC)),
        lambda: visitors.resume(door.ctx, sid, now=datetime.now(UTC)),
    ):
        with pytest.raises(KeyError):
            write()
    with door.ctx.session() as s:
        row = s.get(Subscriber, sid)
        events = s.execute(select(Event.name).where(Event.subscriber_id == sid)).all()
    assert row is not None and (row.attributes, row.tags, row.paused_until) == ({}, [], None)
    assert events == [("unsubscribed",)]  # the deletion's own opt-out, nothing after it


def _sends(door: Door, subscriber: str, targets: tuple[str, ...]) -> list[int]:
    """A journey of `subscriber` through `hello` (which has the action `docs`), with one
    delivered send per destination in `targets` (stored as given, unchecked)."""
    from orchestrator.app.service import campaign_paths, load_current
    from orchestrator.store.models import Journey, Send

    version = load_current(door.ctx, campaign_paths(door.ctx)[0]).version_id
    now = datetime.now(UTC)
    with door.ctx.session() as s, s.begin():
        journey = Journey(
            campaign="launch",
            version_id=version or 0,
            subcampaign="pros",
            subscriber_id=subscriber,
            node="hello",
            phase="ended",
            entered_at=now,
            ended_at=now,
        )
        s.add(journey)
        s.flush()
        sends = [
            Send(
                journey_id=journey.id or 0,
                step=step,
                campaign="launch",
                node="hello",
                subscriber_id=subscriber,
                claimed_at=now,
                outcome="delivered",
                target_url=target,
            )
            for step, target in enumerate(targets, 1)
        ]
        s.add_all(sends)
        s.flush()
        return [x.id or 0 for x in sends]


def _clicks(door: Door, subscriber: str) -> list[Any]:
    with door.ctx.session() as s:
        return list(
            s.execute(
                select(Event.properties).where(
                    Event.subscriber_id == subscriber, Event.name == "click"
                )
            ).scalars()
        )


def test_a_link_records_one_click_per_real_action_and_none_after_deletion(door: Door) -> None:
    door.post({"id": "clicker", "subscription": subscription("clicker")}, backend=True)
    link = f"/c/{tokens.sign(door.ctx.secret(), 'click', _sends(door, 'clicker', ('https://example.com/pro',))[0])}"
    for action in (None, "x1", "x2", " ", "docs", "docs", "nope"):
        answer = door.client.get(link, params={"a": action} if action is not None else None)
        assert answer.status_code == 303
    clicks = _clicks(door, "clicker")
    assert sorted(c.get("action", "-") for c in clicks) == ["-", "docs"]
    visitors.forget(door.ctx, "clicker", now=datetime.now(UTC))
    other = f"/c/{tokens.sign(door.ctx.secret(), 'click', _sends(door, 'clicker', ('https://example.com/pro',))[0])}"
    assert door.client.get(other).status_code == 303  # still redirected
    assert _clicks(door, "clicker") == []  # nothing recorded about them


@pytest.mark.parametrize(
    "cookie",
    ["9999999999.0.\xe9", "\xb2.0.abc", "9" * 5000 + ".0.abc", "1.2", "a.b.c", "..", "9" * 250],
)
def test_a_forged_session_cookie_is_a_login_page_never_a_500(door: Door, cookie: str) -> None:
    door.client.cookies.clear()
    answer = door.client.get("/", headers={"cookie": f"campaign_session={cookie}".encode()})
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


def test_logging_out_ends_every_session(door: Door) -> None:
    client = door.client
    client.cookies.clear()
    door.app_throttle_reset()
    logged = client.post("/login", data={"password": PASSWORD})
    assert logged.status_code == 303
    cookie = client.cookies.get("campaign_session")
    assert cookie and client.get("/").status_code == 200
    assert client.post("/logout").status_code == 303
    client.cookies.clear()
    old = client.get("/", headers={"cookie": f"campaign_session={cookie}"})
    assert old.status_code == 303  # the cookie from before the log-out no longer works


def test_the_try_page_renders(door: Door) -> None:
    door.client.cookies.clear()
    door.app_throttle_reset()
    door.client.post("/login", data={"password": PASSWORD})
    page = door.client.get("/try")
    assert page.status_code == 200 and 'src="/try.js"' in page.text
    assert door.client.get("/try.js").status_code == 200


def test_unsubscribing_takes_the_keys_in_any_base64_form(door: Door) -> None:
    sub = subscription("forms")
    door.post({"subscription": sub})
    padded = {"endpoint": sub["endpoint"], "keys": {"auth": sub["keys"]["auth"] + "=="}}
    answer = door.client.request("DELETE", "/api/subscriptions", json=padded)
    assert answer.json() == {"removed": True}


def test_linking_an_anonymous_browser_to_a_site_id_retires_the_anonymous_id(door: Door) -> None:
    sub = subscription("linked")
    anonymous = door.post(
        {"subscription": sub, "attributes": {"first_name": "Ana"}, "tags": ["topic:space"]}
    ).json()
    assert anonymous["id"].startswith("v_")
    key = tokens.identity_key(door.ctx.secret())
    linked = door.post(
        {
            "subscription": sub,
            "id": "acc-linked",
            "id_hash": tokens.identity_proof(key, "acc-linked"),
        }
    )
    assert linked.status_code == 201 and linked.json()["id"] == "acc-linked"
    with door.ctx.session() as s:
        old, new = s.get(Subscriber, anonymous["id"]), s.get(Subscriber, "acc-linked")
        moved = s.execute(select(Event.name).where(Event.subscriber_id == "acc-linked")).all()
    assert old is not None and (old.status, old.attributes, old.tags) == ("merged", {}, [])
    assert new is not None and new.attributes == {"first_name": "Ana"}
    # the anonymous browser's opt-in is now theirs, and the link is no second one
    assert new.tags == ["topic:space"] and moved == [("subscribed",)]
    old_link = "/me/" + anonymous["profile_url"].rsplit("/me/", 1)[1]
    assert door.client.get(old_link).status_code == 404


def test_a_foreign_referer_alone_is_refused_and_an_upload_is_not_text(door: Door) -> None:
    made = door.post({"id": "ref-1", "subscription": subscription("ref-1")}, backend=True).json()
    path = "/me/" + made["profile_url"].rsplit("/me/", 1)[1]
    foreign = door.client.post(path + "/pause", headers={"referer": "https://evil.example/x"})
    assert foreign.status_code == 403
    upload = door.client.post(path, files={"attr:first_name": ("x.txt", b"hello")})
    assert upload.status_code == 200 and "Not saved: first_name: expected text" in upload.text
