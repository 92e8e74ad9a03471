"""The service's outer wall, as plain ASGI middleware (no per-request task or copy):

- request bodies are bounded: a declared Content-Length over MAX_BODY is answered
  413 before a byte of the body is read, and a body without one (chunked) is counted
  while it streams, so no request can make the service hold more than MAX_BODY;
- every response carries the headers a page with personal data needs: no caching
  (`Cache-Control: no-store` unless the route chose its own), no framing
  (`X-Frame-Options: DENY`, CSP `frame-ancestors 'none'`), a Content Security Policy
  that allows only this origin's scripts, no referrer (`Referrer-Policy: no-referrer`:
  a profile link in the address bar never leaks to the sites a page links to) and
  `X-Content-Type-Options: nosniff`. The API explorer (`/docs`, `/redoc`) keeps
  FastAPI's own page, which needs inline script;
- request heads are bounded: `campaign serve` runs uvicorn with `BoundedHttpTools`,
  which answers 431 to a request line and headers over MAX_HEAD bytes.
"""

from __future__ import annotations

import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from orchestrator.errors import CampaignError

MAX_BODY = 1_048_576

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_ALWAYS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
_EXPLORER = ("/docs", "/redoc")
# added to every answer unless the route set its own (a route's Cache-Control wins)
_HEADERS = [
    *_ALWAYS,
    (b"cache-control", b"no-store"),
    (b"content-security-policy", CSP.encode()),
]
_EXPLORER_HEADERS = [*_ALWAYS, (b"cache-control", b"no-store")]


class BodyTooLarge(CampaignError):
    """A request body passed MAX_BODY while it was being read (answered 413)."""


class Guard:
    """Wraps the app: body limit and security headers (see the module's docstring)."""

    def __init__(self, app: Any, *, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            await _too_large(send, self.max_body)
            return
        path: str = scope.get("path", "")
        extra = _EXPLORER_HEADERS if path.startswith(_EXPLORER) else _HEADERS
        names = {name for name, _ in extra}

        async def guarded_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                own = {name.lower() for name, _ in headers} & names
                headers.extend(h for h in extra if h[0] not in own)
                message = {**message, "headers": headers}
            await send(message)

        if declared is not None:  # the server never passes on more than was declared
            await self.app(scope, receive, guarded_send)
            return
        seen = 0
        limit = self.max_body

        async def bounded_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(f"body larger than {limit:,} bytes")
            return message

        await self.app(scope, bounded_receive, guarded_send)


def _content_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Any, limit: int) -> None:
    body = json.dumps({"detail": f"body larger than {limit:,} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                (b"cache-control", b"no-store"),
                *_ALWAYS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# ------------------------------------------------------------------ request heads

MAX_HEAD = 65_536  # request line and headers


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head (request line and headers)
    over MAX_HEAD bytes with 431 and closing the connection. The head is measured as it
    arrives, before the parser sees it (the parser would keep a header of any length):
    at most MAX_HEAD bytes of a head are ever held."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_head = True
        self._tail = b""  # the last bytes of the head so far (its end may straddle reads)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            seen = self._tail + data
            end = seen.find(b"\r\n\r\n")
            part = len(data) if end < 0 else max(end + 4 - len(self._tail), 0)
            if self._head_bytes + part > MAX_HEAD:
                self._refuse()
                return
            self._head_bytes += part
            self._tail = seen[-3:]
        super().data_received(data)

    def _refuse(self) -> None:
        body = f"request head larger than {MAX_HEAD:,} bytes".encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self.transport.close()
        self._in_head = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True  # counted from where the last head ended

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._tail = b""
        super().on_headers_complete()
