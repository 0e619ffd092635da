"""Requests the fuzz test and the soak start from, and the mutations applied to them."""

from __future__ import annotations

import re

BASES = [
    b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /pid?x=1&y=%20 HTTP/1.1\r\nHost: t\r\nUser-Agent: fuzz\r\nAccept: */*\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\nContent-Type: text/plain\r\n\r\n"
    b"hello world",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /pid HTTP/1.1\r\nHost: t\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET http://t/abs HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
]
SPECIAL = [b"\r", b"\n", b"\r\n", b"\r\n\r\n", b" ", b"\t", b":", b"\x00", b"\xff", b";",
           b"99999999999999999999999", b"-1", b"0x10", b"chunked", b"Content-Length: 5\r\n",
           b"Transfer-Encoding: chunked\r\n", b"HTTP/1.1", b"\r\n \r\n", b"%", b"%00", b"/../"]


def mutate(data: bytes, ops) -> bytes:
    buf = bytearray(data)
    for op, pos, arg in ops:
        pos = pos % (len(buf) + 1)
        if op == "insert":
            buf[pos:pos] = arg
        elif op == "delete":
            del buf[pos:pos + arg]
        elif op == "replace":
            buf[pos:pos + len(arg)] = arg
        elif op == "huge":
            m = re.search(rb"[0-9a-fA-F]+", bytes(buf[pos:]))
            if m:
                buf[pos + m.start():pos + m.end()] = b"9" * arg
        elif op == "repeat":  # a long run of one byte: limits, not just syntax
            buf[pos:pos] = bytes(buf[pos - 1:pos] or b"a") * arg
    return bytes(buf)
