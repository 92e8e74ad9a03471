"""Delivery processes: large batches are encrypted and sent by child processes, with every
answer class intact, and a child that dies loses nothing (its sends go again later)."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from orchestrator.app.service import import_subscribers, open_context
from orchestrator.app.ticking import tick
from orchestrator.config import Config, load_config
from orchestrator.delivery import SendRequest
from orchestrator.errors import ConfigurationError
from orchestrator.push.client import ClientSettings
from orchestrator.push.processes import DeliveryProcessError
from orchestrator.push.setup import PROCESSES_FROM, WebPushDelivery
from orchestrator.push.vapid import VapidKey
from orchestrator.store.models import Send
from orchestrator.testing.receiver import Receiver
from tests.conftest import push_request, write_people
from tests.helpers import T0, TICK_CAMPAIGN

SUBJECT = "mailto:ops@example.com"

pytestmark = pytest.mark.slow  # each test starts child processes (about a second each)


def _config(tmp_path: Path, receiver: Receiver, **extra: object) -> Config:
    key_path = tmp_path / "vapid.pem"
    if not key_path.exists():
        VapidKey.generate().save(key_path)
    return Config(
        db=f"sqlite:///{tmp_path / 'c.db'}",
        graphs=tmp_path / "graphs",
        vapid_private_key=str(key_path),
        vapid_subject=SUBJECT,
        push_allowed_origins=(receiver.origin,),
        **extra,  # type: ignore[arg-type]
    )


def _request(send_id: int, sub: dict[str, object]) -> SendRequest:
    return push_request(send_id, sub, payload=json.dumps({"title": f"Hello {send_id}"}).encode())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(seed=3) as r:
        yield r


def test_a_large_batch_is_sent_by_a_child_process_and_decrypts(
    tmp_path: Path, receiver: Receiver
) -> None:
    delivery = WebPushDelivery(_config(tmp_path, receiver, delivery_processes=2))
    subs = [receiver.subscribe() for _ in range(PROCESSES_FROM + 50)]
    try:
        small = delivery.deliver([_request(1000 + i, subs[i]) for i in range(5)])
        assert delivery._pool is None  # a small batch stays in this process
        outcomes = delivery.deliver([_request(i, s) for i, s in enumerate(subs)])
        assert delivery._pool is not None
        pids = delivery._pool.pids()
        assert len(pids) == 2 and os.getpid() not in pids
    finally:
        delivery.close()
    assert {o.outcome for o in small + outcomes} == {"delivered"}
    assert sorted(o.send_id for o in outcomes) == list(range(len(subs)))
    titles = sorted(json.loads(m.payload)["title"] for m in receiver.received())
    assert titles == sorted(
        [f"Hello {1000 + i}" for i in range(5)] + [f"Hello {i}" for i in range(len(subs))]
    )
    assert all(m.vapid_sub == SUBJECT for m in receiver.received())


def test_every_answer_class_comes_back_from_the_child(tmp_path: Path, receiver: Receiver) -> None:
    delivery = WebPushDelivery(
        _config(tmp_path, receiver, delivery_processes=1),
        settings=ClientSettings(attempts=2, backoff_s=0.01),
    )
    subs = [receiver.subscribe() for _ in range(PROCESSES_FROM)]
    gone, big, down = subs[:3]
    receiver.expire(str(gone["endpoint"]))
    receiver.fault(status=413, endpoint=str(big["endpoint"]))
    receiver.fault(status=503, endpoint=str(down["endpoint"]))
    try:
        outcomes = {
            o.send_id: o for o in delivery.deliver([_request(i, s) for i, s in enumerate(subs)])
        }
    finally:
        delivery.close()
    assert (outcomes[0].outcome, outcomes[0].gone_endpoints) == ("gone", (gone["endpoint"],))
    assert (outcomes[1].outcome, outcomes[1].status_code) == ("payload_error", 413)
    assert (outcomes[2].outcome, outcomes[2].status_code) == ("failed", 503)
    assert {outcomes[i].outcome for i in range(3, len(subs))} == {"delivered"}


def test_a_missing_subject_fails_before_any_child_starts(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = _config(tmp_path, receiver, delivery_processes=1)
    config = Config(**{**config.__dict__, "vapid_subject": None})
    delivery = WebPushDelivery(config)
    subs = [receiver.subscribe() for _ in range(PROCESSES_FROM)]
    with pytest.raises(ConfigurationError, match="CAMPAIGN_VAPID_SUBJECT"):
        delivery.submit([_request(i, s) for i, s in enumerate(subs)])
    assert delivery._pool is None and receiver.stats()["requests"] == 0


def test_a_dead_child_fails_its_batch_and_a_later_tick_sends_it_once(tmp_path: Path) -> None:
    """The child is killed while its batch waits on a slow push service: the campaign's
    tick fails (in the report), the batch's sends stay claimed, and the tick after the
    claim grace sends them."""
    with Receiver(seed=4, latency_ms=1500) as receiver:
        config = _config(tmp_path, receiver, delivery_processes=1)
        graphs = tmp_path / "graphs"
        graphs.mkdir()
        (graphs / "launch.yaml").write_text(textwrap.dedent(TICK_CAMPAIGN), encoding="utf-8")
        count = PROCESSES_FROM + 20
        people = write_people(tmp_path / "people.jsonl", receiver, count)
        delivery = WebPushDelivery(config)
        ctx = open_context(config, delivery=delivery)
        try:
            import_subscribers(ctx, people)
            delivery.start()
            assert delivery._pool is not None
            (child,) = delivery._pool.pids()

            pool = delivery._pool

            def kill_soon() -> None:
                deadline = time.monotonic() + 60
                while not any(w.waiting for w in pool._workers) and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(0.4)  # the batch is in the child, waiting on the push service
                os.kill(child, signal.SIGKILL)

            import threading

            threading.Thread(target=kill_soon, daemon=True).start()
            failed = tick(ctx, now=T0, batch_size=1000)  # reported, not raised
            assert isinstance(failed.errors["launch"], DeliveryProcessError)
            assert failed.failed["launch"].startswith("DeliveryProcessError: ")
            with ctx.session() as s:
                claimed = s.execute(
                    select(func.count()).select_from(Send).where(Send.outcome == "claimed")
                ).scalar()
            assert claimed == count
            receiver.latency_ms = 0
            report = tick(ctx, now=T0 + timedelta(minutes=11), batch_size=1000)
            assert report.campaigns[0].resent == count
            assert pool.pids() != [child]  # a fresh child took over
            with ctx.session() as s:
                rows = s.execute(select(Send.journey_id, Send.step, Send.outcome)).all()
            assert len(rows) == count == len({(j, st) for j, st, _ in rows})
            assert {o for _, _, o in rows} == {"delivered"}
            # at most the killed batch's pushes were seen twice, and each replaces by Topic
            assert receiver.stats()["distinct"] == count
        finally:
            delivery.close()
            ctx.engine.dispose()


def test_the_number_of_delivery_processes_is_configurable() -> None:
    assert load_config({}, dotenv=None).delivery_processes is None
    assert (
        load_config({"CAMPAIGN_DELIVERY_PROCESSES": "auto"}, dotenv=None).delivery_processes is None
    )
    assert load_config({"CAMPAIGN_DELIVERY_PROCESSES": "0"}, dotenv=None).delivery_processes == 0
    assert load_config({"CAMPAIGN_DELIVERY_PROCESSES": "3"}, dotenv=None).delivery_processes == 3
    for bad in ("two", "-1", "65"):
        with pytest.raises(ConfigurationError, match="CAMPAIGN_DELIVERY_PROCESSES"):
            load_config({"CAMPAIGN_DELIVERY_PROCESSES": bad}, dotenv=None)


def test_a_child_whose_tick_is_killed_finishes_its_batch_and_exits(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    with Receiver(seed=5, latency_ms=1500) as receiver:
        subs = [receiver.subscribe() for _ in range(PROCESSES_FROM + 10)]
        (tmp_path / "subs.json").write_text(json.dumps(subs))
        key = tmp_path / "vapid.pem"
        VapidKey.generate().save(key)
        parent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.push.orphaned_delivery",
                str(tmp_path / "subs.json"),
                str(key),
                receiver.origin,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        time.sleep(0.5)  # the batch is in the child, waiting on the push service
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Path(f"/proc/{child}").exists():
            if Path(f"/proc/{child}/stat").read_text().split(")")[1].split()[0] == "Z":
                break  # exited, not yet reaped by init
            time.sleep(0.1)
        exited = not Path(f"/proc/{child}").exists() or (
            Path(f"/proc/{child}/stat").read_text().split(")")[1].split()[0] == "Z"
        )
        assert exited, "the delivery process outlived its tick"
        assert receiver.stats()["delivered"] == len(subs)  # it finished what it held
