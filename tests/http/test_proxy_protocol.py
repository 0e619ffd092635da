"""PROXY protocol v1 and v2, byte for byte: the parser alone, then on real sockets.

Each wire case names the part of haproxy's proxy-protocol.txt it comes from.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct

import pytest
from apps import make_app
from rawhttp import exchange, open_raw, read_all

from unicorn_aio.http.proxy_protocol import V2_SIGNATURE, parse

pytestmark = [pytest.mark.both_loops, pytest.mark.timeout(30)]

GET_ENV = b"GET /env HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


def v2(command: int, fam: int, addresses: bytes, tlvs: bytes = b"", version: int = 2) -> bytes:
    body = addresses + tlvs
    return V2_SIGNATURE + bytes([version << 4 | command, fam]) + struct.pack("!H", len(body)) + body


V2_INET = v2(1, 0x11, socket.inet_aton("203.0.113.7") + socket.inet_aton("10.0.0.1")
             + struct.pack("!HH", 51234, 443))
V2_INET6 = v2(1, 0x21, socket.inet_pton(socket.AF_INET6, "2001:db8::7")
              + socket.inet_pton(socket.AF_INET6, "2001:db8::1") + struct.pack("!HH", 40000, 8443),
              tlvs=b"\x01\x00\x02h2" + b"\x04\x00\x00")  # ALPN and NOOP TLVs, skipped (2.2.1)
V2_LOCAL = v2(0, 0x00, b"")


# -- the parser ----------------------------------------------------------------------------

@pytest.mark.parametrize("data,expected", [
    # 2.1: "PROXY TCP4 <src> <dst> <sport> <dport>\r\n"
    (b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\nGET", (45, "192.0.2.1", 56324)),
    (b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n", (44, "2001:db8::1", 1)),
    # 2.1: UNKNOWN - anything may follow up to CRLF and the receiver ignores it
    (b"PROXY UNKNOWN\r\n", (15, None, None)),
    (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", (35, None, None)),
    # 2.2: v2 with TLVs skipped, LOCAL keeps the real peer
    (V2_INET + b"GET", (len(V2_INET), "203.0.113.7", 51234)),
    (V2_INET6, (len(V2_INET6), "2001:db8::7", 40000)),
    (V2_LOCAL, (16, None, None)),
    (v2(1, 0x00, b"junk"), (20, None, None)),  # UNSPEC: address ignored
    (v2(1, 0x31, b"\0" * 216), (232, None, None)),  # AF_UNIX: no IP to report
    # not a PROXY header at all: plain HTTP on the same port, as in gunicorn
    (b"GET / HTTP/1.1\r\n", (0, None, None)),
    (b"PROPFIND / HTTP/1.1\r\n", (0, None, None)),
    (b"\r\n\r\nGET / HTTP/1.1\r\n", (0, None, None)),
])
def test_parse(data, expected):
    assert parse(data) == expected


@pytest.mark.parametrize("header", [
    b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n", V2_INET, V2_INET6, V2_LOCAL])
def test_parse_needs_more_at_every_split(header):
    for cut in range(len(header)):
        assert parse(header[:cut]) is None, cut
    assert parse(header)[0] == len(header)


@pytest.mark.parametrize("data,reason", [
    (b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\n", "CRLF"),
    (b"PROXY TCP4 " + b"1" * 120, "107"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.1 56324\r\n", "single-spaced"),
    (b"PROXY TCP4  192.0.2.1 198.51.100.1 56324 443\r\n", "single-spaced"),
    (b"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n", "not an IPv4 address"),
    (b"PROXY TCP6 192.0.2.1 2001:db8::1 1 2\r\n", "not an IPv6 address"),
    (b"PROXY TCP4 192.0.2.256 198.51.100.1 1 2\r\n", "not an IPv4 address"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.1 65536 2\r\n", "not a port"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.1 080 2\r\n", "not a port"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.1 -1 2\r\n", "not a port"),
    (b"PROXY UDP4 192.0.2.1 198.51.100.1 1 2\r\n", "TCP4, TCP6 or UNKNOWN"),
    (v2(1, 0x11, b"", version=1), "version 1"),
    (v2(2, 0x11, b"\0" * 12), "command 2"),
    (v2(1, 0x41, b"\0" * 12), "family"),
    (v2(1, 0x11, b"\0" * 11), "too short"),
    (v2(1, 0x21, b"\0" * 12), "too short"),
])
def test_parse_refuses(data, reason):
    with pytest.raises(ValueError, match=reason):
        parse(data)


# -- on the wire ---------------------------------------------------------------------------

async def send_chunks(port: int, chunks, host="127.0.0.1") -> bytes:
    reader, writer = await open_raw(port, host)
    try:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.02)  # separate segments
        return await read_all(reader)
    finally:
        writer.close()


def env_of(raw: bytes) -> dict:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), raw[:200]
    return json.loads(body)


@pytest.mark.parametrize("header,addr,port", [
    (b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n", "192.0.2.1", "56324"),
    (b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 443\r\n", "2001:db8::1", "4000"),
    (b"PROXY UNKNOWN\r\n", "127.0.0.1", None),
    (V2_INET, "203.0.113.7", "51234"),
    (V2_INET6, "2001:db8::7", "40000"),
    (V2_LOCAL, "127.0.0.1", None),
])
async def test_client_address_from_header(start_server, header, addr, port):
    server = await start_server(make_app(), proxy_protocol=True)
    env = env_of(await send_chunks(server.port, [header + GET_ENV]))
    assert env["REMOTE_ADDR"] == addr
    if port is not None:
        assert env["REMOTE_PORT"] == port
    else:  # the real peer: our own socket's port
        assert env["REMOTE_PORT"] != "" and env["REMOTE_PORT"] not in ("56324", "51234")


@pytest.mark.parametrize("header", [b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n", V2_INET6])
async def test_header_split_across_packets(start_server, header):
    server = await start_server(make_app(), proxy_protocol=True)
    whole = header + GET_ENV
    # one byte at a time through the header, then the split straddling header and request
    chunks = [whole[i:i + 1] for i in range(len(header) - 1)] + [whole[len(header) - 1:len(header) + 5],
                                                                  whole[len(header) + 5:]]
    env = env_of(await send_chunks(server.port, chunks))
    assert env["REMOTE_ADDR"] in ("192.0.2.1", "2001:db8::7")


async def test_keepalive_requests_keep_the_proxied_address(start_server):
    server = await start_server(make_app(), proxy_protocol=True)
    keep = b"GET /env HTTP/1.1\r\nHost: t\r\n\r\n"
    raw = await send_chunks(server.port, [V2_INET + keep, keep, GET_ENV])
    assert raw.count(b'"REMOTE_ADDR": "203.0.113.7"') == 3


@pytest.mark.parametrize("data", [
    b"PROXY TCP4 192.0.2.1 198.51.100.1 56324\r\n" + GET_ENV,
    b"PROXY TCP4 " + b"9" * 200 + b"\r\n",
    v2(1, 0x11, b"\0" * 4) + GET_ENV,
])
async def test_malformed_header_is_400_and_close(start_server, data):
    server = await start_server(make_app(), proxy_protocol=True)
    app = server.app
    [resp] = await exchange(server.port, data)
    assert resp.status == 400 and resp.headers["connection"] == "close"
    assert app.rec.calls == 0


async def test_plain_http_still_served(start_server):
    server = await start_server(make_app(), proxy_protocol=True)
    env = env_of(await send_chunks(server.port, [b"G", GET_ENV[1:]]))
    assert env["REMOTE_ADDR"] == "127.0.0.1"


async def test_untrusted_source_is_refused(start_server):
    # gunicorn's ForbiddenProxyRequest: a peer outside proxy_allow_ips may not name a client.
    server = await start_server(make_app(), proxy_protocol=True, proxy_allow_ips="192.0.2.0/24")
    [resp] = await exchange(server.port, b"PROXY TCP4 192.0.2.1 198.51.100.1 1 2\r\n" + GET_ENV)
    assert resp.status == 403 and b"proxy_allow_ips" in resp.body
    [resp] = await exchange(server.port, V2_INET + GET_ENV)
    assert resp.status == 403
    # The same peer without a header is an ordinary client.
    env = env_of(await send_chunks(server.port, [GET_ENV]))
    assert env["REMOTE_ADDR"] == "127.0.0.1"


async def test_ipv6_loopback_is_allowed_by_default(start_server):
    try:
        server = await start_server(make_app(), proxy_protocol=True, bind="[::1]:0")
    except OSError:
        pytest.skip("no IPv6 loopback")
    env = env_of(await send_chunks(server.port, [V2_INET + GET_ENV], host="::1"))
    assert env["REMOTE_ADDR"] == "203.0.113.7"


async def test_header_is_only_read_when_enabled(start_server):
    server = await start_server(make_app())
    [resp] = await exchange(server.port, b"PROXY TCP4 192.0.2.1 198.51.100.1 1 2\r\n" + GET_ENV)
    assert resp.status in (400, 501)
