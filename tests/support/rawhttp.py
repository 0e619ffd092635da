"""A raw HTTP/1.1 client for tests: aiohttp normalises exactly what the protocol tests look at
(framing, pipelining, malformed bytes), so responses are parsed strictly from the wire here."""

from __future__ import annotations

import asyncio
import contextlib
import gc


class Response:
    def __init__(self, status: int, headers: list, body: bytes, head: bytes) -> None:
        self.status = status
        self.header_list = headers
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        self.head = head

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.headers} {self.body[:60]!r}>"


def parse_responses(data: bytes, methods=(), eof: bool = True) -> tuple[list[Response], bytes]:
    """Split ``data`` into complete responses; returns them and the unparsed rest.

    ``methods`` lists the request methods in order (HEAD responses have no body);
    a response without length is complete only at ``eof``.
    """
    methods = list(methods)
    out = []
    while data:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            break
        head = data[:end]
        lines = head.split(b"\r\n")
        version, status, *_ = lines[0].split(b" ", 2)
        assert version == b"HTTP/1.1", lines[0]
        status = int(status)
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        hdrs = {k.lower(): v for k, v in headers}
        rest = data[end + 4:]
        method = methods[0] if methods and status >= 200 else "GET"
        if status < 200 or status in (204, 304) or method == "HEAD":
            body, data = b"", rest
        elif hdrs.get("transfer-encoding") == "chunked":
            body, pos, done = b"", 0, False
            while True:
                nl = rest.find(b"\r\n", pos)
                if nl < 0:
                    break
                size = int(rest[pos:nl], 16)
                if len(rest) < nl + 2 + size + 2:
                    break
                body += rest[nl + 2:nl + 2 + size]
                assert rest[nl + 2 + size:nl + 4 + size] == b"\r\n"
                pos = nl + 4 + size
                if size == 0:
                    done = True
                    break
            if not done:
                break
            data = rest[pos:]
        elif "content-length" in hdrs:
            n = int(hdrs["content-length"])
            if len(rest) < n:
                break
            body, data = rest[:n], rest[n:]
        else:
            if not eof:
                break
            body, data = rest, b""
        if status >= 200 and methods:
            methods.pop(0)
        out.append(Response(status, headers, body, head))
    return out, data


async def open_raw(port: int, host: str = "127.0.0.1"):
    return await asyncio.wait_for(asyncio.open_connection(host, port), 5)


async def read_all(reader, timeout: float = 5) -> bytes:
    """Everything until the server closes (fails the test if it does not within ``timeout``)."""
    async def drain():
        chunks = []
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    return await asyncio.wait_for(drain(), timeout)


async def read_responses(reader, count: int, methods=(), timeout: float = 5) -> list[Response]:
    """Read until ``count`` final (non-1xx) responses are complete, or EOF."""
    async def go():
        buf = b""
        while True:
            resps, _ = parse_responses(buf, methods, eof=False)
            if len([r for r in resps if r.status >= 200]) >= count:
                return resps
            chunk = await reader.read(65536)
            if not chunk:
                return parse_responses(buf, methods, eof=True)[0]
            buf += chunk
    return await asyncio.wait_for(go(), timeout)


async def is_closed(reader, timeout: float = 2) -> bool:
    """True if the server closed the connection (EOF or reset) within ``timeout``, no data."""
    try:
        data = await asyncio.wait_for(reader.read(1), timeout)
    except ConnectionResetError:
        return True
    except asyncio.TimeoutError:
        return False
    assert data == b"", f"unexpected bytes after the response: {data!r}"
    return True


async def exchange(port: int, data: bytes, methods=(), timeout: float = 5) -> list[Response]:
    """Send ``data`` on a new connection and read everything until the server closes it."""
    reader, writer = await open_raw(port)
    try:
        writer.write(data)
        await writer.drain()
        raw = await read_all(reader, timeout)
    finally:
        writer.close()
    resps, rest = parse_responses(raw, methods)
    assert rest == b"", rest
    return resps


@contextlib.contextmanager
def cyclic_garbage():
    """Yields a list that, once the block ends, names unicorn_aio's objects which became garbage
    in reference cycles while it ran (what only the collector, not reference counting, frees)."""
    ours: list[str] = []
    gc.collect()
    # Only what the block makes counts: an earlier test's server, held by its closed loop's
    # C-level handles, can be let go of inside the window and be collected there.
    before = {id(o) for o in gc.get_objects() if _is_ours(o)}
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield ours
        gc.collect()
        ours += [type(o).__name__ for o in gc.garbage
                 if _is_ours(o) and id(o) not in before]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def _is_ours(obj: object) -> bool:
    module = type(obj).__module__
    return isinstance(module, str) and module.startswith("unicorn_aio")
