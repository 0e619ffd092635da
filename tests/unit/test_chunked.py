"""The chunked body reader (http/chunked.py), h11-style: each case the exact bytes after a head,
the outcome, and the RFC 9112 sentence (or gunicorn 27 rule) it comes from.  Every case is fed
whole and one byte at a time: where the reads end must not matter.
"""

from __future__ import annotations

import pytest

from unicorn_aio.http.chunked import ChunkedBody, LengthBody
from unicorn_aio.http.rules import Reject


def read(data: bytes, step: int | None = None, header_map: str = "drop", fields: int = 100,
         field_size: int = 8190):
    """-> (body, the bytes after it) or ("reject", status); None for the rest: still reading."""
    got: list[bytes] = []
    reader = ChunkedBody(got.append, header_map, fields, field_size)
    rest = None
    step = step or len(data) or 1
    try:
        for i in range(0, len(data), step):
            rest = reader.feed(data[i:i + step])
            if rest is not None:  # the body has ended: the rest is the next message's
                rest += data[i + step:]
                break
    except Reject as exc:
        return "reject", exc.status
    assert all(got), "an empty piece of body"
    return b"".join(got), rest


NEXT = b"GET / HTTP/1.1\r\n"

CASES = [
    ("one-chunk", b"5\r\nhello\r\n0\r\n\r\n" + NEXT, (b"hello", NEXT),
     "9112 7.1: chunked-body = *chunk last-chunk trailer-section CRLF"),
    ("hex-sizes", b"a\r\n0123456789\r\nB\r\n0123456789a\r\n0\r\n\r\n",
     (b"0123456789" * 2 + b"a", b""), "9112 7.1: chunk-size = 1*HEXDIG, either case"),
    ("leading-zeros", b"0005\r\nhello\r\n000\r\n\r\n", (b"hello", b""), "1*HEXDIG"),
    ("ext", b"5;a=b\r\nhello\r\n0;c\r\n\r\n", (b"hello", b""),
     "9112 7.1.1: a recipient MUST ignore unrecognized chunk extensions"),
    ("ext-bws", b"5 \t; a = b ;\tc\r\nhello\r\n0 ; d = \"e f\"\r\n\r\n", (b"hello", b""),
     "9112 7.1.1: chunk-ext = *( BWS \";\" BWS chunk-ext-name [ BWS \"=\" BWS chunk-ext-val ] )"),
    ("ext-quoted", b'5;a="x\\"y;z"\r\nhello\r\n0\r\n\r\n', (b"hello", b""),
     "9110 5.6.4: quoted-string with a quoted-pair"),
    ("trailers", b"5\r\nhello\r\n0\r\nX-A: 1\r\nX-B:2\r\n\r\n" + NEXT, (b"hello", NEXT),
     "9112 7.1.2: trailer-section = *( field-line CRLF )"),
    ("trailer-underscore-dropped", b"0\r\nX_A: 1\r\n\r\n", (b"", b""),
     "gunicorn header_map drop applies to trailers"),
    ("empty", b"0\r\n\r\n", (b"", b""), "9112 7.1: last-chunk alone"),
    ("incomplete", b"5\r\nhel", (b"hel", None), "the body goes on"),
    ("incomplete-trailers", b"0\r\nX-A: 1\r\n", (b"", None), "the trailer section goes on"),
    # refused
    ("size-not-hex", b"5g\r\nhello\r\n0\r\n\r\n", ("reject", 400), "9112 7.1: 1*HEXDIG"),
    ("size-empty", b"\r\nhello\r\n0\r\n\r\n", ("reject", 400), "9112 7.1: 1*HEXDIG"),
    ("size-sign", b"+5\r\nhello\r\n0\r\n\r\n", ("reject", 400), "9112 7.1: 1*HEXDIG"),
    ("size-0x", b"0x5\r\nhello\r\n0\r\n\r\n", ("reject", 400), "9112 7.1: 1*HEXDIG"),
    ("size-space-no-ext", b"5 \r\nhello\r\n0\r\n\r\n", ("reject", 400),
     "9112 7.1.1: BWS only before a chunk extension (gunicorn 27)"),
    ("size-leading-space", b" 5\r\nhello\r\n0\r\n\r\n", ("reject", 400), "1*HEXDIG"),
    ("size-overflow", b"1" + b"0" * 16 + b"\r\n", ("reject", 400),
     "9112 7.1: recipients MUST anticipate potentially large hexadecimal numerals and prevent "
     "parsing errors due to integer conversion overflows"),
    ("size-bare-lf", b"5\nhello\r\n0\r\n\r\n", ("reject", 400), "9112 2.2: lines end with CRLF"),
    ("ext-bare-cr", b"5;a\rb\r\nhello\r\n0\r\n\r\n", ("reject", 400),
     "9112 2.2: a bare CR MUST be considered invalid"),
    ("ext-no-name", b"5;=b\r\nhello\r\n0\r\n\r\n", ("reject", 400), "chunk-ext-name = token"),
    ("ext-bad-value", b"5;a=b c\r\nhello\r\n0\r\n\r\n", ("reject", 400),
     "chunk-ext-val = token / quoted-string"),
    ("ext-open-quote", b'5;a="b\r\nhello\r\n0\r\n\r\n', ("reject", 400), "quoted-string"),
    ("ext-ctl", b"5;a=\x01\r\nhello\r\n0\r\n\r\n", ("reject", 400), "token"),
    ("data-longer", b"5\r\nhello!\r\n0\r\n\r\n", ("reject", 400),
     "9112 7.1: chunk-data CRLF: a chunk is exactly chunk-size octets"),
    ("data-no-crlf", b"5\r\nhelloX\r\n", ("reject", 400), "9112 7.1: chunk-data CRLF"),
    ("data-bare-lf", b"5\r\nhello\n0\r\n\r\n", ("reject", 400), "9112 7.1: chunk-data CRLF"),
    ("trailer-obs-fold", b"0\r\nX-A: a\r\n b\r\n\r\n", ("reject", 400),
     "9112 5.2: obs-fold in a trailer is rejected like one in the header section"),
    ("trailer-no-colon", b"0\r\nX-A\r\n\r\n", ("reject", 400), "9112 5: field-line"),
    ("trailer-bad-name", b"0\r\nX A: 1\r\n\r\n", ("reject", 400), "9110 5.1: field-name = token"),
    ("trailer-space-before-colon", b"0\r\nX-A : 1\r\n\r\n", ("reject", 400),
     "9112 5.1: no whitespace between field name and colon"),
    ("trailer-nul", b"0\r\nX-A: a\x00b\r\n\r\n", ("reject", 400), "9110 5.5: no NUL in a value"),
    ("trailer-bare-lf", b"0\r\nX-A: 1\nX-B: 2\r\n\r\n", ("reject", 400), "9112 2.2: CRLF"),
    ("trailer-host", b"0\r\nHost: x\r\n\r\n", ("reject", 400),
     "9110 6.5.1: fields that affect routing MUST NOT be generated as trailers (gunicorn 27)"),
    ("trailer-content-length", b"0\r\nContent-Length: 5\r\n\r\n", ("reject", 400),
     "9110 6.5.1: message framing"),
    ("trailer-transfer-encoding", b"0\r\nTransfer-Encoding: chunked\r\n\r\n", ("reject", 400),
     "9110 6.5.1: message framing"),
    ("trailer-trailer", b"0\r\nTrailer: X\r\n\r\n", ("reject", 400), "9110 6.5.1"),
    ("trailer-authorization", b"0\r\nauthorization: x\r\n\r\n", ("reject", 400),
     "9110 6.5.1: authentication"),
    ("trailer-te", b"0\r\nTE: trailers\r\n\r\n", ("reject", 400), "9110 6.5.1: TE"),
    ("trailer-two-content-types", b"0\r\nContent-Type: a\r\nContent-Type: b\r\n\r\n",
     ("reject", 400), "9110 5.3: not a list (gunicorn 27)"),
]


