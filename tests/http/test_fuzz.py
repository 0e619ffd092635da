"""Property test: whatever bytes a client sends, in whatever packets, the server answers with
well-formed HTTP/1.1 or closes cleanly, never crashes, never hangs, and serves the next client.

Requests start valid and are mutated (bytes inserted, deleted, replaced; CR/LF games; numbers
made huge; split at random packet boundaries).  One real worker process serves the whole
module, so a crash shows up as a new worker pid.  ``FUZZ_EXAMPLES`` raises the example count
(bench/fuzz_long.py); the default keeps the file well under a minute.
"""

from __future__ import annotations

import os
import re
import socket
import time

import pytest
from fuzz_cases import BASES, SPECIAL, mutate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from procs import ServerProcess
from rawhttp import parse_responses

pytestmark = pytest.mark.timeout(int(os.environ.get("FUZZ_TIMEOUT", "120")))

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
EXCHANGE_TIMEOUT = 8.0  # header/body timeouts are 2 s: anything slower is a hang
STATUS_LINE = re.compile(rb"HTTP/1\.1 [1-5][0-9][0-9] [^\r\n]*\Z")

mutation = st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.one_of(
        st.sampled_from(SPECIAL), st.binary(min_size=1, max_size=16))),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 8)),
    st.tuples(st.just("replace"), st.integers(0, 10_000), st.binary(min_size=1, max_size=4)),
    st.tuples(st.just("huge"), st.integers(0, 10_000), st.integers(1, 40)),
    st.tuples(st.just("repeat"), st.integers(0, 10_000), st.integers(2, 300)),
)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    log = tmp_path_factory.mktemp("fuzz") / "server.log"
    srv = ServerProcess("hostile_app:app", "--threads", "2", "--header-timeout", "2",
                        "--body-timeout", "2", "--keep-alive", "1", log_path=str(log))
    try:
        srv.wait_ready()
        srv.worker = srv.workers()[0]
        yield srv
    finally:
        srv.stop()


def send_and_read(port: int, pieces: list[bytes]) -> bytes:
    deadline = time.monotonic() + EXCHANGE_TIMEOUT
    with socket.create_connection(("127.0.0.1", port), timeout=EXCHANGE_TIMEOUT) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for piece in pieces:
                s.sendall(piece)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused early and closed: what it sent is still to be read
        data = b""
        while True:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                raise AssertionError(f"no close within {EXCHANGE_TIMEOUT}s; got {data[:200]!r}")
            if not chunk:
                break
            data += chunk
    return data


def check_well_formed(data: bytes) -> None:
    # 100 Continue may precede the final response; parse_responses skips 1xx as non-final.
    resps, rest = parse_responses(data, eof=True)
    for resp in resps:
        line = resp.head.split(b"\r\n", 1)[0]
        assert STATUS_LINE.match(line), line
        assert not ("content-length" in resp.headers and "transfer-encoding" in resp.headers)
    assert rest == b"", f"trailing bytes after the responses: {rest[:200]!r}"


def good_request(port: int) -> None:
    data = send_and_read(port, [b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"])
    [resp], _ = parse_responses(data)
    assert resp.status == 200


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          derandomize=not os.environ.get("FUZZ_RANDOM"),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(BASES), ops=st.lists(mutation, max_size=4),
       splits=st.lists(st.integers(1, 10_000), max_size=4))
def test_mutated_requests(fuzz_server, base, ops, splits):
    data = mutate(base, ops)
    cuts = sorted({c % (len(data) + 1) for c in splits} | {0, len(data)})
    pieces = [data[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]
    raw = send_and_read(fuzz_server.port, pieces)
    check_well_formed(raw)
    good_request(fuzz_server.port)
    assert fuzz_server.proc.poll() is None, "the master exited"
    assert fuzz_server.workers() == [fuzz_server.worker], "the worker crashed and was replaced"


def test_the_fuzzed_server_logged_no_internal_error(fuzz_server):
    log = fuzz_server.log()
    assert "internal error while parsing" not in log, log[-3000:]
    assert "Traceback" not in log or "Error handling request" in log, log[-3000:]
