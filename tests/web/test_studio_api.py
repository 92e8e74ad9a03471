"""The studio's API at its doors: any text is checked (never a 500), files stay inside the
folder, saves are exact and never silently overwrite, and requests from elsewhere are
refused."""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from orchestrator.app.ticking import tick
from orchestrator.studio.workspace import MAX_BYTES, SaveConflict, StudioError, Workspace
from orchestrator.web.studio import create_studio_app
from tests.helpers import API_KEY, PASSWORD, ROOT, subscription
from tests.web.conftest import World

FILE = "cart-recovery.yaml"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "graphs"
    shutil.copytree(ROOT / "campaign_graphs", target)
    return target


@pytest.fixture
def client(folder: Path) -> Iterator[TestClient]:
    with TestClient(create_studio_app(folder), base_url="http://127.0.0.1:8100") as c:
        yield c


def _check(client: TestClient, text: str, name: str = FILE) -> dict[str, object]:
    answer = client.post("/api/check", json={"name": name, "text": text})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_every_example_checks_valid_with_its_chart_and_node_positions(
    client: TestClient, folder: Path
) -> None:
    examples = sorted(p.name for p in folder.glob("*.yaml"))
    assert len(examples) >= 6
    for name in examples:
        text = (folder / name).read_text(encoding="utf-8")
        found = _check(client, text, name)
        assert found["ok"] is True, found["diagnostics"]
        assert str(found["svg"]).startswith("<svg")
        nodes = found["nodes"]
        assert isinstance(nodes, dict) and nodes
        lines = text.splitlines()
        for nid, at in nodes.items():
            assert lines[at["line"] - 1][at["col"] - 1 :].startswith(f"{nid}:")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "campaign: [",
        "\ufeffcampaign: x\n",
        "campaign:\tx\n",
        "a: &a [*a, *a]\n" + "b: &b [*a, *a, *a]\n" * 30,
        "campaign: x\nsubcampaigns: {s: {start: n, nodes: {n: {notification: {title: "
        "'{% for i in range(10**9) %}{{ i }}{% endfor %}', body: b}, on_convert: end, "
        "on_no_convert: end}}}}\n",
        "x" * 200_000,
        "- " * 5000,
        "{" * 10_000,
        "campaign: \udcff",
    ],
    ids=lambda t: repr(t[:20]),
)
def test_any_text_gets_diagnostics_never_a_500(client: TestClient, text: str) -> None:
    answer = client.post(
        "/api/check",
        content=json.dumps({"name": FILE, "text": text}).encode("utf-8"),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code in (200, 422), answer.text
    if answer.status_code == 200:
        found = answer.json()
        assert found["ok"] is False or text == ""
        assert found["diagnostics"], found


def test_a_text_over_the_limit_is_a_diagnostic(client: TestClient) -> None:
    found = _check(client, "a" * (MAX_BYTES + 1))
    assert found["ok"] is False
    assert "larger than" in str(found["diagnostics"])


@pytest.mark.parametrize(
    "name",
    ["../outside.yaml", "/etc/passwd.yaml", "segments/../../x.yaml", "notes.txt", "", "a\0.yaml"],
)
def test_names_outside_the_folder_or_not_campaign_files_are_refused(
    client: TestClient, name: str
) -> None:
    assert client.get("/api/file", params={"name": name}).status_code == 422
    saved = client.post("/api/save", json={"name": name, "text": "x", "version": ""})
    assert saved.status_code == 422


def test_a_link_leading_out_of_the_folder_is_neither_listed_nor_read(
    client: TestClient, folder: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text("password: hunter2\n", encoding="utf-8")
    os.symlink(secret, folder / "link.yaml")
    assert "link.yaml" not in client.get("/api/files").json()["files"]
    answer = client.get("/api/file", params={"name": "link.yaml"})
    assert answer.status_code == 422 and "hunter2" not in answer.text


def test_save_is_exact_and_a_stale_version_is_refused_with_the_text_on_disk(
    client: TestClient, folder: Path
) -> None:
    opened = client.get("/api/file", params={"name": FILE}).json()
    mine = opened["text"].replace("title: Abandoned", "title:  Abandoned") + "\n# kept\r\n"
    saved = client.post(
        "/api/save", json={"name": FILE, "text": mine, "version": opened["version"]}
    )
    assert saved.status_code == 200
    assert (folder / FILE).read_bytes() == mine.encode("utf-8")
    # a second tab still at the first version
    again = client.post(
        "/api/save", json={"name": FILE, "text": "campaign: other\n", "version": opened["version"]}
    )
    assert again.status_code == 409
    assert again.json()["current"] == mine
    assert (folder / FILE).read_bytes() == mine.encode("utf-8")
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_new_file_is_saved_only_if_it_does_not_exist_yet(
    client: TestClient, folder: Path
) -> None:
    first = client.post("/api/save", json={"name": "new/one.yaml", "text": "a: 1\n", "version": ""})
    assert first.status_code == 200
    second = client.post("/api/save", json={"name": "new/one.yaml", "text": "b\n", "version": ""})
    assert second.status_code == 409
    assert (folder / "new" / "one.yaml").read_text(encoding="utf-8") == "a: 1\n"


def test_requests_from_elsewhere_are_refused(client: TestClient, folder: Path) -> None:
    before = (folder / FILE).read_bytes()
    body = {"name": FILE, "text": "x: 1\n", "version": ""}
    # a form or text/plain post from another page (no CORS preflight) is not read
    plain = client.post("/api/save", content=str(body), headers={"content-type": "text/plain"})
    assert plain.status_code == 415
    other = client.post("/api/save", json=body, headers={"origin": "https://evil.example"})
    assert other.status_code == 403
    rebound = client.get("/api/files", headers={"host": "evil.example:8100"})
    assert rebound.status_code == 421
    assert (folder / FILE).read_bytes() == before


def test_a_password_is_asked_when_given(folder: Path) -> None:
    app = create_studio_app(folder, password="open sesame", hosts=("studio.example",))
    with TestClient(app, base_url="http://studio.example") as c:
        assert c.get("/api/files", headers={"host": "elsewhere.example"}).status_code == 421
        assert c.get("/api/files").status_code == 401
        wrong = base64.b64encode(b"me:nope").decode()
        assert c.get("/api/files", headers={"authorization": f"Basic {wrong}"}).status_code == 401
        right = base64.b64encode(b"me:open sesame").decode()
        assert c.get("/api/files", headers={"authorization": f"Basic {right}"}).status_code == 200


def test_the_workspace_refuses_what_the_api_refuses(folder: Path) -> None:
    workspace = Workspace(folder)
    with pytest.raises(StudioError, match="outside"):
        workspace.path("../x.yaml")
    with pytest.raises(SaveConflict):
        workspace.save(FILE, "x\n", base_version="not the version")
    (folder / "bad.yaml").write_bytes(b"\xff\xfe")
    with pytest.raises(StudioError, match="not UTF-8"):
        workspace.read("bad.yaml")


def test_the_preview_renders_a_node_for_a_sample_with_its_trigger(
    client: TestClient, folder: Path
) -> None:
    text = (folder / FILE).read_text(encoding="utf-8")
    answer = client.post(
        "/api/preview", json={"name": FILE, "text": text, "node": "cart_nudge", "sample": 2}
    )
    assert answer.status_code == 200, answer.text
    found = answer.json()
    product = found["sample"]["trigger"]["properties"]["product"]
    assert found["fields"]["title"] == f"Still thinking about {product}?"
    assert found["problem"] is None and 0 < found["size"] <= found["limit"] == 3993


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"node": "cart_tier"}, "not a notification node"),
        ({"node": "nothing"}, "not a notification node"),
        ({"node": "cart_nudge", "sample": 999}, "sample"),
        ({"node": "cart_nudge", "sample": "1"}, "sample"),
        ({"node": "cart_nudge", "text": "campaign: ["}, "does not validate"),
    ],
)
def test_a_preview_that_cannot_be_made_says_why(
    client: TestClient, folder: Path, body: dict[str, object], detail: str
) -> None:
    request = {"name": FILE, "text": (folder / FILE).read_text(encoding="utf-8"), **body}
    answer = client.post("/api/preview", json=request)
    assert answer.status_code == 422 and detail in answer.json()["detail"]


