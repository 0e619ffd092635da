"""Request bodies the protocol reads itself, past the head llhttp parsed.

llhttp refuses chunk extensions with the whitespace RFC 9112 7.1.1 allows (``5 ; name = value``),
so a chunked body is read here instead, by gunicorn 27's rules (its http/body.py): whitespace
only where the grammar has BWS, each extension a token with an optional token or quoted-string
value (then ignored), a chunk size line no longer than limit_request_field_size, and a trailer
section checked field by field as gunicorn checks one.  ``LengthBody`` reads the Content-Length
body of a request llhttp took for a protocol switch (see HttpProtocol.on_headers_complete).

Each ``feed`` hands the body's bytes to ``on_body`` and returns None while the body goes on, or
the bytes after it once it has ended.  A malformed body raises ``Reject``.
"""

from __future__ import annotations

import re
from typing import Callable

from unicorn_aio.http.rules import FORBIDDEN_TRAILERS, UNDERSCORE, Reject, is_token

# RFC 9112 7.1.1, everything from the first ";" of a chunk size line:
#   chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
# with token and quoted-string from RFC 9110 5.6.2 and 5.6.4 (gunicorn 27's CHUNK_EXT_RE).
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED_STRING = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_CHUNK_EXT = re.compile(rb"(?:[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN
                        + rb"|" + _QUOTED_STRING + rb"))?)*\Z")
_HEX = re.compile(rb"[0-9A-Fa-f]+\Z")
# RFC 9110 5.5: a field value is VCHAR, obs-text, SP and HTAB; CR, LF, NUL and the other CTLs
# (and DEL) are refused.
_INVALID_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# A size no body reaches: past it the number only serves to overflow a reader.
MAX_CHUNK_SIZE = (1 << 63) - 1

_SIZE, _DATA, _DATA_END, _TRAILERS = range(4)


class LengthBody:
    """The next ``left`` bytes are the body."""

    __slots__ = ("on_body", "left")

    def __init__(self, on_body: Callable[[bytes], None], length: int) -> None:
        self.on_body = on_body
        self.left = length

    def feed(self, data: bytes) -> bytes | None:
        left = self.left
        if len(data) < left:
            self.left = left - len(data)
            self.on_body(data)
            return None
        self.left = 0
        self.on_body(data[:left])
        return data[left:]


class ChunkedBody:
    """A chunked body (RFC 9112 7.1), from its first chunk size line to its trailer section."""

    __slots__ = ("on_body", "header_map", "limit_fields", "limit_field_size", "limit_section",
                 "state", "left", "buf")

    def __init__(self, on_body: Callable[[bytes], None], header_map: str, limit_fields: int,
                 limit_field_size: int) -> None:
        self.on_body = on_body
        self.header_map = header_map
        self.limit_fields = limit_fields
        self.limit_field_size = limit_field_size  # also the longest chunk size line, as gunicorn
        self.limit_section = limit_fields * (limit_field_size + 2) + 4
        self.state = _SIZE
        self.left = 0  # bytes of the current chunk still to come
        self.buf = b""  # an unfinished size line, chunk end or trailer section

    def feed(self, data: bytes) -> bytes | None:
        buf, self.buf = (self.buf + data if self.buf else data), b""
        pos = 0
        state = self.state
        while True:
            if state == _DATA:
                left = self.left
                if len(buf) - pos <= left:
                    self.left = left - (len(buf) - pos)
                    if pos < len(buf):
                        self.on_body(buf[pos:] if pos else buf)
                    self.state = _DATA if self.left else _DATA_END
                    return None
                self.on_body(buf[pos:pos + left])
                pos += left
                self.left = 0
                state = _DATA_END
            if state == _DATA_END:
                crlf = buf[pos:pos + 2]
                if crlf != b"\r\n":
                    if crlf in (b"", b"\r"):
                        self.buf, self.state = crlf, _DATA_END
                        return None
                    raise Reject(400, "chunk data not followed by CRLF")
                pos += 2
                state = _SIZE
            if state == _SIZE:
                end = buf.find(b"\r\n", pos)
                if end < 0 or end - pos > self.limit_field_size:
                    if len(buf) - pos > self.limit_field_size:
                        raise Reject(400, "chunk size line longer than "
                                     f"{self.limit_field_size} bytes")
                    if b"\n" in buf[pos:]:
                        raise Reject(400, "bare LF in a chunk size line")
                    self.buf, self.state = buf[pos:], _SIZE
                    return None
                size = self._size(buf[pos:end])
                pos = end + 2
                if size:
                    self.left = size
                    state = _DATA
                    continue
                state = _TRAILERS
            # _TRAILERS: the last chunk is in; a blank line or trailer fields and one end it
            rest = buf[pos:]
            if rest[:2] == b"\r\n":
                return rest[2:]
            end = rest.find(b"\r\n\r\n")
            if end < 0:
                if len(rest) > self.limit_section:
                    raise Reject(431, "trailer section too large")
                if rest.count(b"\n") != rest.count(b"\r\n"):
                    raise Reject(400, "bare LF in the trailer section")
                self.buf, self.state = rest, _TRAILERS
                return None
            self._trailers(rest[:end])
            return rest[end + 4:]

    @staticmethod
    def _size(line: bytes) -> int:
        size, semi, ext = line.partition(b";")
        if semi:
            size = size.rstrip(b" \t")  # BWS before the first ";", and only there
        if not _HEX.match(size):
            raise Reject(400, "invalid chunk size: " + size[:32].decode("latin-1"))
        if semi and not _CHUNK_EXT.match(semi + ext):
            raise Reject(400, "invalid chunk extension")
        value = int(size, 16)
        if value > MAX_CHUNK_SIZE:
            raise Reject(400, "chunk size too large")
        return value

    def _trailers(self, section: bytes) -> None:
        """Trailer fields are never shown to the app (RFC 9110 6.5.1 lets a recipient drop
        them), but are refused where gunicorn 27 refuses them, in the order it checks."""
        kept = 0
        content_type = False
        for line in section.split(b"\r\n"):
            if kept >= self.limit_fields:
                raise Reject(431, f"more than {self.limit_fields} trailer fields")
            if line[:1] in (b" ", b"\t"):
                raise Reject(400, "obsolete line folding in the trailer section")
            name, colon, value = line.partition(b":")
            if not colon or not is_token(name):
                raise Reject(400, "invalid trailer field")
            lname = name.lower()
            if lname in FORBIDDEN_TRAILERS:
                # 9110 6.5.1: framing, routing and credentials cannot come after the content.
                raise Reject(400, "field not allowed in a trailer: " + name.decode("latin-1"))
            if _INVALID_VALUE.search(value):
                raise Reject(400, "invalid character in a trailer field")
            if len(line) + 2 > self.limit_field_size:
                raise Reject(431, f"trailer field longer than {self.limit_field_size} bytes")
            if lname == b"content-type":
                if content_type:
                    raise Reject(400, "more than one Content-Type trailer")
                content_type = True
            if UNDERSCORE in name and self.header_map != "dangerous":
                if self.header_map == "refuse":
                    raise Reject(400, "trailer name with underscore: " + name.decode("latin-1"))
                continue  # dropped, and not counted (gunicorn counts the fields it keeps)
            kept += 1
