"""Shared test helpers: write campaign YAML into a temporary folder and load it."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from orchestrator.language import loader
from orchestrator.testing.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: F401  (shared)

ROOT = Path(__file__).resolve().parent.parent
SPEC_DIR = ROOT.parent / "shared" / "spec"


@pytest.fixture
def load_yaml(tmp_path: Path) -> Callable[..., loader.LoadedCampaign]:
    """load_yaml(text, name="c.yaml", **extra_files) -> LoadedCampaign"""

    def _load(text: str, name: str = "c.yaml", **files: str) -> loader.LoadedCampaign:
        for rel, body in files.items():
            target = tmp_path / rel.replace("__", "/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(body), encoding="utf-8")
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return loader.load(path)

    return _load


# ------------------------------------------------------------------ databases

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _pg_available() -> bool:
    import psycopg

    try:
        with psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=3
        ):
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def pg_schema() -> Iterator[str]:
    """A private schema on the local PostgreSQL, dropped afterwards; skips (fails in CI) if down."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is not reachable (CI must start it)")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not reachable")
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True
    ) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True
        ) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


# The fast tier (`make test-fast`) runs storage tests on SQLite; `make test` on both.
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database: a SQLite file, or a private schema on the local PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    with pg_schema() as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg_schema() as url:
        yield url


# ------------------------------------------------------------------ pushes and people


def push_request(send_id: int, *subs: Any, payload: bytes = b'{"title":"Hi"}') -> Any:
    """A SendRequest for `send_id` to these subscriptions (`Target`s, or subscription JSON as
    a browser gives it): TTL 2 h, urgency high, Topic `topic{send_id}`."""
    from datetime import timedelta

    from orchestrator.delivery import SendRequest, Target

    targets = tuple(
        s
        if isinstance(s, Target)
        else Target(str(s["endpoint"]), str(s["keys"]["p256dh"]), str(s["keys"]["auth"]))
        for s in subs
    )
    return SendRequest(
        send_id=send_id,
        journey_id=send_id,
        step=1,
        campaign="c",
        node="n",
        subscriber_id="s",
        payload=payload,
        targets=targets,
        ttl=timedelta(hours=2),
        urgency="high",
        topic=f"topic{send_id}",
    )


def write_people(path: Path, receiver: Any, people: int) -> Path:
    """An import file of `people` pro-plan subscribers p0, p1, … with subscriptions on `receiver`."""
    path.write_text(
        "\n".join(
            json.dumps(
                {
                    "id": f"p{i}",
                    "attributes": {"plan": "pro", "name": f"P{i}"},
                    "subscription": receiver.subscribe(),
                }
            )
            for i in range(people)
        )
        + "\n"
    )
    return path


def p256dh_key() -> str:
    """A fresh P-256 public key as a browser's subscription gives it (base64url, no padding)."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return base64.urlsafe_b64encode(point).decode().rstrip("=")


def subscriber_line(sid: str, **attributes: object) -> str:
    """An import line: subscriber `sid` with these attributes and one FCM subscription."""
    import base64

    sub = {
        "endpoint": f"https://fcm.googleapis.com/fcm/send/{sid}",
        "keys": {
            "p256dh": p256dh_key(),
            "auth": base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("="),
        },
    }
    return json.dumps({"id": sid, "attributes": attributes, "subscription": sub})


def flowchart_pictures(markdown: str) -> dict[str, dict[str, list[str]]]:
    """The flowchart artifact's pictures: sub-campaign -> node id -> the texts drawn in
    that node (each picture is a `data:image/svg+xml;base64` image of our SVG)."""
    import base64
    import re
    import xml.etree.ElementTree as ET

    ns = "{http://www.w3.org/2000/svg}"
    out: dict[str, dict[str, list[str]]] = {}
    for name, data in re.findall(
        r"!\[([^\]]*) flowchart\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", markdown
    ):
        root = ET.fromstring(base64.b64decode(data))
        out[name] = {
            g.get("data-node", ""): [t.text or "" for t in g.iter(f"{ns}text")]
            for g in root.iter(f"{ns}g")
            if g.get("data-node") and not g.get("data-node", "").startswith("end:")
        }
    return out


# ------------------------------------------------------------------ a world for subprocesses


def campaign_world(
    tmp_path: Path, receiver: Any, *, db: str, people: int, campaign: str | None = None
) -> dict[str, str]:
    """A campaign file (default: test_ticking's `launch`), a VAPID key, `people` subscribers
    with subscriptions on `receiver` imported into `db`; returns the environment that
    `campaign` commands (or Prefect workers) run with."""
    from orchestrator.push.vapid import VapidKey
    from tests.helpers import TICK_CAMPAIGN

    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "launch.yaml").write_text(
        textwrap.dedent(campaign or TICK_CAMPAIGN), encoding="utf-8"
    )
    key = VapidKey.generate()
    key.save(tmp_path / "vapid.pem")
    lines = write_people(tmp_path / "people.jsonl", receiver, people)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "CAMPAIGN_GRAPHS": str(graphs),
        "CAMPAIGN_DB": db,
        "CAMPAIGN_VAPID_PRIVATE_KEY": str(tmp_path / "vapid.pem"),
        "CAMPAIGN_VAPID_SUBJECT": "mailto:ops@example.com",
        "CAMPAIGN_PUSH_ALLOWED_ORIGINS": receiver.origin,
        # random, so a scan for them (test_prefect_server) cannot match by accident
        "CAMPAIGN_SECRET": secrets.token_urlsafe(32),
        "CAMPAIGN_API_KEY": secrets.token_urlsafe(32),
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "campaign"), "subscribers", "import", str(lines)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return env


def secret_forms(env: dict[str, str]) -> dict[str, str]:
    """Each secret of a `campaign_world` environment in every form it could leak in:
    the API key, the HMAC secret, the VAPID private key's PEM body and its raw scalar
    (base64url and hex)."""
    import base64

    from cryptography.hazmat.primitives import serialization

    pem = Path(env["CAMPAIGN_VAPID_PRIVATE_KEY"]).read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    scalar = key.private_numbers().private_value.to_bytes(32, "big")  # type: ignore[union-attr]
    body = "".join(line for line in pem.decode().splitlines() if "-----" not in line)
    forms = {
        "api key": env["CAMPAIGN_API_KEY"],
        "hmac secret": env["CAMPAIGN_SECRET"],
        "vapid scalar (base64url)": base64.urlsafe_b64encode(scalar).decode().rstrip("="),
        "vapid scalar (hex)": scalar.hex(),
    }
    for i in range(0, len(body) - 24, 24):  # any 24-character stretch of the PEM body
        forms[f"vapid pem [{i}:{i + 24}]"] = body[i : i + 24]
    return forms


def assert_no_secret(where: str, blob: bytes | str, forms: dict[str, str]) -> None:
    text = blob.decode("utf-8", "replace") if isinstance(blob, bytes) else blob
    leaked = [name for name, value in forms.items() if value in text]
    assert not leaked, f"{', '.join(leaked)} found in {where}"


SLOW_FOLDERS = frozenset({"browser", "integration", "bench"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/browser, tests/integration and tests/bench is `slow`:
    `make test-fast` (`-m "not slow"`) leaves them out. A slow test elsewhere says so itself."""
    here = Path(__file__).parent
    for item in items:
        parts = item.path.relative_to(here).parts
        if parts and parts[0] in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)