def test_simulate_draws_the_unsaved_text_with_counts_and_leaves_the_folder_alone(
    client: TestClient, folder: Path
) -> None:
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    text = (folder / FILE).read_text(encoding="utf-8").replace("delay: 1h", "delay: 2h")
    answer = client.post("/api/simulate", json={"name": FILE, "text": text, "subscribers": 300})
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["summary"]["subscribers"] == 300 and found["summary"]["unfinished_journeys"] == 0
    assert found["counts"]["cart_tier"]["entered"] > 0
    assert "end:cart-abandoned" in found["counts"]
    assert 'class="outcomes"' in found["svg"]
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    for bad in (0, 10_001, "many", True):
        refused = client.post(
            "/api/simulate", json={"name": FILE, "text": text, "subscribers": bad}
        )
        assert refused.status_code == 422


def test_a_new_file_starts_from_the_starter_campaign_and_never_replaces_one(
    client: TestClient, folder: Path
) -> None:
    made = client.post("/api/new", json={"name": "spring/launch-2.yaml"})
    assert made.status_code == 200, made.text
    text = (folder / "spring" / "launch-2.yaml").read_text(encoding="utf-8")
    assert made.json()["text"] == text and "campaign: launch-2\n" in text
    assert _check(client, text, "spring/launch-2.yaml")["ok"] is True
    before = (folder / FILE).read_bytes()
    assert client.post("/api/new", json={"name": FILE}).status_code == 422
    assert (folder / FILE).read_bytes() == before
    assert client.post("/api/new", json={"name": "../up.yaml"}).status_code == 422


