"""Request lines llhttp refuses and gunicorn serves, parsed through a stand-in.

llhttp parses only the methods it lists, HTTP/1.0 and 1.1, and absolute-form targets whose
scheme and authority are its idea of valid.  gunicorn serves any method token (upper case, 3 to
20 bytes: its conventions), any HTTP/1.x (RFC 9110 2.5: a higher minor version is processed as
the highest one supported, 1.1), and any absolute-form target urlsplit takes.  For such a line
the protocol parses again from the line's start with a stand-in line of the same length that
llhttp accepts (so every byte offset after it holds), and puts the real method, target and
version on the request.  Only lines llhttp refused pay for this.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from unicorn_aio.http.rules import ABSOLUTE_FORM, is_token, unknown_method_status

# What llhttp (under httptools) parses as a method; "PRI" it takes for the HTTP/2 preface.
LLHTTP_METHODS = frozenset(b"""DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE
    PROPFIND PROPPATCH SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE
    M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK SOURCE QUERY""".split())
_LINE = re.compile(rb"([^ ]+) ([!-~]+) HTTP/1\.([0-9])")  # RFC 9112 3.2: a target is VCHARs
# The start of a line that may still become one stand_in takes.
_LINE_START = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Z]{1,20}(?: [!-~]*(?: [!-~]*)?)?\r?")


def may_become(start: bytes) -> bool:
    """Whether an incomplete request line llhttp refused is worth the next read."""
    return _LINE_START.fullmatch(start) is not None


def refused_method_status(line: bytes) -> int:
    """The answer to a request line llhttp refused for its method (``line`` from its start,
    maybe past its CRLF): as gunicorn, a complete line that is not three parts
    (``OPTIONS* HTTP/1.1``) is not a request line, 400, whatever its first word."""
    end = line.find(b"\r\n")
    if end >= 0 and line.count(b" ", 0, end) < 2:
        return 400
    return unknown_method_status(line.partition(b" ")[0])


def stand_in(line: bytes, permit: bool = False, casefold: bool = False
             ) -> tuple[bytes, tuple[bytes, bytes, str]] | None:
    """For a request line (CRLF excluded) llhttp refused: (a line of the same length llhttp
    parses the same way, (method, target, version) the request really has); None where the line
    is not one gunicorn serves either, or llhttp's refusal was not about the line.  ``permit``
    and ``casefold`` are gunicorn's permit_unconventional_http_method and casefold_http_method:
    any token is a method (three bytes at least: the stand-in needs them), upper-cased."""
    match = _LINE.fullmatch(line)
    if match is None:
        return None
    method, target, minor = match.groups()
    known = method in LLHTTP_METHODS
    if known:
        pass
    elif permit:
        if len(method) < 3 or not is_token(method):
            return None
    elif unknown_method_status(method) != 501:
        return None  # not a method token by gunicorn's conventions: 400 as before
    if target[:1] == b"/" or target == b"*":
        stand_target = target
    elif ABSOLUTE_FORM.match(target):
        try:
            urlsplit(target)
        except ValueError:
            return None
        stand_target = b"/" + b"a" * (len(target) - 1)  # framing never depends on the target
    else:
        return None
    if known and stand_target is target and minor in b"01":
        return None  # nothing here llhttp refuses: the fault is elsewhere in the head
    # llhttp accepts a run of spaces after the method; framing is the same for any method but
    # HEAD and CONNECT, which it knows.
    stand_method = method if known else b"GET" + b" " * (len(method) - 3)
    version = "1.0" if minor == b"0" else "1.1"
    stand = b"%s %s HTTP/%s" % (stand_method, stand_target, version.encode())
    return stand, (method.upper() if casefold else method, target, version)
