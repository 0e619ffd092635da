"""Request checks that httptools (llhttp) does not make, so smuggling never reaches an app.

llhttp already refuses, byte for byte: Content-Length with Transfer-Encoding, duplicate or
non-digit Content-Length, bare CR and bare LF line ends, obs-fold, non-token header names and
methods, control characters in header values, oversized chunk sizes.  What it accepts and RFC 9112
does not, we refuse here (tests/http/test_http_strict.py holds a raw-socket case for each rule).
"""

from __future__ import annotations

import re

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# Byte values for membership tests: `95 in name` is one memchr, where `b"_" in name` sets up a
# substring search first, and these run for every header of every request.
UNDERSCORE, PERCENT, HASH = ord("_"), ord("%"), ord("#")


class Reject(Exception):
    """A request refused before the app sees it; answered with ``status`` and closed."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Framing:
    """What the head says about the body and the connection, gathered in one pass."""

    __slots__ = ("content_length", "chunked", "expect_continue", "close", "upgrade", "host")

    def __init__(self) -> None:
        self.content_length: int | None = None
        self.chunked = False
        self.expect_continue = False
        self.close = False
        self.upgrade = False
        self.host: bytes | None = None


def check_request_target(method: bytes, url: bytes) -> None:
    """RFC 9112 section 3.2: the four request-target forms, each only where it is allowed."""
    first = url[:1]
    if first == b"/":
        pass
    elif url == b"*":
        if method != b"OPTIONS":
            raise Reject(400, "asterisk-form request target is only allowed with OPTIONS")
    elif url[:7].lower() == b"http://" or url[:8].lower() == b"https://":
        pass
    elif method == b"CONNECT":
        # 501, not 405: a 405 must list the allowed methods (RFC 9110 15.5.6), and no
        # resource here allows CONNECT - the server does not implement tunnelling at all.
        raise Reject(501, "CONNECT is not supported")
    else:
        raise Reject(400, "invalid request target")
    if HASH in url:
        raise Reject(400, "fragment in request target")


def check_version(version: str) -> None:
    if version == "1.1" or version == "1.0":
        return
    if version.startswith("2") or version.startswith("3"):
        raise Reject(505, f"HTTP/{version} is not supported on this port; use HTTP/1.1")
    raise Reject(400, f"unsupported HTTP version HTTP/{version}")


def check_headers(headers: list, version: str, header_map: str,
                  forwarders: frozenset = frozenset()) -> tuple[Framing, list]:
    """Validate the framing headers; returns them and the header list the app may see.

    ``header_map`` follows gunicorn: names with underscores are dropped ("drop"), refused
    ("refuse") or passed on ("dangerous").  Underscore names would otherwise reach the app as
    ``HTTP_X_FORWARDED_FOR``, indistinguishable from the dash form a proxy vouches for.  The
    ``forwarder_headers`` (upper-case, in ``forwarders``) pass: forwarded.ProxyHeaders keeps
    them from a trusted proxy only.
    """
    f = Framing()
    kept = headers
    for i, (name, value) in enumerate(headers):
        if UNDERSCORE in name and not (forwarders and name.upper() in forwarders):
            if header_map == "refuse":
                raise Reject(400, "header name with underscore: " + name.decode("latin-1"))
            if header_map != "dangerous":
                if kept is headers:
                    kept = headers[:i]
                continue
        if kept is not headers:
            kept.append((name, value))
        if len(name) > 17 or len(name) < 4:  # the names below are 4-17 bytes
            continue
        lname = name.lower()
        if lname == b"host":
            if f.host is not None:
                raise Reject(400, "more than one Host header")
            f.host = value
        elif lname == b"content-length":
            f.content_length = int(value)  # llhttp has refused anything but one run of digits
        elif lname == b"transfer-encoding":
            # llhttp accepts codings before a final chunked ("gzip, chunked"); we would hand
            # the app a still-encoded body, so only plain chunked is accepted (RFC 9112 6.1).
            if value.strip().lower() != b"chunked":
                raise Reject(501, "unsupported Transfer-Encoding: " + value.decode("latin-1"))
            if version == "1.0":
                raise Reject(400, "Transfer-Encoding is not allowed in HTTP/1.0")
            f.chunked = True
        elif lname == b"expect":
            if value.lower() == b"100-continue":
                f.expect_continue = version == "1.1"
            else:
                raise Reject(417, "unsupported expectation: " + value.decode("latin-1"))
        elif lname == b"connection":
            # Whole tokens: "x-upgrade-hint" neither asks for an upgrade nor for a close.
            tokens = [token.strip() for token in value.lower().split(b",")]
            if b"close" in tokens:
                f.close = True
            if b"upgrade" in tokens:
                f.upgrade = True
    if f.host is None and version == "1.1":
        raise Reject(400, "missing Host header (required in HTTP/1.1)")
    return f, kept


def is_token(value: bytes) -> bool:
    return _TOKEN.match(value) is not None
