"""The dashboard's opt-in chart counts an imported population, and the table under it
splits opt-ins and opt-outs by source."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.app.service import import_subscribers
from tests.conftest import subscriber_line
from tests.helpers import API_KEY, PASSWORD, subscription
from tests.web.conftest import World


def test_the_dashboard_shows_imported_opt_ins_and_the_split_by_source(
    world: World, tmp_path: Path
) -> None:
    people = tmp_path / "people.jsonl"
    people.write_text("".join(subscriber_line(f"p{i}") + "\n" for i in range(3)))
    assert import_subscribers(world.ctx, people).added == 3
    assert import_subscribers(world.ctx, people).added == 0
    auth = {"authorization": f"Bearer {API_KEY}"}
    body = {"subscription": subscription("web-1"), "id": "web-1"}
    assert world.client.post("/api/subscriptions", json=body, headers=auth).status_code == 201
    assert world.client.post("/api/subscriptions", json=body, headers=auth).status_code == 200
    gone = {"endpoint": subscription("web-1")["endpoint"]}
    assert world.client.request("DELETE", "/api/subscriptions", json=gone, headers=auth).json() == {
        "removed": True
    }
    world.client.post("/login", data={"password": PASSWORD, "next": "/"})
    page = world.client.get("/")
    assert page.status_code == 200
    assert "Opt-ins and opt-outs per day" in page.text and "nobody subscribed" not in page.text
    table = page.text.split('id="opt-in-sources"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(
        r'<tr><td>([^<]+)</td><td class="n">([\d,]+)</td><td class="n">([\d,]+)</td></tr>', table
    )
    assert rows == [("import", "3", "0"), ("api", "1", "1")]
