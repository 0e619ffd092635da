"""Request checks that httptools (llhttp) does not make, so smuggling never reaches an app.

llhttp already refuses, byte for byte: Content-Length with Transfer-Encoding, duplicate or
non-digit Content-Length, bare CR and bare LF line ends, obs-fold, non-token header names and
methods, control characters in header values.  What it accepts and RFC 9112 does not, we refuse
here (tests/http/test_http_strict.py holds a raw-socket case for each rule).  Where RFC 9112 leaves
a choice, the choice is gunicorn 27's; docs/gunicorn-differences.md lists where it is not.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# RFC 9110 7.2: Host = uri-host [ ":" port ], uri-host = IP-literal / IPv4address / reg-name
# (RFC 3986 3.2.2); reg-name may be empty.  An IP-literal is checked by ipaddress below.
_HOST: Final = re.compile(rb"(?:\[([0-9A-Fa-f:.]+)\]|\[v[0-9A-Fa-f]+\.[-\w.~!$&'()*+,;=:]+\]"
                   rb"|(?:[-\w.~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)(?::[0-9]*)?\Z")
# Host values already found valid: a server sees a handful, and this runs for every request.
_VALID_HOSTS: Final[set[bytes]] = set()
_VALID_HOSTS_MAX: Final = 1024
# RFC 9110 6.5.1: fields that alter framing, routing or authentication must not come after the
# content; gunicorn 27 refuses these with 400 (lower-case, as trailer names are compared).
FORBIDDEN_TRAILERS: Final = frozenset((b"host", b"content-length", b"transfer-encoding", b"trailer",
                                b"authorization", b"te"))
# Transfer codings gunicorn 27 lets come before the final chunked: the app gets the body still
# in them (and reads Transfer-Encoding); after one that transforms it the connection is not
# reused, as gunicorn forces a close.
_PASSED_CODINGS: Final = frozenset((b"gzip", b"deflate", b"compress"))
_METHOD_UNCONVENTIONAL: Final = re.compile(rb"[a-z#]")
ABSOLUTE_FORM: Final = re.compile(rb"[A-Za-z][-A-Za-z0-9+.]*://")  # RFC 3986 3.1: scheme
# The fields check_headers reads, by kind; _UNDERSCORED marks a name with "_" (header_map).
_IS_HOST: Final = 1
_IS_CONTENT_LENGTH: Final = 2
_IS_CONTENT_TYPE: Final = 3
_IS_TRANSFER_ENCODING: Final = 4
_IS_EXPECT: Final = 5
_IS_CONNECTION: Final = 6
_FRAMING_FIELDS: Final = {b"host": _IS_HOST, b"content-length": _IS_CONTENT_LENGTH,
                   b"content-type": _IS_CONTENT_TYPE, b"transfer-encoding": _IS_TRANSFER_ENCODING,
                   b"expect": _IS_EXPECT, b"connection": _IS_CONNECTION}
_UNDERSCORED: Final = 8
_SCHEME_FIELD: Final = 16  # one of the secure scheme headers some server trusts a proxy for
# Header name -> its kind, 0 for most: one lookup per field instead of a lower() and tests.
# Real traffic repeats a few dozen names; bounded against a client that invents them.
_NAME_KINDS: Final[dict[bytes, int]] = {}
_NAME_KINDS_MAX: Final = 4096
# Lower-case names of the secure scheme headers of every server in this process (forwarded.py):
# a head with none of them and no underscore name has nothing a trusted proxy could say.
_SCHEME_FIELDS: Final[set[bytes]] = set()


def add_scheme_fields(names: Iterable[bytes]) -> None:
    """Count these (lower-case) names as secure scheme headers from now on (see
    Framing.forwarded)."""
    new = set(names) - _SCHEME_FIELDS
    if new:
        _SCHEME_FIELDS.update(new)
        _NAME_KINDS.clear()  # kinds worked out without them


def _name_kind(name: bytes) -> int:
    lname = name.lower()
    kind = _FRAMING_FIELDS.get(lname, 0) | (_UNDERSCORED if UNDERSCORE in name else 0)
    if lname in _SCHEME_FIELDS:
        kind |= _SCHEME_FIELD
    if len(_NAME_KINDS) < _NAME_KINDS_MAX:
        _NAME_KINDS[name] = kind
    return kind
# Byte values for membership tests: `95 in name` is one memchr, where `b"_" in name` sets up a
# substring search first, and these run for every header of every request.
UNDERSCORE, PERCENT, HASH = ord("_"), ord("%"), ord("#")


class Reject(Exception):
    """A request refused before the app sees it; answered with ``status`` and closed."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


