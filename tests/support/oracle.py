"""The differential test's harness (tests/parity): gunicorn and unicorn_aio run the same echo
app (echo_app.py); the same raw bytes go to both on fresh connections, and what each did is
reduced to an ``Outcome`` that can be compared.

What an exchange observes, per server:
- the final responses (1xx aside) the request bytes drew, read strictly from the wire;
- whether the server then closed the connection. Waiting for a close that may never come would
  cost a keep-alive timeout per case, so once the responses are in and the line is quiet a
  probe request follows on the same connection: its answer proves the connection was kept, an
  EOF or a reset proves it was closed;
- for each 2xx, the environ keys and body the app saw (echo_app's JSON).
A server that answers nothing within ``stall`` seconds is waiting for more bytes (a body shorter
than its Content-Length, a head without its blank line): that is an outcome too, ``waits``. So
is a probe answered as part of another request (the case's last bytes began one), or not at all.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import urllib.error
from dataclasses import dataclass, field

import gunicorn_venv
from procs import SUPPORT, ServerProcess, free_port, get, stop_session, wait_for
from rawhttp import Response

PROBE_PATH = "/__parity_probe"
PROBE = b"GET " + PROBE_PATH.encode() + b" HTTP/1.1\r\nHost: probe\r\n\r\n"
# Both servers get as many app threads as the test keeps exchanges in flight, so a case whose
# body never completes (it holds a thread reading it) never delays another case.
CONCURRENCY = 24
THREADS = 32


@dataclass(frozen=True)
class Outcome:
    """What one server did with one case's bytes."""

    statuses: tuple[int, ...]       # final statuses, in order, the probe's excluded
    closed: bool | None             # None: the server waits for more bytes, connection open
    echoes: tuple[str, ...] = ()    # per 2xx: the app's JSON (sorted keys); others: ""
    informational: tuple[int, ...] = ()
    note: str = ""                  # a response that could not be parsed, and why

    @property
    def waits(self) -> bool:
        return not self.statuses and self.closed is None

    def key(self) -> tuple:
        """What must be equal for the two servers to agree: status classes, the close, and
        what the app saw."""
        # A 100 Continue counts only where nothing else came: a server MAY omit it once it has
        # the content (RFC 9110 10.1.1), but one still waiting for the content owes it.
        said_continue = 100 in self.informational if not self.statuses else None
        return (tuple(s // 100 for s in self.statuses), self.closed, self.echoes, bool(self.note),
                said_continue)

    def brief(self) -> str:
        if self.note:
            return f"unparseable ({self.note})"
        if self.waits:
            return "100 Continue, then waits" if 100 in self.informational else "waits for more bytes"
        head = " ".join(map(str, self.statuses)) or "no response"
        if self.closed is None:
            return f"{head}, then waits for more bytes"
        return f"{head}, {'closed' if self.closed else 'kept open'}"

    def explain(self, other: Outcome) -> str:
        """This outcome, with the app's view where it differs from ``other``'s."""
        out = self.brief()
        for mine, theirs in zip(self.echoes, other.echoes):
            if mine and theirs and mine != theirs:
                a, b = json.loads(mine), json.loads(theirs)
                diff = {k: a.get(k, "<absent>") for k in sorted(set(a) | set(b))
                        if a.get(k) != b.get(k)}
                out += f"; app saw {diff}"
        return out


@dataclass
class Servers:
    """The two servers of a test session, each serving echo_app on 127.0.0.1."""

    gunicorn_port: int
    ours_port: int
    stoppers: list = field(default_factory=list)

    def stop(self) -> None:
        for stop in reversed(self.stoppers):
            stop()


def gunicorn_version() -> str:
    done = subprocess.run([gunicorn_venv.PYTHON, "-c", "import gunicorn; print(gunicorn.__version__)"],
                          capture_output=True, text=True, timeout=30)
    return done.stdout.strip()


def start_servers(log_dir: str, settings: tuple[str, ...] = ()) -> Servers:
    """gunicorn (gthread: the worker that keeps connections alive, like ours) and unicorn_aio,
    one worker each, default settings otherwise (and the command-line ``settings``, the same
    for both); stopped by pid."""
    servers = Servers(0, 0)
    try:
        port = free_port()
        log = open(os.path.join(log_dir, "gunicorn.log"), "wb")
        proc = subprocess.Popen(
            [gunicorn_venv.PYTHON, "-m", "gunicorn", "echo_app:app", "--bind", f"127.0.0.1:{port}",
             "--workers", "1", "--worker-class", "gthread", "--threads", str(THREADS), *settings],
            cwd=log_dir, env=dict(os.environ, PYTHONPATH=SUPPORT, PYTHONUNBUFFERED="1"),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        servers.stoppers.append(lambda: (stop_session(proc), log.close()))

        def gunicorn_ready() -> bool:
            if proc.poll() is not None:
                with open(log.name, "rb") as f:
                    raise AssertionError(f"gunicorn exited with {proc.returncode}:\n"
                                         + f.read().decode("utf-8", "replace")[-3000:])
            return _answers(f"http://127.0.0.1:{port}/")
        wait_for(gunicorn_ready, 30, what="gunicorn serving echo_app")
        servers.gunicorn_port = port

        ours = ServerProcess("echo_app:app", "--workers", "1", "--threads", str(THREADS),
                             *settings, log_path=os.path.join(log_dir, "unicorn_aio.log"))
        servers.stoppers.append(ours.stop)
        wait_for(lambda: ours.proc.poll() is None and _answers(ours.url + "/")
                 or _exited(ours), 30, what="unicorn_aio serving echo_app")
        servers.ours_port = ours.port
    except BaseException:
        servers.stop()
        raise
    return servers


def _answers(url: str) -> bool:
    try:
        get(url, timeout=1)
    except urllib.error.HTTPError:
        pass  # an answer still: tight limits among the settings may refuse this request
    except OSError:
        return False
    return True


def _exited(ours: ServerProcess) -> bool:
    if ours.proc.poll() is not None:
        raise AssertionError(f"unicorn_aio exited with {ours.proc.returncode}:\n{ours.log()}")
    return False


def parse_responses(data: bytes, methods: tuple[str, ...], eof: bool) -> tuple[list[Response], bytes]:
    """rawhttp.parse_responses, for any HTTP/1.x status line (gunicorn answers in the request's
    version); raises ValueError on anything that is not a response."""
    methods_left, out = list(methods), []
    while data:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            break
        head, rest = data[:end], data[end + 4:]
        lines = head.split(b"\r\n")
        version, status_text, *_ = lines[0].split(b" ", 2) + [b""]
        if not version.startswith(b"HTTP/1.") or not status_text.isdigit():
            raise ValueError(f"status line {lines[0][:60]!r}")
        status = int(status_text)
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                raise ValueError(f"header line {line[:60]!r}")
            headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        fields = {k.lower(): v for k, v in headers}
        method = methods_left[0] if methods_left and status >= 200 else "GET"
        if status < 200 or status in (204, 304) or method == "HEAD":
            body = b""
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            body, pos = b"", 0
            while True:
                nl = rest.find(b"\r\n", pos)
                if nl < 0:
                    return out, data
                size = int(rest[pos:nl].split(b";")[0], 16)
                if len(rest) < nl + 4 + size:
                    return out, data
                body += rest[nl + 2:nl + 2 + size]
                pos = nl + 4 + size
                if size == 0:
                    break
            rest = rest[pos:]
        elif "content-length" in fields:
            n = int(fields["content-length"])
            if len(rest) < n:
                break
            body, rest = rest[:n], rest[n:]
        elif eof:
            body, rest = rest, b""
        else:
            break
        if status >= 200 and methods_left:
            methods_left.pop(0)
        out.append(Response(status, headers, body, head))
        data = rest
    return out, data


def _split(buf: bytes, methods: tuple[str, ...], eof: bool):
    """(final responses, 1xx statuses, rest, why unparseable) of what has arrived so far."""
    try:
        resps, rest = parse_responses(buf, methods, eof=eof)
    except ValueError as exc:
        return [], (), buf, str(exc)
    finals = [r for r in resps if r.status >= 200]
    return finals, tuple(r.status for r in resps if r.status < 200), rest, ""


def _is_probe(resp) -> bool:
    try:
        return json.loads(resp.body).get("PATH_INFO") == PROBE_PATH
    except (ValueError, AttributeError):
        return False


async def exchange(port: int, data: bytes, methods: tuple[str, ...] = (), *, stall: float = 1.5,
                   idle: float = 0.05, probe_timeout: float = 5.0) -> Outcome:
    """Send ``data`` on a new connection to 127.0.0.1:``port`` and observe (see the module doc)."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    buf, probed, closed, probe_deadline = b"", False, None, 0.0
    try:
        try:
            writer.write(data)
            await writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            pass  # refused before it had read everything: its answer is still to be read
        start = loop.time()
        while True:
            finals, _, rest, note = _split(buf, methods, eof=False)
            if note:
                break
            if probed:
                if finals and _is_probe(finals[-1]):
                    closed = False
                    break
                timeout = probe_deadline - loop.time()
            elif finals and not rest:
                timeout = idle
            else:
                timeout = start + stall - loop.time()
            try:
                chunk = await asyncio.wait_for(reader.read(65536), max(timeout, 0.001))
            except asyncio.TimeoutError:
                if probed or not finals or rest:
                    break  # waits: for the rest of a request, or with the probe unanswered
                probed, probe_deadline = True, loop.time() + probe_timeout
                try:
                    writer.write(PROBE)
                    await writer.drain()
                except (ConnectionResetError, BrokenPipeError):
                    closed = True
                    break
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                closed = True
                break
            buf += chunk
    finally:
        writer.close()
    finals, informational, rest, note = _split(buf, methods, eof=bool(closed))
    if rest and not note and closed:
        note = f"bytes after the responses: {rest[:80]!r}"
    if finals and _is_probe(finals[-1]):
        probe = json.loads(finals.pop().body)
        if (probe.get("REQUEST_METHOD"), probe.get("RAW_URI")) != ("GET", PROBE_PATH):
            # The probe finished a request the server was still reading (the case's last
            # bytes began one): the server was waiting for more bytes.
            closed = None
    echoes = tuple(r.body.decode("latin-1") if 200 <= r.status < 300 else "" for r in finals)
    return Outcome(tuple(r.status for r in finals), closed, echoes, informational, note)


async def run_both(servers: Servers, data: bytes, methods: tuple[str, ...] = (),
                   **kw) -> tuple[Outcome, Outcome]:
    """(gunicorn's outcome, ours) for the same bytes, sent at the same time."""
    theirs, ours = await asyncio.gather(exchange(servers.gunicorn_port, data, methods, **kw),
                                        exchange(servers.ours_port, data, methods, **kw))
    return theirs, ours


async def run_many(servers: Servers, cases: list[tuple[bytes, tuple[str, ...]]]
                   ) -> list[tuple[Outcome, Outcome]]:
    """run_both for every (data, methods), CONCURRENCY at a time. Where the two disagree and one
    of them answered nothing, the case is run again with a longer stall, so a busy machine's
    slow answer is not taken for a server that waits."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(data: bytes, methods: tuple[str, ...], stall: float) -> tuple[Outcome, Outcome]:
        async with gate:
            return await run_both(servers, data, methods, stall=stall)

    results = await asyncio.gather(*(one(d, m, 1.5) for d, m in cases))
    again = [i for i, (theirs, ours) in enumerate(results)
             if theirs.key() != ours.key() and (theirs.waits or ours.waits)]
    redone = await asyncio.gather(*(one(*cases[i], 3.0) for i in again))
    for i, pair in zip(again, redone):
        results[i] = pair
    return list(results)
