"""The request body (http/body.py): ``wsgi.input`` between the loop that feeds it and the app
that reads it.  A buffered body is read like a file; a streaming one blocks a real reader thread
until the feeder (this test, standing in for the loop) supplies bytes, ends or fails the body.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from unicorn_aio.http import body as body_module
from unicorn_aio.http.body import (
    HIGH_WATER,
    LOW_WATER,
    NO_BODY,
    BodyTimeout,
    ClientDisconnected,
    RequestBody,
)
from unicorn_aio.http.contract import NEVER
from unicorn_aio.wsgi.threadpool import ThreadPool


class Reader:
    """Runs ``fn()`` on a real thread; ``result()`` joins it and returns or raises its outcome."""

    def __init__(self, fn) -> None:
        self.value = self.error = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.started = time.monotonic()
        self.thread.start()

    def _run(self, fn) -> None:
        try:
            self.value = fn()
        except BaseException as exc:  # handed to the test thread by result()
            self.error = exc

    def blocked(self, for_seconds: float = 0.05) -> bool:
        self.thread.join(for_seconds)
        return self.thread.is_alive()

    def result(self, timeout: float = 5.0):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "reader still blocked"
        if self.error is not None:
            raise self.error
        return self.value


class Calls:
    """A thread-safe callback that counts its calls (resume_reading, send_continue, notify)."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            self.count += 1