def test_campaign_serve_shows_the_studio_read_only_behind_the_login(world: World) -> None:
    client = world.client
    page = client.get("/studio/")
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    text = (world.ctx.config.graphs / "launch.yaml").read_text(encoding="utf-8")
    body = {"name": "launch.yaml", "text": text}
    assert client.post("/studio/api/check", json=body).status_code == 401
    assert client.get("/studio/api/files").status_code == 401
    assert client.post("/login", data={"password": PASSWORD}).status_code < 400
    page = client.get("/studio/")
    assert page.status_code == 200
    assert 'data-read-only="true"' in page.text and 'data-base="/studio"' in page.text
    assert client.get("/studio/static/studio.bundle.js").status_code == 200
    assert client.get("/studio/api/files").json()["files"] == ["launch.yaml"]
    checked = client.post("/studio/api/check", json=body).json()
    assert checked["ok"] is True and checked["svg"].startswith("<svg")
    # nothing that writes, nothing that runs long
    before = text
    for path in ("/studio/api/save", "/studio/api/new", "/studio/api/simulate"):
        answer = client.post(path, json={**body, "version": "", "subscribers": 10})
        assert answer.status_code in (404, 405), path
    assert (world.ctx.config.graphs / "launch.yaml").read_text(encoding="utf-8") == before


def test_what_the_studio_cannot_read_it_neither_serves_nor_overwrites(
    client: TestClient, folder: Path
) -> None:
    os.mkfifo(folder / "fifo.yaml")  # opening it to read would wait for a writer forever
    assert client.get("/api/file", params={"name": "fifo.yaml"}).status_code == 422
    saved = client.post("/api/save", json={"name": "fifo.yaml", "text": "a\n", "version": ""})
    assert saved.status_code == 422
    os.symlink("loop.yaml", folder / "loop.yaml")
    assert client.get("/api/file", params={"name": "loop.yaml"}).status_code == 422
    big = folder / "big.yaml"
    big.write_bytes(b"#" * (MAX_BYTES + 10))
    for version in ("", "unreadable"):
        refused = client.post(
            "/api/save", json={"name": "big.yaml", "text": "a\n", "version": version}
        )
        assert refused.status_code == 422, refused.text
    assert big.stat().st_size == MAX_BYTES + 10
    (folder / "latin1.yaml").write_bytes("caf\xe9: 1\n".encode("latin-1"))
    assert (
        client.post(
            "/api/save", json={"name": "latin1.yaml", "text": "a\n", "version": ""}
        ).status_code
        == 422
    )
    # saves still go through afterwards
    opened = client.get("/api/file", params={"name": FILE}).json()
    again = client.post(
        "/api/save", json={"name": FILE, "text": "x: 1\n", "version": opened["version"]}
    )
    assert again.status_code == 200


def test_a_link_inside_the_folder_saves_to_the_file_it_points_to(
    client: TestClient, folder: Path
) -> None:
    (folder / "v3.yaml").write_text("a: 1\n", encoding="utf-8")
    os.symlink("v3.yaml", folder / "current.yaml")
    opened = client.get("/api/file", params={"name": "current.yaml"}).json()
    saved = client.post(
        "/api/save", json={"name": "current.yaml", "text": "a: 2\n", "version": opened["version"]}
    )
    assert saved.status_code == 200
    assert (folder / "current.yaml").is_symlink()
    assert (folder / "v3.yaml").read_text(encoding="utf-8") == "a: 2\n"


@pytest.mark.parametrize("name", [".github/workflows/x.yml", "a\nb.yaml", ".hidden.yaml"])
def test_hidden_names_and_control_characters_are_refused(client: TestClient, name: str) -> None:
    answer = client.post("/api/save", json={"name": name, "text": "a: 1\n", "version": ""})
    assert answer.status_code == 422


def test_a_text_with_many_problems_sends_the_first_200_and_the_count(client: TestClient) -> None:
    found = _check(client, "a: 1\n" * 5000)
    assert len(found["diagnostics"]) == 200 and found["total"] > 200  # type: ignore[arg-type]


