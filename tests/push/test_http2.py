"""HTTP/2 where the push service offers it: a TLS push service that speaks only h2 (the
`h2` library on asyncio, a self-signed certificate) gets our encrypted, VAPID-signed
pushes over HTTP/2, and its answers are classified as on HTTP/1.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from orchestrator.delivery import SendRequest, Target
from orchestrator.push.client import ClientSettings, PushClient
from orchestrator.push.vapid import TokenCache, VapidKey
from orchestrator.testing.receiver import b64url_encode, decrypt
from tests.conftest import push_request

SUBJECT = "mailto:ops@example.com"


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class H2PushService:
    """Answers every POST with `status` (201 by default) over HTTP/2 only; keeps what it got."""

    cert: Path
    key: Path
    status: int = 201
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    protocols: list[str] = field(default_factory=list)
    port: int = 0

    def __enter__(self) -> H2PushService:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def start() -> None:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(self.cert, self.key)
            tls.set_alpn_protocols(["h2"])
            self._server = await self._loop.create_server(
                lambda: _H2Protocol(self), "127.0.0.1", 0, ssl=tls
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()

        self._thread = threading.Thread(
            target=lambda: (self._loop.run_until_complete(start()), self._loop.run_forever()),
            daemon=True,
        )
        self._thread.start()
        assert ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"


class _H2Protocol(asyncio.Protocol):
    def __init__(self, service: H2PushService) -> None:
        self.service = service
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        self.streams: dict[int, tuple[dict[str, str], bytearray]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        tls = transport.get_extra_info("ssl_object")
        self.service.protocols.append(tls.selected_alpn_protocol() if tls else "none")
        self.conn.initiate_connection()
        transport.write(self.conn.data_to_send())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                headers = {
                    (k.decode() if isinstance(k, bytes) else k): (
                        v.decode() if isinstance(v, bytes) else v
                    )
                    for k, v in event.headers
                }
                self.streams[event.stream_id] = (headers, bytearray())
            elif isinstance(event, h2.events.DataReceived):
                self.streams[event.stream_id][1].extend(event.data)
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                headers, body = self.streams.pop(event.stream_id)
                self.service.received.append((headers, bytes(body)))
                self.conn.send_headers(
                    event.stream_id,
                    [(":status", str(self.service.status)), ("content-length", "0")],
                    end_stream=True,
                )
        self.transport.write(self.conn.data_to_send())  # type: ignore[attr-defined]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[H2PushService]:
    cert, key = _certificate(tmp_path)
    with H2PushService(cert, key) as s:
        yield s


def _subscription(origin: str, n: int) -> tuple[Target, ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return Target(f"{origin}/push/s{n}", b64url_encode(point), b64url_encode(auth)), key, auth


def _request(n: int, target: Target) -> SendRequest:
    return push_request(n, target, payload=f'{{"title":"over h2 {n}"}}'.encode())


def test_a_push_service_that_offers_h2_gets_our_pushes_over_http2(
    service: H2PushService,
) -> None:
    subs = [_subscription(service.origin, n) for n in range(21)]
    client = PushClient(
        tokens=TokenCache(key=VapidKey.generate(), subject=SUBJECT),
        allowed_origins=(service.origin,),
        settings=ClientSettings(ca_file=str(service.cert)),
    )
    try:
        outcomes = client.deliver([_request(n, t) for n, (t, _, _) in enumerate(subs[:20])])
        more = client.deliver([_request(20, subs[20][0])])  # the origin stays on HTTP/2
    finally:
        client.close()
    assert {(o.outcome, o.status_code) for o in outcomes + more} == {("delivered", 201)}
    assert set(service.protocols) == {"h2"}
    assert len(service.received) == 21
    by_path = {h[":path"]: (h, body) for h, body in service.received}
    for n, (_, key, auth) in enumerate(subs):
        headers, body = by_path[f"/push/s{n}"]
        assert headers[":method"] == "POST"
        assert headers["ttl"] == "7200" and headers["urgency"] == "high"
        assert headers["topic"] == f"topic{n}" and headers["content-encoding"] == "aes128gcm"
        assert headers["authorization"].startswith("vapid t=")
        plain = decrypt(body, private_key=key, auth_secret=auth)
        assert plain == f'{{"title":"over h2 {n}"}}'.encode()


def test_answers_over_http2_are_classified_like_any_other(service: H2PushService) -> None:
    service.status = 410
    target, _, _ = _subscription(service.origin, 1)
    client = PushClient(
        tokens=TokenCache(key=VapidKey.generate(), subject=SUBJECT),
        allowed_origins=(service.origin,),
        settings=ClientSettings(ca_file=str(service.cert)),
    )
    try:
        (gone,) = client.deliver([_request(1, target)])
        service.status = 503
        (failed,) = client.deliver([_request(2, target)])
    finally:
        client.close()
    assert (gone.outcome, gone.status_code, gone.gone_endpoints) == (
        "gone",
        410,
        (target.endpoint,),
    )
    assert (failed.outcome, failed.status_code) == ("failed", 503)


def test_a_certificate_we_do_not_trust_is_a_network_error_not_a_send(
    service: H2PushService,
) -> None:
    target, _, _ = _subscription(service.origin, 1)
    client = PushClient(
        tokens=TokenCache(key=VapidKey.generate(), subject=SUBJECT),
        allowed_origins=(service.origin,),
        settings=ClientSettings(attempts=1),  # the system's CAs only
    )
    try:
        (outcome,) = client.deliver([_request(1, target)])
    finally:
        client.close()
    assert outcome.outcome == "failed" and "SSL" in (outcome.detail or "")
    assert service.received == []


def test_a_tls_push_service_without_h2_keeps_http1(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    seen: list[bytes] = []
    ready, stop = threading.Event(), threading.Event()
    port = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tls = writer.get_extra_info("ssl_object")
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            seen.append(
                head.split(b"\r\n")[0] + b" " + (tls.selected_alpn_protocol() or "").encode()
            )
            writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        writer.close()

    def serve() -> None:
        async def main() -> None:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(cert, key)
            tls.set_alpn_protocols(["http/1.1"])
            server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
            port[0] = server.sockets[0].getsockname()[1]
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)
            server.close()

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    origin = f"https://127.0.0.1:{port[0]}"
    target, _, _ = _subscription(origin, 1)
    client = PushClient(
        tokens=TokenCache(key=VapidKey.generate(), subject=SUBJECT),
        allowed_origins=(origin,),
        settings=ClientSettings(ca_file=str(cert)),
    )
    try:
        outcomes = client.deliver([_request(n, target) for n in range(3)])
    finally:
        client.close()
        stop.set()
        thread.join(10)
    assert {(o.outcome, o.status_code) for o in outcomes} == {("delivered", 201)}
    assert seen == [b"POST /push/s1 HTTP/1.1 http/1.1"] * 3