def eventually(predicate, timeout: float = 5.0) -> bool:
    """True once ``predicate()`` is (a loaded machine may be slow to run the reader thread)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def buffered(data: bytes) -> RequestBody:
    body = RequestBody()
    body.feed(data)
    body.finish()
    return body


def streaming(timeout=NEVER, min_rate=0, send_continue=None):
    body, resume = RequestBody(), Calls()
    body.start_streaming(resume, send_continue, timeout, min_rate)
    return body, resume


# -- a body that arrived whole ----------------------------------------------------------------

def test_buffered_read_all_then_empty():
    body = buffered(b"hello world")
    assert (body.complete, body.buffered) == (True, 11)
    assert body.read() == b"hello world"
    assert body.read() == b"" and body.read(5) == b""


def test_buffered_read_sizes():
    body = buffered(b"hello world")
    assert body.read(5) == b"hello"
    assert body.read(0) == b""
    assert body.read(None) == b" world"  # PEP 3333: read(None) reads all, like read()


def test_buffered_read_past_the_end_is_short():
    assert buffered(b"abc").read(10) == b"abc"


def test_feed_before_streaming_never_pauses():
    # Bodies up to inline_body_max are buffered whole before the app starts; no backpressure.
    body = RequestBody()
    assert body.feed(b"x" * (HIGH_WATER * 2)) is False


def test_buffered_readline():
    body = buffered(b"one\ntwo\nthree")
    assert [body.readline(), body.readline(), body.readline(), body.readline()] == [
        b"one\n", b"two\n", b"three", b""]


def test_buffered_readline_size():
    body = buffered(b"abcdef\nxy\n")
    assert body.readline(4) == b"abcd"
    assert body.readline(None) == b"ef\n"
    assert body.readline(10) == b"xy\n"


def test_buffered_readlines_and_hint():
    assert buffered(b"a\nbb\nccc\n").readlines() == [b"a\n", b"bb\n", b"ccc\n"]
    # hint: stop once the lines read reach it (io.IOBase.readlines)
    assert buffered(b"a\nbb\nccc\n").readlines(3) == [b"a\n", b"bb\n"]


def test_buffered_iteration():
    assert list(buffered(b"a\nb\n\nc")) == [b"a\n", b"b\n", b"\n", b"c"]


def test_empty_body():
    body = buffered(b"")
    assert (body.read(), body.readline(), body.readlines(), list(body)) == (b"", b"", [], [])


# -- a streaming body, read by an app thread --------------------------------------------------

def test_read_all_waits_for_the_end():
    body, _ = streaming()
    reader = Reader(body.read)
    body.feed(b"abc")
    assert reader.blocked()
    body.feed(b"def")
    body.finish()
    assert reader.result() == b"abcdef"


def test_read_n_waits_for_n_bytes():
    # PEP 3333 / gunicorn's Body: read(n) returns n bytes unless the body ends first; Django
    # reads Content-Length bytes in one call and trusts the answer.
    body, _ = streaming()
    reader = Reader(lambda: body.read(5))
    body.feed(b"abc")
    assert reader.blocked()
    body.feed(b"defg")
    assert reader.result() == b"abcde"
    assert body.buffered == 2


def test_read_n_short_at_the_end():
    body, _ = streaming()
    reader = Reader(lambda: body.read(10))
    body.feed(b"abc")
    assert reader.blocked()
    body.finish()
    assert reader.result() == b"abc"


def test_readline_waits_for_the_newline():
    body, _ = streaming()
    reader = Reader(body.readline)
    body.feed(b"no newline yet")
    assert reader.blocked()
    body.feed(b"...\nnext")
    assert reader.result() == b"no newline yet...\n"
    assert body.read(4) == b"next"


def test_readline_size_does_not_wait_for_more():
    body, _ = streaming()
    body.feed(b"abcdef")
    assert Reader(lambda: body.readline(4)).result() == b"abcd"


def test_streaming_readlines():
    body, _ = streaming()
    reader = Reader(body.readlines)
    body.feed(b"a\nb")
    body.feed(b"\nc")
    body.finish()
    assert reader.result() == [b"a\n", b"b\n", b"c"]


def test_read_after_the_end_does_not_wait():
    body, _ = streaming()
    body.feed(b"xy")
    body.finish()
    assert body.read() == b"xy" and body.read(3) == b"" and body.readline() == b""


# -- flow control -----------------------------------------------------------------------------

def test_feed_asks_to_pause_at_high_water():
    body, _ = streaming()
    assert body.feed(b"x" * (HIGH_WATER - 1)) is False
    assert body.feed(b"x") is True
    assert body.feed(b"x") is True  # still paused until the reader drains


def test_reading_below_low_water_resumes_once():
    body, resume = streaming()
    body.feed(b"x" * HIGH_WATER)
    body.read(HIGH_WATER - LOW_WATER)  # down to LOW_WATER: not yet below it
    assert resume.count == 0
    body.read(1)
    assert resume.count == 1
    body.read(1)
    assert resume.count == 1
    assert body.feed(b"x") is False


def test_reader_waiting_on_a_paused_body_resumes_it():
    # A reader asking for more than the paused buffer holds would wait for bytes the paused
    # loop never reads: it resumes reading before it waits.
    body, resume = streaming()
    body.feed(b"x" * HIGH_WATER)
    reader = Reader(lambda: body.read(HIGH_WATER + 3))
    assert eventually(lambda: resume.count == 1)
    body.feed(b"abc")
    assert reader.result() == b"x" * HIGH_WATER + b"abc"


def test_send_continue_on_the_first_wait_only():
    # 9110 10.1.1: with Expect: 100-continue the client waits for the 100 before sending; it is
    # sent when the app first reads and finds nothing, once.
    sent = Calls()
    body, _ = streaming(send_continue=sent)
    assert sent.count == 0
    reader = Reader(lambda: body.read(4))
    assert eventually(lambda: sent.count == 1)
    body.feed(b"ab")
    assert reader.blocked()
    body.feed(b"cd")
    assert reader.result() == b"abcd"
    assert sent.count == 1


def test_send_continue_not_needed_when_bytes_are_in():
    sent = Calls()
    body, _ = streaming(send_continue=sent)
    body.feed(b"abcd")
    assert body.read(4) == b"abcd"
    assert sent.count == 0


def test_resume_from_an_app_thread_runs_on_the_loop():
    # As HttpProtocol wires it: resume_reading goes through the pool's call_on_loop.
    async def main():
        loop = asyncio.get_running_loop()
        pool = ThreadPool(loop, 1)
        resumed = loop.create_future()

        def on_loop():
            resumed.set_result(threading.get_ident())

        body = RequestBody()
        body.start_streaming(lambda: pool.call_on_loop(on_loop), None, NEVER)
        body.feed(b"x" * HIGH_WATER)
        reader = Reader(lambda: body.read(HIGH_WATER))
        assert await asyncio.wait_for(resumed, 5) == threading.get_ident()
        assert len(reader.result()) == HIGH_WATER

    asyncio.run(main())


# -- failure ----------------------------------------------------------------------------------

def test_abort_wakes_the_reader_with_the_error():
    body, _ = streaming()
    reader = Reader(body.read)
    assert reader.blocked()
    body.abort(ClientDisconnected("client disconnected"))
    with pytest.raises(ClientDisconnected, match="client disconnected"):
        reader.result()


def test_abort_fails_read_all_even_with_bytes_buffered():
    # The whole body can never come: read() must not pass a truncated body off as complete.
    body, _ = streaming()
    body.feed(b"partial")
    body.abort(ClientDisconnected("gone"))
    with pytest.raises(ClientDisconnected):
        body.read()


def test_abort_leaves_bytes_already_in_for_read_n():
    body, _ = streaming()
    body.feed(b"abcdef")
    body.abort(ClientDisconnected("gone"))
    assert body.read(4) == b"abcd"
    with pytest.raises(ClientDisconnected):
        body.read(4)


def test_abort_fails_readline_without_a_newline():
    body, _ = streaming()
    body.feed(b"no end")
    body.abort(ClientDisconnected("gone"))
    with pytest.raises(ClientDisconnected):
        body.readline()


def test_abort_after_finish_is_ignored():
    body, _ = streaming()
    body.feed(b"whole")
    body.finish()
    body.abort(ClientDisconnected("gone"))
    assert body.read() == b"whole"


# -- --body-timeout and --body-min-rate -------------------------------------------------------

def test_timeout_when_nothing_arrives():
    body, _ = streaming(timeout=0.1)
    reader = Reader(body.read)
    with pytest.raises(BodyTimeout, match=r"^request body stalled for 0.1s$"):
        reader.result()
    assert time.monotonic() - reader.started >= 0.1


def test_timeout_off():
    # Config's 0 (off) is NEVER past the edge (contract.or_never); the body takes only that.
    body, _ = streaming(timeout=NEVER)
    reader = Reader(body.read)
    assert reader.blocked(0.2)
    body.finish()
    assert reader.result() == b""


def test_timeout_counts_from_the_last_byte():
    body, _ = streaming(timeout=0.4)
    reader = Reader(body.read)
    for _ in range(10):  # 0.5 s in all, never 0.4 s without a byte
        time.sleep(0.05)
        body.feed(b"x")
    body.finish()
    assert reader.result() == b"x" * 10


def test_min_rate_cuts_a_trickle():
    # Past the first --body-timeout seconds, the bytes fed must pay for the time waited.
    body, _ = streaming(timeout=0.2, min_rate=1000)
    reader = Reader(body.read)
    deadline = time.monotonic() + 5
    while reader.blocked(0.03) and time.monotonic() < deadline:
        body.feed(b"x")  # ~30 bytes/s
    with pytest.raises(BodyTimeout, match=r"^request body arriving at \d+ bytes/s, "
                                          r"under --body-min-rate 1000$"):
        reader.result()
    assert time.monotonic() - reader.started < 2


def test_min_rate_lets_a_fast_enough_body_through():
    body, _ = streaming(timeout=0.5, min_rate=1000)
    reader = Reader(body.read)
    for _ in range(25):  # 0.5 s at ~50 000 bytes/s
        time.sleep(0.02)
        body.feed(b"x" * 1000)
    body.finish()
    assert len(reader.result()) == 25000


def test_min_rate_without_timeout_starts_after_the_grace(monkeypatch):
    monkeypatch.setattr(body_module, "MIN_RATE_GRACE", 0.2)
    body, _ = streaming(timeout=NEVER, min_rate=1000)
    reader = Reader(body.read)
    assert reader.blocked(0.1)  # inside the grace: nothing owed yet
    with pytest.raises(BodyTimeout, match="under --body-min-rate 1000"):
        reader.result()
    assert time.monotonic() - reader.started >= 0.2


# -- a reader on the loop (ASGI) --------------------------------------------------------------

def test_read_nowait():
    body, _ = streaming()
    assert body.read_nowait() == b""
    body.feed(b"ab")
    body.feed(b"cd")
    assert body.read_nowait() == b"abcd"
    assert body.read_nowait() == b""


def test_read_nowait_hands_out_bytes_before_the_error():
    body, _ = streaming()
    body.feed(b"ab")
    body.abort(ClientDisconnected("gone"))
    assert body.read_nowait() == b"ab"
    with pytest.raises(ClientDisconnected):
        body.read_nowait()


def test_read_nowait_resumes_below_low_water():
    body, resume = streaming()
    body.feed(b"x" * HIGH_WATER)
    assert len(body.read_nowait()) == HIGH_WATER
    assert resume.count == 1


def test_want_more_sends_continue_once_and_resumes_a_paused_body():
    sent = Calls()
    body, resume = streaming(send_continue=sent)
    body.want_more()
    body.want_more()
    assert (sent.count, resume.count) == (1, 0)
    body.feed(b"x" * HIGH_WATER)
    body.want_more()
    assert resume.count == 1


def test_watch_notifies_on_feed_finish_and_abort():
    body, _ = streaming()
    notify, direct = Calls(), Calls()
    body.watch(notify, direct)
    body.feed(b"a")
    body.finish()
    assert notify.count == 2
    body2, _ = streaming()
    body2.watch(notify, direct)
    body2.abort(ClientDisconnected("gone"))
    assert notify.count == 3


def test_watch_resume_is_called_directly():
    body, threaded = streaming()
    direct = Calls()
    body.watch(Calls(), direct)
    body.feed(b"x" * HIGH_WATER)
    body.read_nowait()
    assert (direct.count, threaded.count) == (1, 0)


def test_unwatch_stops_notifications():
    body, _ = streaming()
    notify = Calls()
    body.watch(notify, Calls())
    body.unwatch()
    body.feed(b"a")
    body.finish()
    assert notify.count == 0


# -- NO_BODY: the one body every request without one shares ------------------------------------

def test_no_body_reads_empty_every_way():
    assert NO_BODY.complete
    assert NO_BODY.read() == NO_BODY.read(10) == NO_BODY.readline() == b""
    assert NO_BODY.readlines() == [] and list(NO_BODY) == []
    assert NO_BODY.read_nowait() == b""


def test_no_body_stays_unchanged_whatever_its_users_do():
    # Shared by all requests: a reader's callbacks or a disconnect must not stick to it.
    NO_BODY.watch(lambda: None, lambda: None)
    NO_BODY.abort(ClientDisconnected("gone"))
    NO_BODY.finish()
    NO_BODY.unwatch()
    assert NO_BODY.read() == b"" and NO_BODY.read_nowait() == b""
    with pytest.raises(RuntimeError):
        NO_BODY.feed(b"x")
    with pytest.raises(RuntimeError):
        NO_BODY.start_streaming(lambda: None, None, 1.0)
    assert NO_BODY.complete and NO_BODY.buffered == 0
