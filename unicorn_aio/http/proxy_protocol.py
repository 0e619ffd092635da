"""The PROXY protocol header, by which a TCP proxy in front of us names the client.

The PROXY protocol (haproxy's proxy-protocol.txt) prefixes a connection with the client's
address: version 1 as one text line, version 2 as a binary block.  ``parse(data)`` reads it from
the bytes received so far and is pure: it returns None while more bytes are needed, else
``(consumed, address, port)``; ``consumed == 0`` means the connection does not start with a
PROXY header at all, and ``address is None`` means the header carries no client address (v1
UNKNOWN, v2 LOCAL or UNSPEC/UNIX) so the socket's peer stays the client.  A malformed header
raises ``ValueError`` with the reason.

As in gunicorn, with ``--proxy-protocol`` the header is optional, so HTTP and PROXY clients may
share a port (stunnel in front for HTTPS, direct HTTP beside it), and a header from a peer not in
``proxy_allow_ips`` is refused (403): only an allowed peer may speak for a client.
``HeaderReader`` applies that to one connection.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import TYPE_CHECKING

from unicorn_aio.http.forwarded import AddressList

if TYPE_CHECKING:
    from unicorn_aio.http.protocol import HttpProtocol

V1_PREFIX = b"PROXY "
V1_MAX = 107  # "PROXY TCP6 " + two full IPv6 addresses + two ports + CRLF (spec 2.1)
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_HEAD = 16  # signature, version/command, family/transport, length
_V2_ADDRESS_LEN = {0x1: 12, 0x2: 36, 0x3: 216}  # INET, INET6, UNIX address blocks


def parse(data: bytes) -> tuple[int, str | None, int | None] | None:
    """The PROXY header at the start of ``data``: None (need more) or (consumed, addr, port)."""
    if data[:len(V2_SIGNATURE)] == V2_SIGNATURE[:len(data)]:
        return _parse_v2(data) if len(data) >= len(V2_SIGNATURE) else None
    if data[:len(V1_PREFIX)] == V1_PREFIX[:len(data)]:
        return _parse_v1(data) if len(data) >= len(V1_PREFIX) else None
    return 0, None, None


def _parse_v1(data: bytes) -> tuple[int, str | None, int | None] | None:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX:
            raise ValueError(f"PROXY v1 line without CRLF in its first {V1_MAX} bytes")
        if b"\n" in data or b"\r" in data[:-1]:
            raise ValueError("PROXY v1 line must end with CRLF")
        return None
    line = data[:end].decode("latin-1")
    parts = line.split(" ")
    if parts[1] == "UNKNOWN":  # the sender does not know the client; whatever follows is ignored
        return end + 2, None, None
    if parts[1] not in ("TCP4", "TCP6"):
        raise ValueError(f"PROXY v1 protocol must be TCP4, TCP6 or UNKNOWN, got {parts[1][:16]!r}")
    if len(parts) != 6:
        raise ValueError("PROXY v1 line must be PROXY TCPx SRC DST SPORT DPORT, single-spaced")
    _, proto, src, dst, sport, dport = parts
    version = 4 if proto == "TCP4" else 6
    for addr in (src, dst):
        try:
            if ipaddress.ip_address(addr).version != version:
                raise ValueError
        except ValueError:
            raise ValueError(f"PROXY v1 {proto}: {addr[:46]!r} is not an IPv{version} address") from None
    for port in (sport, dport):
        if not (port.isdigit() and port.isascii() and len(port) <= 5 and int(port) <= 65535
                and (port == "0" or port[0] != "0")):
            raise ValueError(f"PROXY v1: {port[:8]!r} is not a port number")
    return end + 2, src, int(sport)


def _parse_v2(data: bytes) -> tuple[int, str | None, int | None] | None:
    if len(data) < V2_HEAD:
        return None
    ver_cmd, fam, length = struct.unpack_from("!BBH", data, 12)
    if ver_cmd >> 4 != 2:
        raise ValueError(f"PROXY v2: version {ver_cmd >> 4} is not 2")
    command = ver_cmd & 0xF
    if command > 1:
        raise ValueError(f"PROXY v2: unknown command {command}")
    family, transport = fam >> 4, fam & 0xF
    if family > 3 or transport > 2:
        raise ValueError(f"PROXY v2: unknown address family/transport 0x{fam:02x}")
    if length < _V2_ADDRESS_LEN.get(family, 0):
        raise ValueError(f"PROXY v2: length {length} is too short for address family {family}")
    total = V2_HEAD + length
    if len(data) < total:
        return None
    # LOCAL: the proxy's own connection (a health check); UNSPEC/UNIX: no IP to report. The TLVs
    # after the address block (ALPN, SSL, AWS/Azure ids) are skipped.
    if command == 0 or family in (0x0, 0x3):
        return total, None, None
    if family == 0x1:
        src = str(ipaddress.IPv4Address(data[16:20]))
        port = struct.unpack_from("!H", data, 24)[0]
    else:
        src = str(ipaddress.IPv6Address(data[16:32]))
        port = struct.unpack_from("!H", data, 48)[0]
    return total, src, port


class HeaderReader:
    """Reads the PROXY header off the front of one connection, for ``HttpProtocol``."""

    __slots__ = ("buffer", "allowed")

    def __init__(self, allowed: AddressList) -> None:
        self.buffer = b""
        self.allowed = allowed

    def feed(self, protocol: HttpProtocol, data: bytes) -> bytes:
        """The bytes after the header (the HTTP stream); b"" while the header is incomplete.

        Sets ``protocol.peername`` to the client the header names, and ``protocol.proxy_header``
        to None once done; answers 400 (malformed) or 403 (peer not allowed) and closes.
        """
        data = self.buffer + data if self.buffer else data
        try:
            header = parse(data)
        except ValueError as exc:
            protocol.proxy_header = None
            protocol._reject(400, str(exc))
            return b""
        if header is None:
            self.buffer = data
            return b""
        protocol.proxy_header = None
        consumed, addr, port = header
        if consumed:
            peer = protocol.peername
            if isinstance(peer, tuple) and peer[0] not in self.allowed:
                protocol._reject(403, f"PROXY header from {peer[0]}, not in proxy_allow_ips")
                return b""
            if addr is not None:
                protocol.peername = (addr, port)
        return data[consumed:]
