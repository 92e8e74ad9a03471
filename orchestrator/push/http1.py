"""A small HTTP/1.1 client for one job: POST a push message, read the answer; HTTP/2
where the push service offers it.

Persistent keep-alive connections per origin (TLS for https), one request per
connection at a time, responses with Content-Length or chunked bodies. It is
the delivery hot path because it costs a fraction of a general client's CPU
per request (`campaign bench` compares the delivery legs); anything unexpected on the wire closes the
connection and is reported as a network error, which the caller retries.

TLS connections offer `h2` and `http/1.1` by ALPN. An origin whose push service
picks `h2` is sent to from then on by httpx with HTTP/2 (one multiplexed
connection, the same per-origin bound); the others stay on HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from orchestrator.errors import DeliveryError

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024


class ProtocolError(DeliveryError):
    """The server's answer was not HTTP/1.1 we understand."""


class RequestError(DeliveryError, ValueError):
    """The request cannot be written: its URL or a header is not printable ASCII (nothing
    is sent; the caller treats it as this request's own error, not the connection's)."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class _Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.reusable = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiter is None or self._waiter.done():
            if len(self._buffer) > MAX_HEAD:
                self.close()
            return
        try:
            response = self._parse()
        except ProtocolError as exc:
            self._waiter.set_exception(exc)
            self.close()
            return
        if response is not None:
            self._waiter.set_result(response)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(
                ConnectionResetError("connection closed by the push service")
            )

    # requests
    async def request(self, data: bytes) -> Response:
        assert self.transport is not None
        self._waiter = self._loop.create_future()
        self._buffer.clear()
        self.transport.write(data)
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _parse(self) -> Response | None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD:
                raise ProtocolError("response head too large")
            return None
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        parts = head[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {head[0][:80]!r}")
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError("malformed header line")
            headers[name.strip().lower()] = value.strip()
        body = self._body(headers, end + 4)
        if body is None:
            return None
        if headers.get("connection", "").lower() == "close" or parts[0] == "HTTP/1.0":
            self.reusable = False
        return Response(int(parts[1]), headers, body)

    def _body(self, headers: dict[str, str], start: int) -> bytes | None:
        data = self._buffer
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return _dechunk(data, start)
        length_text = headers.get("content-length")
        if length_text is None:
            raise ProtocolError("a response without Content-Length or chunked encoding")
        if not length_text.isdigit() or int(length_text) > MAX_BODY:
            raise ProtocolError("bad Content-Length")
        length = int(length_text)
        if len(data) - start < length:
            return None
        return bytes(data[start : start + length])


def _dechunk(data: bytearray, start: int) -> bytes | None:
    out = bytearray()
    pos = start
    while True:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size_text = bytes(data[pos:line_end]).split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError("bad chunk size") from None
        if size == 0:  # last chunk, then optional trailers and an empty line
            return bytes(out) if data.find(b"\r\n\r\n", line_end) >= 0 else None
        chunk_start = line_end + 2
        if len(data) < chunk_start + size + 2:
            return None
        out += data[chunk_start : chunk_start + size]
        if len(out) > MAX_BODY:
            raise ProtocolError("response body too large")
        pos = chunk_start + size + 2


@dataclass
class _Pool:
    host: str
    port: int
    tls: bool
    limit: asyncio.Semaphore
    idle: deque[_Connection] = field(default_factory=deque)
    h2: bool = False  # the push service picked HTTP/2 by ALPN


class _OffersH2(Exception):
    """The TLS handshake chose h2: this origin is sent to over HTTP/2."""


class Http1Client:
    """POST over pooled keep-alive connections; `limit_per_origin` requests at once per
    origin at most. `ca_file`: trust this CA bundle instead of the system's."""

    def __init__(
        self, *, limit_per_origin: int = 256, timeout_s: float = 10.0, ca_file: str | None = None
    ) -> None:
        self._pools: dict[str, _Pool] = {}
        self._limit = limit_per_origin
        self._timeout = timeout_s
        self._ca_file = ca_file
        self._tls = ssl.create_default_context(cafile=ca_file)
        self._tls.set_alpn_protocols(["h2", "http/1.1"])
        self._h2: httpx.AsyncClient | None = None

    def _pool(self, url: str) -> tuple[_Pool, str, str]:
        parts = urlsplit(url)
        tls = parts.scheme == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if tls else 80)
        key = f"{parts.scheme}://{host}:{port}"
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(host, port, tls, asyncio.Semaphore(self._limit))
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        host_header = host if (port == (443 if tls else 80)) else f"{host}:{port}"
        if ":" in host and not host.startswith("["):
            host_header = f"[{host}]" if port == (443 if tls else 80) else f"[{host}]:{port}"
        return pool, path, host_header

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Response:
        if not (url.isascii() and url.isprintable()) or " " in url:
            raise RequestError("the URL is not printable ASCII without spaces")
        pool, path, host_header = self._pool(url)
        lines = [f"POST {path} HTTP/1.1", f"Host: {host_header}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        head = "\r\n".join(lines)
        if not (head.isascii() and "".join(lines).isprintable()):
            raise RequestError("a header is not printable ASCII")
        data = (head + "\r\n\r\n").encode("ascii") + body
        if not pool.h2:
            try:
                async with pool.limit, asyncio.timeout(self._timeout):  # no extra task per request
                    return await self._send(pool, data)
            except _OffersH2:  # the handshake picked h2: this and later requests go below
                pool.h2 = True
        async with pool.limit:
            return await self._post_h2(url, body, headers)

    async def _post_h2(self, url: str, body: bytes, headers: dict[str, str]) -> Response:
        if self._h2 is None:
            tls = ssl.create_default_context(cafile=self._ca_file)  # httpx sets its own ALPN
            self._h2 = httpx.AsyncClient(
                http1=False,
                http2=True,
                verify=tls,
                timeout=self._timeout,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
            )
        try:
            answer = await self._h2.post(url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise TimeoutError(str(exc) or "HTTP/2 request timed out") from None
        except httpx.HTTPError as exc:
            raise ConnectionResetError(f"HTTP/2: {type(exc).__name__}: {exc}") from None
        return Response(
            answer.status_code,
            {name.lower(): value for name, value in answer.headers.items()},
            answer.content[:MAX_BODY],
        )

    async def _send(self, pool: _Pool, data: bytes) -> Response:
        reused = False
        while pool.idle:
            conn = pool.idle.pop()
            if not conn.closed:
                reused = True
                break
        else:
            conn = await self._connect(pool)
        try:
            response = await conn.request(data)
        except ConnectionResetError:
            if not reused:
                raise
            conn = await self._connect(pool)  # a stale keep-alive connection: once more, fresh
            response = await conn.request(data)
        except BaseException:
            conn.close()
            raise
        if conn.reusable and not conn.closed:
            pool.idle.append(conn)
        else:
            conn.close()
        return response

    async def _connect(self, pool: _Pool) -> _Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: _Connection(loop),
            pool.host,
            pool.port,
            ssl=self._tls if pool.tls else None,
            server_hostname=pool.host if pool.tls else None,
        )
        if pool.tls and protocol.transport is not None:
            tls = protocol.transport.get_extra_info("ssl_object")
            if tls is not None and tls.selected_alpn_protocol() == "h2":
                protocol.close()
                raise _OffersH2
        return protocol

    async def aclose(self) -> None:
        for pool in self._pools.values():
            while pool.idle:
                pool.idle.pop().close()
        if self._h2 is not None:
            await self._h2.aclose()
            self._h2 = None