_FRAMING_SLOTS: Final = ("content_length", "chunked", "expect_continue", "close", "upgrade", "forwarded")


class Framing:
    """What the head says about the body and the connection, gathered in one pass."""

    __slots__ = _FRAMING_SLOTS

    def __init__(self) -> None:
        self.content_length: int | None = None
        self.chunked = False
        self.expect_continue = False
        self.close = False
        self.upgrade = False
        # A field a trusted proxy may set (a secure scheme header, an underscore name): only
        # then has forwarded.ProxyHeaders anything to read.
        self.forwarded = False


class _PlainFraming(Framing):
    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("PLAIN is shared by every plain head: make a Framing to change")


# The framing of a head with no field that frames a body or changes the connection (most
# heads): shared, where a Framing made per request cost a GET 4% of its instructions.
PLAIN: Final[Framing] = _PlainFraming.__new__(_PlainFraming)
for _slot in _FRAMING_SLOTS:
    object.__setattr__(PLAIN, _slot, None if _slot == "content_length" else False)


def check_request_target(method: bytes, url: bytes) -> None:
    """RFC 9112 section 3.2: the four request-target forms, each only where it is allowed."""
    first = url[:1]
    if first == b"/":
        pass
    elif url == b"*":
        if method != b"OPTIONS":
            raise Reject(400, "asterisk-form request target is only allowed with OPTIONS")
    elif ABSOLUTE_FORM.match(url):  # any scheme, as gunicorn
        try:
            urlsplit(url)  # as gunicorn: an IP literal without its "]" is refused
        except ValueError:
            raise Reject(400, "invalid request target") from None
    elif method == b"CONNECT":
        # 501, not 405: a 405 must list the allowed methods (RFC 9110 15.5.6), and no
        # resource here allows CONNECT - the server does not implement tunnelling at all.
        raise Reject(501, "CONNECT is not supported")
    else:
        raise Reject(400, "invalid request target")


def without_fragment(url: bytes) -> bytes:
    """The target without a fragment: clients never send one (RFC 9110 4.2.4), and gunicorn
    serves a request that has one as if it had not."""
    return url.partition(b"#")[0] if HASH in url else url


def request_path(url: bytes) -> tuple[bytes, bytes]:
    """The raw path and query of a request target (absolute-form reduced to its path, the
    fragment dropped).  Without a "?" or "#", the path is ``url`` itself (the same object)."""
    path, _, query = without_fragment(url).partition(b"?")
    if path[:1] != b"/" and path != b"*":
        scheme_end = path.find(b"//")
        slash = path.find(b"/", scheme_end + 2)
        path = path[slash:] if slash >= 0 else b"/"
    return path, query


def unknown_method_status(method: bytes) -> int:
    """The answer to a method llhttp does not know: gunicorn 27 refuses a method outside its
    conventions (lower case, "#", under 3 or over 20 bytes) with 400; any other token is one
    we do not implement (RFC 9110 9.1: 501), where gunicorn passes it to the app."""
    if not is_token(method) or _METHOD_UNCONVENTIONAL.search(method) \
            or not 3 <= len(method) <= 20:
        return 400
    return 501


