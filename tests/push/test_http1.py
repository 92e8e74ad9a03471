"""The lean HTTP/1.1 client against a raw socket server that answers with crafted bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from orchestrator.push.http1 import Http1Client, ProtocolError

Answer = Callable[[int], bytes]  # request number on the connection -> raw response


async def _serve(
    answer: Answer, *, close_after: int | None = None
) -> tuple[asyncio.Server, str, list[bytes]]:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(
                    next(
                        line.split(b":")[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                )
                body = await reader.readexactly(length)
                seen.append(head + body)
                writer.write(answer(n))
                await writer.drain()
                n += 1
                if close_after is not None and n >= close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/push/abc?x=1", seen


def _run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_content_length_answers_reuse_one_connection() -> None:
    async def go() -> None:
        server, url, seen = await _serve(
            lambda n: b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nLocation: /m/1\r\n\r\n"
        )
        client = Http1Client()
        first = await client.post(url, b"abc", {"TTL": "60"})
        second = await client.post(url, b"defg", {"TTL": "60"})
        assert (first.status, second.status, first.headers["location"]) == (201, 201, "/m/1")
        assert seen[0].startswith(b"POST /push/abc?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
        assert (
            seen[0].endswith(b"\r\n\r\nabc")
            and b"Content-Length: 3" in seen[0]
            and b"TTL: 60" in seen[0]
        )
        assert len(seen) == 2
        await client.aclose()
        server.close()

    _run(go())


def test_chunked_bodies_are_read_whole() -> None:
    chunked = b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"

    async def go() -> None:
        server, url, _ = await _serve(lambda n: chunked)
        client = Http1Client()
        answer = await client.post(url, b"x", {})
        assert (answer.status, answer.body) == (400, b"hello world")
        await client.aclose()
        server.close()

    _run(go())


def test_a_connection_the_server_closed_is_replaced_transparently() -> None:
    async def go() -> None:
        server, url, seen = await _serve(
            lambda n: b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", close_after=1
        )
        client = Http1Client()
        for _ in range(3):
            assert (await client.post(url, b"x", {})).status == 201
            await asyncio.sleep(0.05)  # let the server's close arrive
        assert len(seen) == 3
        await client.aclose()
        server.close()

    _run(go())


def test_garbage_is_a_protocol_error() -> None:
    async def go() -> None:
        server, url, _ = await _serve(lambda n: b"SPDY/9 what\r\n\r\n")
        client = Http1Client()
        with pytest.raises(ProtocolError):
            await client.post(url, b"x", {})
        await client.aclose()
        server.close()

    _run(go())


def test_a_silent_server_times_out() -> None:
    async def go() -> None:
        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(5)

        server = await asyncio.start_server(mute, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = Http1Client(timeout_s=0.3)
        with pytest.raises(asyncio.TimeoutError):
            await client.post(f"http://127.0.0.1:{port}/p", b"x", {})
        await client.aclose()
        server.close()

    _run(go())
