"""gunicorn's control protocol, byte for byte, so that its ``gunicornc`` and our ``unicorn_aioc``
both talk to either server.

Each message is a 4-byte big-endian length and that many bytes of UTF-8 JSON.  A request is
``{"id": N, "command": "worker add", "args": ["2"]}``; its answer ``{"id": N, "status": "ok",
"data": {...}}`` or ``{"id": N, "status": "error", "error": "..."}``.  A connection carries any
number of requests, one at a time.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from typing import Any

MAX_MESSAGE = 16 * 1024 * 1024  # gunicorn's limit
HEADER = struct.Struct(">I")
SOCKET_NAME = "unicorn_aio.ctl"


class ProtocolError(Exception):
    pass


def default_socket_path() -> str:
    """$XDG_RUNTIME_DIR/unicorn_aio.ctl, else ~/.unicorn_aio/unicorn_aio.ctl (gunicorn's rule,
    with our name: a gunicorn on the same host keeps its own socket)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, SOCKET_NAME)
    return os.path.join(os.path.expanduser("~"), ".unicorn_aio", SOCKET_NAME)


def socket_path(configured: str | None, cwd: str | None = None) -> str:
    """The path a --control-socket value means: the default when unset, relative to ``cwd``."""
    path = configured or default_socket_path()
    return path if os.path.isabs(path) else os.path.join(cwd or os.getcwd(), path)


def encode(message: dict[str, Any]) -> bytes:
    payload = json.dumps(message).encode("utf-8")
    return HEADER.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> dict[str, Any]:
    try:
        message = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"invalid JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object")
    return message


def payload_length(header: bytes) -> int:
    (length,) = HEADER.unpack(header)
    if length > MAX_MESSAGE:
        raise ProtocolError(f"message too large: {length} bytes")
    return length


def read_message(sock: socket.socket) -> dict[str, Any]:
    """One message from a blocking socket; ConnectionError at a clean end of stream."""
    header = _read_exactly(sock, HEADER.size, at_start=True)
    return decode_payload(_read_exactly(sock, payload_length(header)))


def _read_exactly(sock: socket.socket, size: int, at_start: bool = False) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(min(size - len(data), 65536))
        if not chunk:
            if at_start and not data:
                raise ConnectionError("connection closed")
            raise ProtocolError("connection closed inside a message")
        data += chunk
    return data


def request(request_id: int, command: str, args: list[str] | None = None) -> dict[str, Any]:
    return {"id": request_id, "command": command, "args": list(args or [])}


def ok(request_id: Any, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": request_id, "status": "ok", "data": data}


def error(request_id: Any, message: str) -> dict[str, Any]:
    return {"id": request_id, "status": "error", "error": message}


class ControlClient:
    """A connection to a control socket: ``with ControlClient(path) as c: c.send("show stats")``."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._next_id = 0

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self._sock = sock

    def send(self, command: str, args: list[str] | None = None) -> dict[str, Any]:
        """The full answer to one command (``status`` ok or error)."""
        if self._sock is None:
            self.connect()
        assert self._sock is not None
        self._next_id += 1
        try:
            self._sock.sendall(encode(request(self._next_id, command, args)))
            return read_message(self._sock)
        except (OSError, ProtocolError):
            self.close()
            raise

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> ControlClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
