"""URLs that come from outside: push endpoints (where we send) and click destinations
(where a click link redirects).

Both are normalised the same way — the host IDNA-encoded, any other non-ASCII
character percent-encoded as UTF-8 — and refused when what is left is not plain
printable ASCII of bounded length. A push endpoint must also be an allowed origin
(`origin_allowed`); a click destination must be absolute http(s). Each check
raises `UrlError` with a message that says what is wrong, without the caller's
field name (the caller adds where).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from functools import lru_cache
from urllib.parse import quote, urlsplit, urlunsplit

import idna

from orchestrator.errors import CampaignError

MAX_URL = 2048
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")

# C0 controls, space, DEL, C1 controls, and the Unicode line and paragraph separators
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f-\x9f\u2028\u2029\s]")
# every printable ASCII character but space: kept as is by the percent-encoding
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


class UrlError(CampaignError, ValueError):
    """A URL refused; the message says why."""


def normalise(url: object, *, what: str = "URL") -> str:
    """`url` as plain ASCII: the host IDNA-encoded and lower-cased, other non-ASCII
    characters percent-encoded, percent-escapes in one form, no dot segments. Raises
    UrlError when it cannot be. (A tick checks the same few URLs again and again: the
    answers for text are remembered.)"""
    if isinstance(url, str) and len(url) <= MAX_URL:
        return _normalised(url, what)
    return _normalise(url, what)


@lru_cache(maxsize=8192)
def _normalised(url: str, what: str) -> str:
    return _normalise(url, what)


def _normalise(url: object, what: str) -> str:
    if not isinstance(url, str) or not url:
        raise UrlError(f"expected a {what} (text)")
    if len(url) > MAX_URL:
        raise UrlError(f"{what} longer than {MAX_URL:,} characters")
    bad = _FORBIDDEN.search(url)
    if bad:
        raise UrlError(f"{what} contains {_describe(bad.group())} at character {bad.start() + 1}")
    if "\\" in url:
        raise UrlError(f"{what} contains a backslash")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlError(f"{what} is not a valid URL ({exc})") from None
    if not parts.scheme or not parts.netloc:
        raise UrlError(f"{what} must be absolute (scheme://host/…)")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UrlError(f"{what} must not carry a user name or password")
    host = parts.hostname or ""
    if not host:
        raise UrlError(f"{what} has no host")
    if host.startswith("[") or ":" in host:
        try:
            ipaddress.IPv6Address(host.strip("[]"))
        except ValueError:
            raise UrlError(f"{what} has an invalid IPv6 host") from None
        ascii_host = f"[{host.strip('[]').lower()}]"
    elif host.isascii():
        ascii_host = host.lower()
        if not re.fullmatch(r"[a-z0-9._-]+", ascii_host):
            raise UrlError(f"{what} host {host!r} has characters a host name cannot have")
    else:
        try:
            ascii_host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise UrlError(
                f"{what} host is not a valid international domain name ({exc})"
            ) from None
    netloc = ascii_host + (f":{port}" if port is not None else "")
    try:
        path, query, fragment = (
            _escapes(part if part.isascii() else quote(part, safe=_SAFE), what)
            for part in (parts.path, parts.query, parts.fragment)
        )
    except UnicodeEncodeError:
        raise UrlError(f"{what} contains a lone surrogate (not valid Unicode)") from None
    out = urlunsplit((parts.scheme.lower(), netloc, _without_dots(path), query, fragment))
    if len(out) > MAX_URL:
        raise UrlError(f"{what} longer than {MAX_URL:,} characters once encoded")
    return out


_ESCAPE = re.compile(r"%(..)?", re.DOTALL)
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _escapes(text: str, what: str) -> str:
    """Percent-escapes in one form (RFC 3986 6.2.2): an unreserved character written as an
    escape is written plainly, other escapes in upper case; a `%` not followed by two
    hex digits is refused."""

    def one(match: re.Match[str]) -> str:
        digits = match.group(1) or ""
        if len(digits) != 2 or not all(c in "0123456789abcdefABCDEF" for c in digits):
            raise UrlError(f"{what} has a % that is not followed by two hex digits")
        char = chr(int(digits, 16))
        return char if char in _UNRESERVED else f"%{digits.upper()}"

    return _ESCAPE.sub(one, text) if "%" in text else text


def _without_dots(path: str) -> str:
    """The path with `.` and `..` segments resolved (RFC 3986 5.2.4): `/a/./b/../c` is
    `/a/c`, so one resource has one name."""
    if "." not in path:
        return path
    out: list[str] = []
    segments = path.split("/")
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == ".":
            if last:
                out.append("")
        elif segment == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/".join(out) if out != [""] else "/"


def _describe(char: str) -> str:
    code = ord(char)
    if code == 0:
        return "a NUL character"
    if char == " ":
        return "a space"
    if char.isspace():
        return f"white space (U+{code:04X})"
    return f"a control character (U+{code:04X})"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def origin_allowed(endpoint: str, allowed: tuple[str, ...]) -> bool:
    """An endpoint is allowed when its origin matches one of the configured origins or patterns.

    https is required, except for loopback origins that are configured explicitly
    (a local push service for tests and the demo). IP literals other than
    loopback never match: a subscription can't point the sender at an internal address.
    """
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if not host or parts.username or parts.password:
        return False
    return _origin_ok(parts.scheme, host, port, allowed)


@lru_cache(maxsize=1024)
def _origin_ok(scheme: str, host: str, port: int | None, allowed: tuple[str, ...]) -> bool:
    loopback = host in LOOPBACK_HOSTS
    if not loopback and _is_ip(host):
        return False
    if scheme != "https" and not (scheme == "http" and loopback):
        return False
    shown = f"[{host}]" if ":" in host else host
    origin = f"{scheme}://{shown}{f':{port}' if port else ''}".lower()
    for pattern in allowed:
        p = pattern.strip().lower().rstrip("/")
        if not p:
            continue
        if "://" not in p:
            p = "https://" + p
        if origin == p or (("*" in p) and fnmatch.fnmatchcase(origin, p)):
            return True
    return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def push_endpoint(url: object, allowed: tuple[str, ...]) -> str:
    """A push endpoint we may send to: normalised, absolute https (or http to an
    explicitly allowed loopback origin), no fragment, on an allowed origin."""
    endpoint = normalise(url, what="endpoint")
    if urlsplit(endpoint).fragment:
        raise UrlError("endpoint must not have a fragment (#…)")
    if not origin_allowed(endpoint, allowed):
        raise UrlError(
            f"{origin_of(endpoint)} is not an allowed push service origin "
            "(CAMPAIGN_PUSH_ALLOWED_ORIGINS; https only)"
        )
    return endpoint


def endpoint_problem(url: str, allowed: tuple[str, ...]) -> str | None:
    """Why a stored endpoint must not be sent to (checked again before every send), or None.

    A stored endpoint is sent to exactly as stored: it must already be in normal form."""
    try:
        normal = push_endpoint(url, allowed)
    except UrlError as exc:
        return str(exc)
    if normal != url:
        return "endpoint is not in normal form (stored before it was checked)"
    return None


def screen_endpoint(
    url: str, allowed: tuple[str, ...], passed: dict[str, str]
) -> tuple[str | None, str]:
    """(why not to send to a stored endpoint or None, its origin), for many endpoints in a
    row: `endpoint_problem` in full once per origin; after that, an endpoint whose origin
    part (`passed` maps it to its origin) already passed needs only the rest checked, by
    `_plain_rest`, the rules of this module that can fail after the origin."""
    cut = url.find("/", url.find("://") + 3) if "://" in url else -1
    if cut > 0:
        origin = passed.get(url[:cut])
        if origin is not None and len(url) <= MAX_URL and _plain_rest(url[cut:]):
            return None, origin
    problem = endpoint_problem(url, allowed)
    if problem is not None:
        return problem, ""
    origin = origin_of(url)
    if cut > 0 and url[:cut] == origin:  # an origin in normal form: the rest decides
        passed[origin] = origin
    return None, origin


def _plain_rest(rest: str) -> bool:
    """Whether the part of an endpoint from its path on is in normal form and acceptable:
    printable ASCII without space, backslash, fragment, percent-escape (`_escapes`) or dot
    segment (`_without_dots`), and a query, if any, that is not empty. Anything else is
    checked in full."""
    query = rest.find("?")
    path = rest if query < 0 else rest[:query]
    return (
        rest.isascii()
        and rest.isprintable()
        and " " not in rest
        and "\\" not in rest
        and "#" not in rest
        and "%" not in rest
        and "/." not in path
        and (query < 0 or query < len(rest) - 1)
    )


def click_target(url: object) -> str:
    """A destination a click link may redirect to: absolute http(s), normalised."""
    if isinstance(url, str):
        url = url.strip()
    target = normalise(url, what="url")
    scheme = urlsplit(target).scheme
    if scheme not in ("http", "https"):
        raise UrlError(f"url must be http or https, not {scheme}:")
    return target
