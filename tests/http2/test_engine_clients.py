"""Both engines against real HTTP/2 clients (curl, h2load: nghttp2's own client), each on the
smallest server an engine allows (tests/support/h2engine_server.py), no protocol in between."""

from __future__ import annotations

import asyncio
import re
import shutil

import pytest
from h2engine_server import start

from unicorn_aio.http2.engines import ENGINES, engine_available

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    why = engine_available(request.param)
    if why:
        pytest.skip(why)
    return request.param


async def run(*argv: str, stdin: bytes | None = None) -> tuple[int, str]:
    if not shutil.which(argv[0]):
        pytest.skip(f"{argv[0]} is not installed (make systools)")
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(stdin), 90)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, out.decode(errors="replace")


async def test_curl_prior_knowledge_get_and_upload(engine_name: str) -> None:
    server, port = await start(engine_name)
    try:
        rc, out = await run("curl", "-sS", "--http2-prior-knowledge", f"http://127.0.0.1:{port}/")
        assert (rc, out) == (0, "Hello, World!")
        # 3 MB: many times the 64 KiB windows, given back only as the server reads.
        rc, out = await run("curl", "-sS", "--http2-prior-knowledge", "--data-binary", "@-",
                            f"http://127.0.0.1:{port}/upload", stdin=b"u" * 3_000_000)
        assert (rc, out) == (0, "3000000")
    finally:
        server.close()


async def test_curl_h2c_upgrade(engine_name: str) -> None:
    server, port = await start(engine_name)
    try:
        rc, out = await run("curl", "-sS", "-v", "--http2", f"http://127.0.0.1:{port}/")
        assert rc == 0, out
        assert "101 Switching Protocols" in out and out.endswith("Hello, World!")
    finally:
        server.close()


async def test_h2load_many_streams_on_one_connection(engine_name: str) -> None:
    """20,000 requests, 10 at a time, on one connection: what a load balancer's long-lived
    connection does (zttp 0.0.35 ends such a connection with 'flood detected' near 4,096)."""
    server, port = await start(engine_name)
    try:
        rc, out = await run("h2load", "-n", "20000", "-c", "1", "-m", "10", f"http://127.0.0.1:{port}/")
        assert rc == 0, out
        done = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
                         r"(\d+) failed, (\d+) errored", out)
        assert done, out
        assert done.groups() == ("20000", "20000", "20000", "0", "0"), out
    finally:
        server.close()
