"""What a proxy in front of us may say about a request, decided once for WSGI and ASGI alike.

gunicorn's three settings: ``forwarded_allow_ips`` names the peers trusted to speak for the
client; from them, ``secure_scheme_headers`` say whether the client used https, and the
underscore names in ``forwarder_headers`` pass ``header_map``.  ``ProxyHeaders.read`` applies them
to a request's head as the protocol parses it, so both interfaces see one verdict and a head whose
scheme headers disagree is a 400 before any app runs, as gunicorn's InvalidSchemeHeaders is.

As in gunicorn 27, a forwarder header is a header: ``PATH_INFO: /admin`` reaches a WSGI app as
``HTTP_PATH_INFO`` and never replaces the path.  Only a ``SCRIPT_NAME`` header says something of
its own: the prefix the app is mounted under (``Verdict.script_name``).

Trust goes by the peer the protocol knows, which is the client a PROXY protocol header named, if
any: a client behind a TCP proxy cannot vouch for itself, where trusting the proxy's socket
address (gunicorn's choice) would let it.  As in gunicorn, a peer without an IP address (a unix
socket) is trusted: only a local process can connect there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING

from unicorn_aio.http.rules import Reject, add_scheme_fields

if TYPE_CHECKING:
    from unicorn_aio.config.config import Config

# An address list is asked for the same few peers over and over (a proxy's address, a unix
# socket's ""): answers are remembered up to this many addresses.
_SEEN_MAX = 4096
# Raw header name -> what it is to us, shared across requests: real traffic repeats a few dozen.
_NAMES_MAX = 1024
_SECURE, _FORWARDER, _SCRIPT_NAME = 1, 2, 4

Headers = list[tuple[bytes, bytes]]


class AddressList:
    """An allow-list of IP addresses and networks (``*`` is everyone), for ``addr in list``.

    A peer without an IP address (a unix socket: "" or None) is allowed.
    """

    def __init__(self, items: Iterable[str] | None) -> None:
        entries = list(items or ())
        self.everyone = "*" in entries
        self.exact = frozenset(i for i in entries if i != "*" and "/" not in i)
        self.networks = [ipaddress.ip_network(i, strict=False) for i in entries
                         if i != "*" and "/" in i]
        self._seen: dict[str, bool] = {}

    def __contains__(self, addr: object) -> bool:
        if self.everyone or not addr or addr in self.exact:
            return True
        if not self.networks or not isinstance(addr, str):
            return False
        found = self._seen.get(addr)
        if found is None:
            try:
                ip = ipaddress.ip_address(addr.partition("%")[0])
            except ValueError:
                found = False
            else:
                found = any(ip in net for net in self.networks)
            if len(self._seen) < _SEEN_MAX:
                self._seen[addr] = found
        return found


def peer_address(peername: object) -> str:
    """The IP address of a peer as ``AddressList`` takes it; "" for a unix socket."""
    return peername[0] if isinstance(peername, tuple) else ""


class Verdict:
    """What a trusted proxy said about one request (``Request.proxied``)."""

    __slots__ = ("secure", "script_name")

    def __init__(self, secure: bool | None, script_name: bytes | None) -> None:
        self.secure = secure  # https (True), http (False), or not said (None)
        self.script_name = script_name  # its SCRIPT_NAME header: the mount point, or None


def url_scheme(verdict: Verdict | None, scheme: str) -> str:
    """The request's scheme: the connection's own (http or https, ws or wss) unless a trusted
    proxy said otherwise - https over a proxy's TLS, or http over ours (gunicorn does both)."""
    if verdict is None or verdict.secure is None:
        return scheme
    plain = scheme[:-1] if scheme in ("https", "wss") else scheme
    return plain + "s" if verdict.secure else plain


class ProxyHeaders:
    """gunicorn's trusted-proxy settings for one server, applied to each request's head."""

    def __init__(self, cfg: Config) -> None:
        self.trusted = AddressList(cfg.forwarded_allow_ips)
        # lower-case header name -> the value that means https; any other value means http
        self.secure_values = {name.lower().encode("latin-1"): value.encode("latin-1")
                              for name, value in (cfg.secure_scheme_headers or {}).items()}
        # forwarder_headers acts on underscore names only (gunicorn: it exempts them from
        # header_map): upper-case, as check_headers compares them; "*" is every such name.
        self.underscore_names = frozenset(name.upper().encode("latin-1")
                                          for name in cfg.forwarder_headers or ()
                                          if "_" in name or name == "*")
        self.header_map = cfg.header_map
        self.enabled = bool(self.secure_values or self.underscore_names)
        # check_headers notes a head with one of these or an underscore name: read() skips the
        # others, which have nothing for it.
        add_scheme_fields(self.secure_values)
        self._kinds: dict[bytes, int] = {}

    def _kind(self, name: bytes) -> int:
        kind = self._kinds.get(name)
        if kind is None:
            upper = name.upper()
            kind = (_SECURE if name.lower() in self.secure_values else 0)
            if b"_" in name and (upper in self.underscore_names or b"*" in self.underscore_names):
                kind |= _FORWARDER
            if upper == b"SCRIPT_NAME":
                kind |= _SCRIPT_NAME
            if len(self._kinds) < _NAMES_MAX:
                self._kinds[name] = kind
        return kind

    def read(self, headers: Headers, peername: object) -> tuple[Headers, Verdict | None]:
        """(the headers the app sees, what a trusted proxy said or None) for one request head.

        A trusted peer's forwarder headers stay, as any header does; the last SCRIPT_NAME among
        them is the verdict's mount point.  An untrusted peer's are what header_map makes of any
        underscore name: dropped, refused, or (dangerous) kept - as headers, never as a mount
        point.  Its scheme headers are ignored.  Each secure scheme header says https (its value
        matches exactly) or http (any other value), line by line as in gunicorn; lines that
        disagree raise ``Reject(400)``.
        """
        kind = self._kind
        kinds = self._kinds
        for name, _ in headers:  # a plain loop and the cache first: this runs for every request
            what = kinds.get(name)
            if what is None:
                what = kind(name)
            if what:
                break
        else:
            return headers, None
        if peer_address(peername) not in self.trusted:
            if self.header_map == "dangerous":
                return headers, None
            kept = [(n, v) for n, v in headers if not kind(n) & _FORWARDER]
            if len(kept) == len(headers):
                return headers, None
            if self.header_map == "refuse":
                raise Reject(400, "header name with underscore from an untrusted peer")
            return kept, None
        secure: bool | None = None
        script_name: bytes | None = None
        for name, value in headers:
            what = kind(name)
            if what & _SECURE:
                says = value == self.secure_values[name.lower()]
                if secure is not None and says != secure:
                    raise Reject(400, "secure scheme headers disagree ("
                                 + ", ".join(sorted({n.decode("latin-1") for n, _ in headers
                                                     if kind(n) & _SECURE})) + ")")
                secure = says
            if what & _SCRIPT_NAME:
                script_name = value
        return headers, Verdict(secure, script_name)
