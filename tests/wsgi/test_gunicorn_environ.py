"""The ``gunicorn.*`` environ keys apps read: ``gunicorn.socket``, the client's connection."""

from __future__ import annotations

import asyncio
import json

import pytest
from rawhttp import open_raw, read_responses

pytestmark = pytest.mark.both_loops


def socket_facts(environ, start_response):
    sock = environ["gunicorn.socket"]
    try:
        sock.send(b"")
        send = "allowed"
    except (TypeError, AttributeError):  # the event loop owns the connection
        send = "refused"  # uvloop: TypeError; asyncio's TransportSocket has no send()
    body = json.dumps({"peer": list(sock.getpeername()), "local": list(sock.getsockname()),
                       "fileno": sock.fileno(), "send": send,
                       "remote": [environ["REMOTE_ADDR"], int(environ["REMOTE_PORT"])]}).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


@pytest.mark.parametrize("mode", [{}, {"dispatch": "inline"}])
async def test_gunicorn_socket_is_the_client_connection(start_server, mode):
    server = await start_server(socket_facts, **mode)
    reader, writer = await open_raw(server.port)
    client = writer.get_extra_info("sockname")
    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
    first, second = [json.loads(r.body) for r in await read_responses(reader, 2)]
    writer.close()
    await asyncio.sleep(0)
    assert first["peer"] == list(client[:2]) == first["remote"]
    assert first["local"] == ["127.0.0.1", server.port]
    assert first["fileno"] == second["fileno"] > 2  # one connection, its own descriptor
    assert first["send"] == "refused"  # documented in docs/gunicorn-differences.md
