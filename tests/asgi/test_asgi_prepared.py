"""http.response.start's status and headers, checked once and kept (asgi/handler.prepare): a
repeat is answered from what was kept, with the head response.head would have built, and only
what is equal in type and value is taken for a repeat."""

from __future__ import annotations

import pytest
from rawhttp import exchange

HEADERS = [(b"content-type", b"text/plain"), (b"x-kept", b"1")]
VARIANTS = {
    b"/length": HEADERS + [(b"content-length", b"5")],
    b"/nolength": HEADERS,
    b"/close": HEADERS + [(b"connection", b"close")],
    b"/date": HEADERS + [(b"date", b"Tue, 01 Jan 2030 00:00:00 GMT")],
    b"/server": HEADERS + [(b"server", b"mine")],
}


@pytest.fixture
def start_server(start_server):
    def start(app, **settings):
        settings.setdefault("lifespan", "off")
        return start_server(app, **settings)
    return start


def normal(head: bytes) -> list[tuple[bytes, bytes]]:
    """A head's lines, names in lower case and the Date value left out: what must agree."""
    lines = []
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        ours = name.lower() == b"date" and b"2030" not in value  # the app's is kept
        lines.append((name.lower(), b"" if ours else value))
    return lines


@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
async def test_a_kept_start_frames_as_a_fresh_one(start_server, method, version):
    # A list of pairs is kept; a tuple of them is checked as it comes, through response.head.
    async def app(scope, receive, send):
        headers = VARIANTS[scope["raw_path"]]
        if scope["query_string"] == b"fresh":
            headers = tuple(headers)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"hello"})

    server = await start_server(app)
    for path in VARIANTS:
        heads = []
        for query in (b"", b"", b"?fresh"):  # the first keeps it, the second finds it
            request = (method + b" " + path + query + b" HTTP/" + version + b"\r\nHost: t\r\n"
                       b"Connection: close\r\n\r\n")
            [resp] = await exchange(server.port, request, methods=[method.decode()])
            assert resp.status == 200 and resp.body == (b"" if method == b"HEAD" else b"hello")
            heads.append(normal(resp.head))
        assert heads[0] == heads[1] == heads[2], path


async def test_an_equal_start_of_another_type_is_checked_anew(start_server):
    # 200.0 == 200 and (200.0, h) == (200, h): a float status must not find the int's entry.
    async def app(scope, receive, send):
        status = 200.0 if scope["path"] == "/float" else 200
        await send({"type": "http.response.start", "status": status, "headers": HEADERS})
        await send({"type": "http.response.body", "body": b"ok"})

    server = await start_server(app)
    for _ in range(2):
        [resp] = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert resp.status == 200
    [resp] = await exchange(server.port, b"GET /float HTTP/1.1\r\nHost: t\r\n"
                            b"Connection: close\r\n\r\n")
    assert resp.status == 500


async def test_a_changed_header_is_checked_anew(start_server):
    # The same names with a value the checks refuse, after the good one was kept.
    async def app(scope, receive, send):
        value = b"bad\r\nx-injected: 1" if scope["path"] == "/bad" else b"good"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"x-value", value)]})
        await send({"type": "http.response.body", "body": b"ok"})

    server = await start_server(app)
    for _ in range(2):
        [resp] = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert resp.status == 200 and resp.headers["x-value"] == "good"
    [resp] = await exchange(server.port, b"GET /bad HTTP/1.1\r\nHost: t\r\n"
                            b"Connection: close\r\n\r\n")
    assert resp.status == 500 and "x-injected" not in resp.headers