@pytest.mark.parametrize("step", [None, 1, 2, 3])
@pytest.mark.parametrize("data, expected", [pytest.param(c[1], c[2], id=c[0]) for c in CASES])
def test_chunked_body(data, expected, step):
    assert read(data, step) == expected


def test_limits():
    # gunicorn 27: the chunk size line is bounded by limit_request_field_size, the trailer
    # section by limit_request_fields fields (those kept) and its header-block size.
    assert read(b"5;a=" + b"b" * 20 + b"\r\nhello\r\n0\r\n\r\n", field_size=20) == ("reject", 400)
    assert read(b"5;a=" + b"b" * 14 + b"\r\nhello\r\n0\r\n\r\n", field_size=20) == (b"hello", b"")
    assert read(b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", fields=2) == ("reject", 431)
    trailers = b"0\r\nA: 1\r\nB_C: 2\r\nD: 3\r\n\r\n"
    assert read(trailers, fields=2) == (b"", b"")  # B_C is dropped, and not counted
    assert read(trailers, fields=2, header_map="dangerous") == ("reject", 431)
    assert read(b"0\r\nA_B: 1\r\n\r\n", header_map="refuse") == ("reject", 400)
    assert read(b"0\r\nX-Aaaaaa: 123456789\r\n\r\n", field_size=20) == ("reject", 431)  # 19 + 2
    assert read(b"0\r\nX-Aaaaaa: 12345678\r\n\r\n", field_size=20) == (b"", b"")
    assert read(b"0\r\n" + b"X-A: 1\r\n" * 10, fields=2, field_size=20) == ("reject", 431)


def test_length_body():
    got: list[bytes] = []
    reader = LengthBody(got.append, 5)
    assert reader.feed(b"he") is None
    assert reader.feed(b"llo" + NEXT) == NEXT
    assert got == [b"he", b"llo"]
