"""A statsd server for tests."""

from __future__ import annotations

import asyncio
import socket
import time


class Receiver:
    """A statsd server for one test: collects the metric lines of every datagram it gets."""

    def __init__(self, family=socket.AF_INET, path: str | None = None) -> None:
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        if family == socket.AF_UNIX:
            self.sock.bind(path)
            self.address = f"unix:{path}"
        else:
            self.sock.bind(("127.0.0.1", 0))
            self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.sock.setblocking(False)
        self.datagrams: list[bytes] = []

    @property
    def lines(self) -> list[str]:
        while True:
            try:
                self.datagrams.append(self.sock.recv(65536))
            except BlockingIOError:
                break
        return [line for d in self.datagrams for line in d.decode().split("\n")]

    def count(self, line: str) -> int:
        return self.lines.count(line)

    async def wait(self, predicate, timeout: float = 10, what: str = "metrics") -> list[str]:
        deadline = time.monotonic() + timeout
        while not predicate(self.lines):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; got {self.lines}")
            await asyncio.sleep(0.02)
        return self.lines

    def close(self) -> None:
        self.sock.close()
