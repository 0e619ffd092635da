"""gunicorn's own request corpus as a second differential test (issue #19).

gunicorn's sdist ships the requests its parser is tested with: tests/requests/valid/*.http and
invalid/*.http, each beside a .py that may set a few settings (proxy_protocol, header_map, the
limits...).  gunicorn_venv.ensure_corpus() fetches them for the pinned release into the oracle's
venv; they are gunicorn's and never copied into this project.  Each case goes to both servers,
started with the settings its .py sets, read as gunicorn's tests/treq.py reads the file; every
difference must be one oracle_differences.GENERATED accounts for (a missing Host, both refusing
with other codes, ...).  Settings unicorn_aio refuses at start are in docs/gunicorn-differences.md.
"""

from __future__ import annotations

import ast
import asyncio
import glob
import os
import re

import gunicorn_venv
import oracle
import pytest
from oracle_differences import unexplained_differences

pytestmark = pytest.mark.timeout(300)

# Refused at start, each with its reason in docs/gunicorn-differences.md (Request parsing).
REFUSED = {"strip_header_spaces", "permit_obsolete_folding"}
_SET = re.compile(r"""cfg\.set\(\s*['"](\w+)['"]\s*,\s*(.+?)\)\s*$""", re.M)


def load(path: str) -> bytes:
    """The request bytes of a .http file, as gunicorn's tests/treq.py makes them."""
    with open(path, "rb") as f:
        data = f.read()
    data = data.replace(b"\n", b"").replace(b"\\r\\n", b"\r\n")
    data = data.replace(b"\\0", b"\0").replace(b"\\n", b"\n").replace(b"\\t", b"\t")
    return re.sub(rb"\\x([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), data)


def settings_of(path: str) -> dict[str, object]:
    """What the case's .py sets with cfg.set(name, literal)."""
    try:
        with open(path[:-len(".http")] + ".py") as f:
            source = f.read()
    except FileNotFoundError:
        return {}
    return {name: ast.literal_eval(value) for name, value in _SET.findall(source)}


def argv(settings: dict[str, object]) -> tuple[str, ...]:
    """As gunicorn's command line spells them (both servers take gunicorn's spellings)."""
    out: list[str] = []
    for name, value in sorted(settings.items()):
        flag = "--" + name.replace("_", "-")
        if name == "limit_request_field_size":
            flag = "--limit-request-field_size"  # gunicorn's own spelling of this one
        out += [flag] if value is True else [flag, str(value)]
    return tuple(out)


@pytest.fixture(scope="module")
def cases():
    reason = gunicorn_venv.ensure() or gunicorn_venv.ensure_corpus()
    if reason:
        pytest.skip(f"NO GUNICORN CORPUS: {reason}")
    groups: dict[tuple[str, ...], list[tuple[str, bytes]]] = {}
    refused = []
    for path in sorted(glob.glob(os.path.join(gunicorn_venv.CORPUS, "*", "*.http"))):
        settings = settings_of(path)
        name = os.path.relpath(path, gunicorn_venv.CORPUS)
        if REFUSED & settings.keys():
            refused.append(name)
            continue
        groups.setdefault(argv(settings), []).append((name, load(path)))
    assert sum(map(len, groups.values())) > 100, "the corpus looks truncated"
    return groups, refused


def test_gunicorn_corpus(cases, tmp_path):
    groups, refused = cases
    assert len(refused) <= 5, refused  # the cases of the two settings refused at start
    unexplained = []
    for n, (settings, group) in enumerate(groups.items()):
        (tmp_path / str(n)).mkdir()
        servers = oracle.start_servers(str(tmp_path / str(n)), settings)
        try:
            found = asyncio.run(unexplained_differences(servers, [raw for _, raw in group]))
        finally:
            servers.stop()
        unexplained += [f"settings {' '.join(settings) or '(defaults)'}: {what}" for what in found]
    assert not unexplained, (f"{len(unexplained)} of gunicorn's corpus requests differ, no rule "
                             "explains them:\n" + "\n".join(unexplained))
