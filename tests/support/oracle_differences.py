"""Where unicorn_aio and gunicorn differ on the differential test's requests (tests/parity), and
why. docs/gunicorn-differences.md ("Differential test") shows the same table to users.

DELIBERATE: a difference kept on purpose, for a reason: an RFC MUST, a smuggling risk, or the
same verdict with the status code the RFC names. Its test checks that both servers still do
what the table says.
OPEN: a difference nobody has decided to keep. Its test is an xfail(strict): the day the two
agree, the test fails until the entry leaves the table.

CORPUS holds the corpus cases (oracle_cases.py) that differ, by case id. GENERATED holds the
rules that account for a generated (hypothesis) case's difference: each names the corpus case
that shows the same difference, and shares its kind.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import oracle
from oracle import Outcome

DELIBERATE = "deliberate"
OPEN = "open"


@dataclass(frozen=True)
class Difference:
    case: str
    kind: str
    gunicorn: str   # what gunicorn does, as Outcome.explain() words it
    ours: str       # what unicorn_aio does
    reason: str


def _d(case: str, kind: str, gunicorn: str, ours: str, reason: str) -> tuple[str, Difference]:
    return case, Difference(case, kind, gunicorn, ours, reason)


KEPT, CLOSED, WAITS = "kept open", "closed", "waits for more bytes"

CORPUS: dict[str, Difference] = dict([
    # --- deliberate
    _d("missing-host", DELIBERATE, f"200, {KEPT}", f"400, {CLOSED}",
       "RFC 9112 3.2: a server MUST respond with 400 to an HTTP/1.1 request that lacks Host"),
    _d("host-space", DELIBERATE, f"200, {KEPT}", f"400, {CLOSED}",
       "RFC 9112 3.2: a server MUST respond with 400 to a request whose Host has an invalid value"),
    _d("host-userinfo", DELIBERATE, f"200, {KEPT}", f"400, {CLOSED}", "as host-space"),
    _d("host-bad-port", DELIBERATE, f"200, {KEPT}", f"400, {CLOSED}", "as host-space"),
    _d("host-slash", DELIBERATE, f"200, {KEPT}", f"400, {CLOSED}", "as host-space"),
    _d("host-list", DELIBERATE, f"200, {KEPT}", f"400, {CLOSED}",
       "as host-space; and a proxy may route by either name (smuggling)"),
    _d("host-ipv6-unclosed", DELIBERATE, f"200, {KEPT}", f"400, {CLOSED}", "as host-space"),
    _d("connection-close-in-list", DELIBERATE, f"200, {KEPT}", f"200, {CLOSED}",
       "RFC 9112 9.6: a server that receives a close connection option MUST close after the "
       "response; gunicorn reads only a first Connection line that is exactly 'close'"),
    _d("connection-close-second-line", DELIBERATE, f"200, {KEPT}", f"200, {CLOSED}",
       "as connection-close-in-list (RFC 9110 5.3: the two lines are one list)"),
    _d("chunk-ext-over-limit", DELIBERATE, f"200, {KEPT}", f"400, {CLOSED}",
       "RFC 9112 7.1.1: a server ought to limit chunk extensions and answer 4xx past it; the "
       "limit is limit_request_field_size, which gunicorn applies only to a line split across "
       "reads"),
    _d("connect", DELIBERATE, f"200, {CLOSED}", f"501, {CLOSED}",
       "RFC 9110 9.3.6: a 2xx to CONNECT tells the client a tunnel is open, and MUST NOT carry "
       "Content-Length or Transfer-Encoding; a WSGI app can do neither, so CONNECT is refused"),
    _d("cl-huge", DELIBERATE, WAITS, f"400, {CLOSED}",
       "RFC 9110 8.6: recipients MUST anticipate large numerals and prevent overflows; a length "
       "past 64 bits is refused, since a proxy in front reads it otherwise (smuggling)"),
    _d("chunk-size-overflow", DELIBERATE, WAITS, f"400, {CLOSED}",
       "RFC 9112 7.1: recipients MUST anticipate large hexadecimal numerals and prevent overflows; "
       "a chunk size past 64 bits is refused, not waited for"),
    _d("garbage", DELIBERATE, WAITS, f"400, {CLOSED}",
       "not a request: refused at the first byte that cannot begin a request line; gunicorn waits "
       "for a line end that a TLS client never sends, holding a thread"),
    _d("chunk-bare-lf", DELIBERATE, WAITS, f"400, {CLOSED}",
       "RFC 9112 7.1: a chunk-size line ends with CRLF; refused at the bare LF, where gunicorn "
       "waits for a CRLF to find the line invalid"),
    _d("version-2", DELIBERATE, f"400, {CLOSED}", f"505, {CLOSED}",
       "both refuse; RFC 9110 15.6.6: 505 is the answer for an unsupported major version"),
    _d("te-empty", DELIBERATE, f"501, {CLOSED}", f"400, {CLOSED}",
       "both refuse; RFC 9112 6.3: a Transfer-Encoding whose final coding is not chunked MUST "
       "get 400"),
    _d("te-trailing-comma", DELIBERATE, f"501, {CLOSED}", f"400, {CLOSED}",
       "both refuse a framing field with an empty list element (a smuggling shape: RFC 9110 "
       "5.6.1 has recipients ignore it, a proxy may not)"),
    _d("script-name-outside-path", DELIBERATE, f"500, {CLOSED}", f"200, {KEPT}",
       "a proxy that strips its prefix (nginx proxy_pass with a URI) sends a path outside the "
       "SCRIPT_NAME it sets; we serve it (ASGI: root_path before the path; WSGI: the whole path "
       "as PATH_INFO), where gunicorn fails with a 500"),
    _d("http10-keep-alive-list", DELIBERATE, f"200, {CLOSED}", f"200, {KEPT}",
       "RFC 9112 9.3: an HTTP/1.0 request with the keep-alive connection option persists; "
       "gunicorn honours only a Connection value of exactly keep-alive"),
    _d("absolute-form-no-path", DELIBERATE, f"200, {KEPT}; app saw {{'PATH_INFO': ''}}",
       f"200, {KEPT}; app saw {{'PATH_INFO': '/'}}",
       "RFC 9110 4.2.3: an empty path is equivalent to '/', as in origin-form, where apps "
       "route it"),
    _d("http-minor-version", DELIBERATE, f"200, {KEPT}; app saw {{'SERVER_PROTOCOL': 'HTTP/1.2'}}",
       f"200, {KEPT}; app saw {{'SERVER_PROTOCOL': 'HTTP/1.1'}}",
       "RFC 9110 2.5: a higher minor version is processed as the highest one supported, 1.1, "
       "and the app is told the version it is served in"),
    _d("target-no-form", DELIBERATE, f"200, {KEPT}", f"400, {CLOSED}",
       "RFC 9112 3.2: a request-target not in one of its four forms is invalid; gunicorn serves "
       "any target with '://' in it, as a path when urlsplit finds no scheme"),
    # --- open
])


Completed = tuple[Outcome, Outcome] | None


@dataclass(frozen=True)
class Rule:
    """Accounts for a generated case's difference: ``applies(raw, gunicorn, ours, completed)``;
    where either server waited for more bytes, ``completed`` is the two outcomes for ``raw``
    with CRLF CRLF appended (the head ended), else None."""

    id: str
    shows: str      # the corpus case with the same difference (its kind is this rule's)
    applies: Callable[[bytes, Outcome, Outcome, Completed], bool]
    covers: str     # in words, for the doc

    @property
    def kind(self) -> str:
        return CORPUS[self.shows].kind


def _agree_until(theirs: Outcome, ours: Outcome) -> int:
    """How many leading responses have the same status class."""
    n = 0
    for a, b in zip(theirs.statuses, ours.statuses):
        if a // 100 != b // 100:
            break
        n += 1
    return n


def _first_split(theirs: Outcome, ours: Outcome) -> tuple[int | None, int | None]:
    """The first status where the two part ways (None: that one has no response there)."""
    n = _agree_until(theirs, ours)
    return (theirs.statuses[n] if n < len(theirs.statuses) else None,
            ours.statuses[n] if n < len(ours.statuses) else None)


def _served(status: int | None) -> bool:
    return status is not None and status // 100 == 2


# The methods llhttp (under httptools) parses; any other reaches neither app nor 400.
LLHTTP_METHODS = frozenset(b"""DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE
    PROPFIND PROPPATCH SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE
    M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK SOURCE QUERY""".split())
_GUNICORN_METHOD = re.compile(rb"[!$%&'*+\-.^_`|~0-9A-Z]{3,20}")  # a token without a-z or '#', 3 to 20 long


def _methods(raw: bytes) -> list[bytes]:
    """The first word of the request's first line and of each line after a blank one."""
    starts = [raw.lstrip(b"\r\n")] + [part.lstrip(b"\r\n") for part in raw.split(b"\r\n\r\n")[1:]]
    return [part.split(b"\r\n", 1)[0].split(b" ", 1)[0] for part in starts if part]