def valid_host(value: bytes) -> bool:
    if value in _VALID_HOSTS:
        return True
    match = _HOST.match(value)
    if match is None:
        return False
    if match.group(1) is not None:
        try:
            ipaddress.IPv6Address(match.group(1).decode("ascii"))
        except ValueError:
            return False
    if len(_VALID_HOSTS) < _VALID_HOSTS_MAX:
        _VALID_HOSTS.add(value)
    return True


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
    ``forwarder_headers`` (upper-case, in ``forwarders``; ``*`` for all) pass:
    forwarded.ProxyHeaders keeps them from a trusted proxy only.
    """
    f: Framing | None = None  # made at the first field that needs one
    kept = headers
    host: bytes | None = None
    te: bytes | None = None
    content_type = False
    kinds = _NAME_KINDS
    for i, (name, value) in enumerate(headers):
        kind = kinds.get(name)
        if kind is None:
            kind = _name_kind(name)
        if not kind:  # most fields
            if kept is not headers:
                kept.append((name, value))
            continue
        if kind & (_SCHEME_FIELD | _UNDERSCORED):
            if f is None:
                f = Framing()
            f.forwarded = True
            if kind & _UNDERSCORED and not (
                    forwarders and (name.upper() in forwarders or b"*" in forwarders)):
                if header_map == "refuse":
                    raise Reject(400, "header name with underscore: " + name.decode("latin-1"))
                if header_map != "dangerous":
                    if kept is headers:
                        kept = headers[:i]
                    continue
            kind &= ~(_SCHEME_FIELD | _UNDERSCORED)
        if kept is not headers:
            kept.append((name, value))
        if kind == _IS_HOST:  # the one such field nearly every head has
            if host is not None:
                raise Reject(400, "more than one Host header")
            host = value
        elif kind == _IS_CONTENT_TYPE:
            # RFC 9110 5.3: a field whose value is not a list cannot be repeated (gunicorn 27).
            if content_type:
                raise Reject(400, "more than one Content-Type header")
            content_type = True
        elif kind == _IS_TRANSFER_ENCODING:
            te = value if te is None else te + b"," + value  # 9110 5.3: lines make one list
        elif kind:
            if f is None:
                f = Framing()
            if kind == _IS_CONTENT_LENGTH:
                f.content_length = int(value)  # llhttp has refused anything but one run of digits
            elif kind == _IS_EXPECT:
                if value.lower() == b"100-continue":
                    f.expect_continue = version == "1.1"
                else:
                    raise Reject(417, "unsupported expectation: " + value.decode("latin-1"))
            elif kind == _IS_CONNECTION:
                # Whole tokens: "x-upgrade-hint" neither asks for an upgrade nor for a close.
                tokens = [token.strip() for token in value.lower().split(b",")]
                if b"close" in tokens:
                    f.close = True
                if b"upgrade" in tokens:
                    f.upgrade = True
    if host is None:
        if version == "1.1":
            raise Reject(400, "missing Host header (required in HTTP/1.1)")
    elif host not in _VALID_HOSTS and not valid_host(host):
        # 9112 3.2: a Host field with an invalid value MUST get 400 (gunicorn passes it on).
        raise Reject(400, "invalid Host header: " + host[:64].decode("latin-1"))
    if te is not None:
        if f is None:
            f = Framing()
        _transfer_codings(f, te, version)
    return (PLAIN if f is None else f), kept


def _transfer_codings(f: Framing, te: bytes, version: str) -> None:
    """RFC 9112 6.1 and 6.3, as gunicorn 27 decides them: the body is framed by a final
    chunked; gzip, deflate or compress before it reach the app undecoded, and end the
    connection after the response; identity is allowed before it; any other coding is one we
    do not implement (501)."""
    chunked = False
    for coding in te.split(b","):
        coding = coding.strip(b" \t").lower()
        if coding == b"chunked":
            if chunked:
                raise Reject(400, "chunked applied more than once")
            chunked = True
        elif coding == b"identity" or coding in _PASSED_CODINGS:
            if chunked:
                raise Reject(400, "Transfer-Encoding does not end with chunked")
            if coding != b"identity":
                f.close = True
        else:
            raise Reject(501, "unsupported Transfer-Encoding: " + te.decode("latin-1"))
    if not chunked:
        # 9112 6.3: without a final chunked a request's length cannot be determined.
        raise Reject(400, "Transfer-Encoding does not end with chunked")
    if version == "1.0":
        raise Reject(400, "Transfer-Encoding is not allowed in HTTP/1.0")
    f.chunked = True


def is_token(value: bytes) -> bool:
    return _TOKEN.match(value) is not None