def test_includes_are_read_once_only_yaml_and_never_through_a_loop(
    client: TestClient, folder: Path
) -> None:
    text = (folder / "cloud-storage-launch.yaml").read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if x.startswith("include:"))
    many = text.replace(line, "include: [" + ", ".join(["segments/cloud-storage.yaml"] * 500) + "]")
    started = time.perf_counter()
    found = _check(client, many, "cloud-storage-launch.yaml")
    assert found["ok"] is True, found["diagnostics"]
    assert time.perf_counter() - started < 30  # read once, not 500 times (a bound, not a benchmark)
    (folder / "notes.txt").write_text("secret: 1\n", encoding="utf-8")
    os.symlink("spin.yaml", folder / "spin.yaml")
    for item, code in (("notes.txt", "include-not-yaml"), ("spin.yaml", "include-outside")):
        bad = _check(client, text.replace(line, f"include: [{item}]"), "cloud-storage-launch.yaml")
        codes = {d["code"] for d in bad["diagnostics"]}  # type: ignore[union-attr]
        assert code in codes, bad["diagnostics"]


def test_with_the_database_the_studio_counts_journeys_in_flight_and_sends_a_test(
    world: World,
) -> None:
    """Journeys in flight at `hello`: the text keeps `hello` (they would move) or drops it
    (they would end); a test send renders the node for a real subscriber and delivers it
    to their subscription, outside any journey, and writes it to the audit trail."""
    ctx = world.ctx
    audit: list[dict[str, object]] = []
    ctx.audit = audit.extend
    made = world.client.post(
        "/api/subscriptions",
        json={
            "subscription": subscription("me"),
            "attributes": {"plan": "pro", "first_name": "Ana"},
        },
        headers={"authorization": f"Bearer {API_KEY}"},
    ).json()
    tick(ctx, now=datetime.now(UTC))
    world.delivery.requests.clear()
    graphs = ctx.config.graphs
    text = (graphs / "launch.yaml").read_text(encoding="utf-8")
    app = create_studio_app(graphs, context=lambda: ctx)
    with TestClient(app, base_url="http://127.0.0.1:8100") as client:
        body = {"name": "launch.yaml", "text": text}
        counted = client.post("/api/in-flight", json=body).json()
        assert counted["database"] is True and counted["in_flight"] == 1
        assert counted["would_move"] == 1 and counted["would_end"] == 0
        # sent at `hello`, the journey waits there: a text without `hello` would end it
        renamed = text.replace("start: hello", "start: hi").replace("      hello:", "      hi:")
        counted = client.post("/api/in-flight", json={**body, "text": renamed}).json()
        assert counted["would_end"] == 1 and counted["ending_at"] == {"hello": 1}
        sent = client.post(
            "/api/test-send", json={**body, "node": "again", "subscriber": made["id"]}
        )
        assert sent.status_code == 200, sent.text
        assert sent.json()["outcome"] == "delivered"
        (request,) = world.delivery.requests
        assert request.subscriber_id == made["id"] and request.journey_id == 0
        assert json.loads(request.payload)["title"] == "Again"
        assert audit[-1]["type"] == "test_send" and audit[-1]["subscriber"] == made["id"]
        for bad in ({"subscriber": "nobody"}, {"node": "nothing"}, {"subscriber": "a b"}):
            refused = client.post(
                "/api/test-send", json={**body, "node": "again", "subscriber": made["id"], **bad}
            )
            assert refused.status_code == 422, refused.text
    without = create_studio_app(graphs)
    with TestClient(without, base_url="http://127.0.0.1:8100") as client:
        assert client.post("/api/in-flight", json=body).json() == {"database": False}
        refused = client.post(
            "/api/test-send", json={**body, "node": "again", "subscriber": made["id"]}
        )
        assert refused.status_code == 422 and "no database" in refused.json()["detail"]


def test_the_preview_renders_for_a_subscriber_of_the_database(world: World) -> None:
    made = world.client.post(
        "/api/subscriptions",
        json={"subscription": subscription("b"), "attributes": {"plan": "pro", "first_name": "Bo"}},
        headers={"authorization": f"Bearer {API_KEY}"},
    ).json()
    graphs = world.ctx.config.graphs
    body = {
        "name": "launch.yaml",
        "text": (graphs / "launch.yaml").read_text(encoding="utf-8"),
        "node": "hello",
    }
    app = create_studio_app(graphs, context=lambda: world.ctx)
    with TestClient(app, base_url="http://127.0.0.1:8100") as client:
        shown = client.post("/api/preview", json={**body, "subscriber": made["id"]}).json()
        assert shown["fields"]["title"] == "Hi Bo" and shown["sample"]["id"] == made["id"]
        gone = client.post("/api/preview", json={**body, "subscriber": "nobody"})
        assert gone.status_code == 422
        assert client.post("/api/preview", json={**body, "subscriber": 7}).status_code == 422