_REQUEST_LINE = re.compile(rb"^(?:\r\n)*(\S+) (\S+) (HTTP/\S*)", re.M)


_PROXY_LINE = re.compile(rb"^PROXY [^\r\n]*\r\n")  # --proxy-protocol's v1 line, before a head


def _missing_host(raw: bytes, theirs: Outcome, ours: Outcome, completed: Completed) -> bool:
    gunicorn, mine = _first_split(theirs, ours)
    if mine != 400 or not (gunicorn is None or _served(gunicorn)):
        return False
    for head in raw.split(b"\r\n\r\n"):
        head = _PROXY_LINE.sub(b"", head.lstrip(b"\r\n"))
        first = head.split(b"\r\n", 1)[0]
        if first.endswith(b" HTTP/1.1") and not re.search(rb"(?im)^host[ \t]*:", head):
            return True
    return False


# RFC 9110 7.2 and RFC 3986 3.2.2: uri-host [ ":" port ]; the reg-name may be empty.
_VALID_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|\[v[0-9A-Fa-f]+\.[-A-Za-z0-9._~!$&'()*+,;=:]+\]"
                         rb"|(?:[-A-Za-z0-9._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)(?::[0-9]*)?")
_HOST_FIELD = re.compile(rb"(?im)^host[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$")


def _invalid_host(raw: bytes, theirs: Outcome, ours: Outcome, completed: Completed) -> bool:
    gunicorn, mine = _first_split(theirs, ours)
    return mine == 400 and (gunicorn is None or _served(gunicorn)) and any(
        not _VALID_HOST.fullmatch(m.group(1)) for m in _HOST_FIELD.finditer(raw))


def _early_refusal(raw: bytes, theirs: Outcome, ours: Outcome, completed: Completed) -> bool:
    # gunicorn waits where we refuse; once the head is complete, gunicorn refuses too.
    n = _agree_until(theirs, ours)
    return (theirs.closed is None and len(theirs.statuses) == n and ours.closed is True
            and len(ours.statuses) == n + 1 and ours.statuses[n] // 100 == 4
            and completed is not None and len(completed[0].statuses) > n
            and completed[0].statuses[n] // 100 in (4, 5))



def _both_refuse(raw: bytes, theirs: Outcome, ours: Outcome, completed: Completed) -> bool:
    # The same verdict: both refuse the same request and close; only the code differs (one
    # checks another fault first, or names the one it found otherwise: 400, 501, 505).
    gunicorn, mine = _first_split(theirs, ours)
    return (gunicorn is not None and mine is not None and gunicorn // 100 in (4, 5)
            and mine // 100 in (4, 5) and theirs.closed is True and ours.closed is True
            and len(theirs.statuses) == len(ours.statuses))





_AUTHORITY = re.compile(rb"(?i)^[a-z][a-z0-9+.-]*://([^/?#]*)")
_AUTHORITY_CHARS = re.compile(rb"[-A-Za-z0-9._~!$&'()*+,;=%:@\[\]]*")



_NO_FORM = re.compile(rb"^(?:\r\n)?[^ \r\n]+ ([^/*\r\n][^ \r\n]*) HTTP/", re.M)


def _target_no_form(raw: bytes, theirs: Outcome, ours: Outcome, completed: Completed) -> bool:
    # A target with "://" but no scheme before it: gunicorn serves it, we answer 400.
    gunicorn, mine = _first_split(theirs, ours)
    return mine == 400 and _served(gunicorn) and any(
        b"://" in m.group(1) and not re.match(rb"[A-Za-z][-A-Za-z0-9+.]*://", m.group(1))
        for m in _NO_FORM.finditer(raw))


def _connect(raw: bytes, theirs: Outcome, ours: Outcome, completed: Completed) -> bool:
    gunicorn, mine = _first_split(theirs, ours)
    return mine == 501 and _served(gunicorn) and re.search(rb"(?m)^CONNECT ", raw) is not None


def _absolute_empty_path(raw: bytes, theirs: Outcome, ours: Outcome, completed: Completed) -> bool:
    # The app saw PATH_INFO "" from gunicorn where we said "/", and nothing else differs.
    return _app_saw(theirs, ours, lambda key, its, mine: (key, its, mine) == ("PATH_INFO", "", "/"))


def _app_saw(theirs: Outcome, ours: Outcome, same: Callable[[str, str, str], bool]) -> bool:
    """Same statuses and close; where the app's views differ, ``same(key, its, mine)`` for
    every differing key."""
    if theirs.statuses != ours.statuses or theirs.closed != ours.closed:
        return False
    for a, b in zip(theirs.echoes, ours.echoes):
        if a != b:
            its, mine = json.loads(a), json.loads(b)
            if set(its) != set(mine) or not all(
                    same(k, its[k], mine[k]) for k in its if its[k] != mine[k]):
                return False
    return True


GENERATED: list[Rule] = [
    Rule("gen-missing-host", "missing-host", _missing_host,
         "an HTTP/1.1 request without Host: gunicorn serves it, we answer 400"),
    Rule("gen-invalid-host", "host-space", _invalid_host,
         "a Host value outside uri-host [ \":\" port ]: gunicorn serves it, we answer 400"),
    Rule("gen-early-refusal", "garbage", _early_refusal,
         "we refuse a head at its first bad byte; gunicorn waits for the head's end, then refuses"),
    Rule("gen-both-refuse", "version-2", _both_refuse,
         "both refuse the request and close; the codes differ (400, 501, 505)"),
    Rule("gen-target-no-form", "target-no-form", _target_no_form,
         "a target with '://' after something that is no scheme: gunicorn serves it, we answer "
         "400"),
    Rule("gen-connect", "connect", _connect,
         "a CONNECT request: gunicorn passes it to the app, we answer 501"),
    Rule("gen-absolute-empty-path", "absolute-form-no-path", _absolute_empty_path,
         "an absolute-form target with an empty path: PATH_INFO '' from gunicorn, '/' from us"),
]


def explain(raw: bytes, theirs: Outcome, ours: Outcome, completed: Completed) -> Rule | None:
    for rule in GENERATED:
        if rule.applies(raw, theirs, ours, completed):
            return rule
    return None


async def unexplained_differences(servers: oracle.Servers, batch: list[bytes]) -> list[str]:
    """Send each request of ``batch`` to both servers: the differences no rule of GENERATED
    accounts for, each in words."""
    results = await oracle.run_many(servers, [(raw, ()) for raw in batch])
    differing = [(raw, theirs, ours) for raw, (theirs, ours) in zip(batch, results)
                 if theirs.key() != ours.key()]
    # Where a server waits for more bytes: what both do once the head has ended.
    waited = [raw + b"\r\n\r\n" for raw, theirs, ours in differing
              if theirs.closed is None or ours.closed is None]
    completed = iter(await oracle.run_many(servers, [(raw, ()) for raw in waited]))
    unexplained = []
    for raw, theirs, ours in differing:
        done = next(completed) if theirs.closed is None or ours.closed is None else None
        if explain(raw, theirs, ours, done) is None:
            unexplained.append(f"{raw!r}\n  gunicorn:    {theirs.explain(ours)}\n"
                               f"  unicorn_aio: {ours.explain(theirs)}")
    return unexplained


def markdown() -> str:
    """The table's rows for docs/gunicorn-differences.md ("Differential test"):
    ``python tests/support/oracle_differences.py`` prints them."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")
    rows = ["| case | kind | gunicorn 27 | unicorn_aio | reason |", "| --- | --- | --- | --- | --- |"]
    for kind in (DELIBERATE, OPEN):
        rows += [f"| `{d.case}` | {kind} | {cell(d.gunicorn)} | {cell(d.ours)} | {cell(d.reason)} |"
                 for d in CORPUS.values() if d.kind == kind]
    rows += ["", "| generated-case rule | kind | as the corpus case | covers |", "| --- | --- | --- | --- |"]
    rows += [f"| `{rule.id}` | {rule.kind} | `{rule.shows}` | {cell(rule.covers)} |"
             for rule in GENERATED]
    return "\n".join(rows)


def write_doc(path: str) -> None:
    """Put markdown()'s rows in place of the tables in the doc's "Differential test" section."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    head, section = text.split("## Differential test", 1)
    rest = ""
    if "\n## " in section:
        section, rest = section.split("\n## ", 1)
        rest = "\n## " + rest
    prose = section[:section.index("| case | kind |")]
    with open(path, "w", encoding="utf-8") as f:
        f.write(head + "## Differential test" + prose + markdown() + "\n" + rest)


if __name__ == "__main__":
    import os
    import sys
    if sys.argv[1:] == ["--write"]:
        here = os.path.dirname(os.path.abspath(__file__))
        write_doc(os.path.join(here, "..", "..", "docs", "gunicorn-differences.md"))
    else:
        print(markdown())
