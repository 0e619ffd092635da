"""``unicorn_aioc``: the control socket's command-line client (also ``python -m unicorn_aio.ctl``).

``unicorn_aioc show workers`` answers once; without a command it reads commands from the
terminal (or from stdin, one a line).  Tables for people, ``--json`` for scripts: the data of
each answer exactly as the server sent it.  It speaks gunicorn's protocol, so it also talks to
a gunicorn 25.1+ master (pass its socket with -s).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from typing import Any, Callable

from unicorn_aio import __version__
from unicorn_aio.ctl.protocol import ControlClient, ProtocolError, default_socket_path, socket_path

PROG = "unicorn_aioc"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Talk to a running unicorn_aio master through its control socket.",
        epilog="examples: unicorn_aioc show workers | unicorn_aioc worker add 2 | "
               "unicorn_aioc --json show stats | unicorn_aioc help")
    parser.add_argument("-s", "--socket", metavar="PATH", default=None,
                        help=f"the control socket (default: {default_socket_path()})")
    parser.add_argument("-j", "--json", action="store_true", help="print the answer's JSON")
    parser.add_argument("-c", "--command", help="a command as one string (as gunicornc's -c)")
    parser.add_argument("-t", "--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="how long to wait for an answer (default 30)")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("words", nargs="*", metavar="COMMAND",
                        help="e.g. show workers; none: read commands from the terminal")
    args = parser.parse_args(argv)
    path = socket_path(args.socket)
    command = args.command or shlex.join(args.words)
    client = ControlClient(path, args.timeout)
    try:
        client.connect()
    except OSError as exc:
        sys.stderr.write(f"{PROG}: error: cannot connect to {path}: {exc.strerror or exc} "
                         "(is the server running with this --control-socket?)\n")
        return 1
    try:
        with client:
            code = run(client, command, args.json) if command else interactive(client, args.json)
        sys.stdout.flush()  # here, not at exit: a reader gone by then is an ignored traceback
    except BrokenPipeError:
        # The reader stopped reading (unicorn_aioc show stats | head): quietly, as cat does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code


def run(client: ControlClient, command: str, as_json: bool) -> int:
    try:
        answer = client.send(command)
    except (OSError, ProtocolError) as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return 1
    if answer.get("status") != "ok":
        sys.stderr.write(f"{PROG}: error: {answer.get('error', 'unknown error')}\n")
        return 1
    data = answer.get("data") or {}
    print(json.dumps(data, indent=2) if as_json else render(command, data))
    return 1 if data.get("success") is False else 0


def interactive(client: ControlClient, as_json: bool) -> int:
    tty = sys.stdin.isatty()
    if tty:
        print(f"Connected to {client.path}; 'help' lists the commands, 'quit' leaves.")
    code = 0
    while True:
        try:
            line = input("unicorn_aio> " if tty else "").strip()
        except EOFError:
            return code
        except KeyboardInterrupt:
            print()
            return 130
        if line in ("quit", "exit", "q"):
            return code
        if line:
            code = run(client, line, as_json)


# -- tables -----------------------------------------------------------------------------------


def render(command: str, data: dict[str, Any]) -> str:
    words = " ".join(command.lower().split()[:2])
    renderer = RENDERERS.get(words)
    if renderer is not None:
        return renderer(data)
    return json.dumps(data, indent=2) if data else "OK"


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return lines


def _n(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items() if v) or "0"
    return "-" if value is None else str(value)


def _mib(value: Any) -> str:
    return "-" if value is None else f"{value / 1048576:.1f}M"


def _state(w: dict[str, Any]) -> str:
    if w.get("aborted"):
        return "timeout"
    if w.get("stopping"):
        return "stopping"
    if w.get("retiring"):
        return "retiring"
    return "serving" if w.get("booted") else "booting"


def _longest(value: Any) -> str:
    if not value:
        return "-"
    if isinstance(value, dict):
        method, path, seconds = value.get("method"), value.get("path"), value.get("seconds")
    else:
        method, path, seconds = value
    path = str(path)
    path = path if len(path) <= 40 else path[:39] + "…"
    return f"{seconds:.1f}s {method} {path}"


def render_workers(data: dict[str, Any]) -> str:
    workers = data.get("workers", [])
    if not workers:
        return "No workers running"
    rows = []
    for w in workers:
        total = w.get("threads_total")
        threads = f"{w.get('threads_busy')}/{total}" if total else "-"  # ASGI: no pool
        beat = w.get("last_heartbeat")
        rows.append([_n(w.get("pid")), _n(w.get("age")), _state(w),
                     "-" if beat is None else f"{beat:.1f}s", _n(w.get("requests")),
                     _n(w.get("in_flight")), threads, _mib(w.get("rss")),
                     _n(w.get("connections")), _longest(w.get("longest"))])
    lines = table(["PID", "AGE", "STATE", "BEAT", "REQUESTS", "IN FLIGHT", "THREADS", "RSS",
                   "CONNS", "LONGEST REQUEST"], rows)
    return "\n".join([*lines, "", f"Total: {data.get('count', len(workers))} workers"])


def render_stats(data: dict[str, Any]) -> str:
    width = max(len(k) for k in data) if data else 0
    return "\n".join(f"{k + ':':<{width + 1}} {_mib(v) if k == 'rss' else _n(v)}"
                     for k, v in data.items())


def render_config(data: dict[str, Any]) -> str:
    return "\n".join(f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}"
                     for k, v in sorted(data.items()))


def render_listeners(data: dict[str, Any]) -> str:
    rows = [[_n(x.get("address")), _n(x.get("type")), _n(x.get("fd"))]
            for x in data.get("listeners", [])]
    return "\n".join(table(["ADDRESS", "TYPE", "FD"], rows)) if rows else "No listeners bound"


def render_all(data: dict[str, Any]) -> str:
    master = data.get("arbiter") or {}
    workers = data.get("web_workers", [])
    lines = [f"Master: pid {master.get('pid')}", f"Workers: {len(workers)}"]
    if workers:
        rows = [[_n(w.get("pid")), _n(w.get("age")), _state(w),
                 _n(w.get("last_heartbeat"))] for w in workers]
        lines += ["  " + ln for ln in table(["PID", "AGE", "STATE", "BEAT"], rows)]
    return "\n".join(lines)


def render_help(data: dict[str, Any]) -> str:
    commands = data.get("commands", {})
    width = max(map(len, commands), default=0)
    return "\n".join(f"  {c:<{width}}  {d}" for c, d in sorted(commands.items()))


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "show workers": render_workers, "show stats": render_stats, "show config": render_config,
    "show listeners": render_listeners, "show all": render_all, "help": render_help,
}
