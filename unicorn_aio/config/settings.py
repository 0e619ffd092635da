"""Every setting unicorn_aio understands, as one table.

Each row names a setting, its section, its command-line flags, the validator that turns a raw value
(a CLI string, a config-file object, an embedding keyword) into the stored value, its default and its
help. The argument parser, config-file loading, ``Config(**kw)`` and docs/settings.md all come from
this table; the machinery lives in config.py, the validators in validators.py.

The gunicorn settings (all of gunicorn 27.0's) keep gunicorn's names, flags and defaults so that
an existing gunicorn.conf.py and command line work unchanged. Settings we accept but do not act on
carry an ``ignored`` message that becomes a startup warning when the setting is given a value other
than its default (or than one of its ``honoured`` values: what unicorn_aio does anyway).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any, Callable

from unicorn_aio.config.validators import (
    address_list,
    bind_list,
    boolean,
    choice,
    directory,
    dotted_or_class,
    group,
    hook,
    http2_cleartext,
    http2_frame_size,
    http2_window,
    http_only,
    http_protocols,
    integer,
    listen_address,
    logger_class,
    loglevel,
    mapping,
    number,
    number_or_none,
    octal,
    permission_mode,
    post_request_hook,
    proxy_protocol_mode,
    refuse_true,
    scheme_headers,
    ssl_version,
    statsd_address,
    string,
    string_list,
    upper_comma_list,
    url_path,
    user,
    watched_files,
)


@dataclass(frozen=True)
class Setting:
    name: str
    section: str
    flags: tuple[str, ...]
    validate: Callable[[Any], Any]
    default: Any
    help: str
    metavar: str | None = None
    action: str = "store"  # argparse action: store, store_true, store_const, append
    const: Any = None
    nargs: str | None = None  # "?": the flag's value is optional, const when left out
    env: str | None = None  # environment variable that replaces the default when set
    env_format: str = "{}"
    default_doc: str | None = None  # how docs show a default computed at startup
    ignored: str | None = None  # warning when set: accepted for compatibility, not acted on
    honoured: tuple = ()  # values besides the default that need no warning: we do that anyway

    @property
    def short(self) -> str:
        return self.help.split("\n\n", 1)[0]


# -- default hooks: gunicorn's, doing nothing --------------------------------------------------------


def on_starting(server: Any) -> None: pass
def on_reload(server: Any) -> None: pass
def when_ready(server: Any) -> None: pass
def pre_fork(server: Any, worker: Any) -> None: pass
def post_fork(server: Any, worker: Any) -> None: pass
def post_worker_init(worker: Any) -> None: pass
def worker_int(worker: Any) -> None: pass
def worker_abort(worker: Any) -> None: pass
def pre_exec(server: Any) -> None: pass
def pre_request(worker: Any, req: Any) -> None: pass
def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None: pass
def child_exit(server: Any, worker: Any) -> None: pass
def worker_exit(server: Any, worker: Any) -> None: pass
def nworkers_changed(server: Any, new_value: Any, old_value: Any) -> None: pass
def on_exit(server: Any) -> None: pass
def on_dirty_starting(arbiter: Any) -> None: pass
def dirty_post_fork(arbiter: Any, worker: Any) -> None: pass
def dirty_worker_init(worker: Any) -> None: pass
def dirty_worker_exit(arbiter: Any, worker: Any) -> None: pass


def ssl_context(config: Any, default_ssl_context_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    return default_ssl_context_factory()


# -- the table ----------------------------------------------------------------------------------------

S = Setting
_ui = "unicorn_aio"
_sock, _work, _sec, _dbg = "Server Socket", "Worker Processes", "Security", "Debugging"
_mech, _log, _name, _ssl, _hooks = "Server Mechanics", "Logging", "Process Naming", "SSL", "Server Hooks"
_h2, _ctl, _dirty, _dirty_hooks = "HTTP/2", "Control", "Dirty Arbiters", "Dirty Arbiter Hooks"

_NO_DIRTY = ("dirty arbiters are not supported: no dirty worker pool is started and the dirty_* "
             "settings and hooks are ignored, so calls to gunicorn.dirty from the app will fail; "
             "run that work in a task queue or a process pool of the app's own")

SETTINGS: tuple[Setting, ...] = (
    S("config", "Config File", ("-c", "--config"), string, None,
      "The config file: PATH, file:PATH or python:MODULE_NAME.\n\n"
      "A Python file whose module-level names that match settings set them (hooks are functions "
      "defined there). Without -c, ./gunicorn.conf.py is read when it exists.", metavar="CONFIG",
      default_doc="None"),
    S("wsgi_app", "Config File", (), string, None,
      "The application as module:callable, used when APP is not given on the command line."),

    S("bind", _sock, ("-b", "--bind"), bind_list, ["127.0.0.1:8000"],
      "The socket to bind: HOST, HOST:PORT, [IPv6]:PORT, unix:PATH or fd://FD.\n\n"
      "Repeat to bind several addresses. When the PORT environment variable is set the default "
      "is 0.0.0.0:$PORT.", metavar="ADDRESS", action="append", env="PORT", env_format="0.0.0.0:{}"),
    S("backlog", _sock, ("--backlog",), integer(1), 2048,
      "The maximum number of pending connections.", metavar="INT"),

    S("workers", _work, ("-w", "--workers"), integer(1), 1,
      "The number of worker processes.\n\n"
      "Defaults to the WEB_CONCURRENCY environment variable when set. Each worker runs its own event "
      "loop, so one to two per core is usually enough.", metavar="INT", env="WEB_CONCURRENCY"),
    S("worker_class", _work, ("-k", "--worker-class"), dotted_or_class, "sync",
      "gunicorn's worker type, mapped onto unicorn_aio's single worker.\n\n"
      "sync and gthread (or their dotted names) mean a WSGI app in the thread pool; asgi and "
      "uvicorn.workers.UvicornWorker mean an ASGI app. gevent, eventlet, tornado (and gevent_wsgi, "
      "gevent_pywsgi) mean a WSGI app in a pool that grows to --worker-connections threads as "
      "requests find every thread busy, and back to --threads once they are idle: the "
      "concurrency of a greenlet per request for apps that wait, without monkey-patching.",
      metavar="STRING"),
    S("threads", _work, ("--threads",), integer(1), 1,
      "Threads per worker that run WSGI app calls.\n\n"
      "The default of 1 matches gunicorn's sync worker: one request in the app at a time per "
      "worker, while the event loop keeps reading, parsing and writing for every connection. "
      "Raise it for apps that wait on I/O.", metavar="INT"),
    S("worker_connections", _work, ("--worker-connections",), integer(1), 1000,
      "The maximum number of simultaneous connections per worker.\n\n"
      "With -k gevent or eventlet, also the most app threads a worker starts.", metavar="INT"),
    S("max_requests", _work, ("--max-requests",), integer(0), 0,
      "Restart a worker after it has served this many requests (0 = never).\n\n"
      "A simple limit on the damage of memory leaks.", metavar="INT"),
    S("max_requests_jitter", _work, ("--max-requests-jitter",), integer(0), 0,
      "A random 0..N added to max_requests per worker, so workers do not all restart at once.",
      metavar="INT"),
    S("timeout", _work, ("-t", "--timeout"), number, 30,
      "Workers silent for more than this many seconds are killed and restarted (0 = never).\n\n"
      "A worker's event loop heartbeats the master; a worker whose loop is blocked this long is "
      "hung. A request stuck in an app thread does not block the loop: it is the request "
      "watchdog's, which stops it at this timeout under -k sync with --threads 1 and logs it "
      "under other classes (see --request-timeout).", metavar="INT"),
    S("graceful_timeout", _work, ("--graceful-timeout",), number, 30,
      "Seconds workers get to finish in-flight requests after a stop or restart signal.",
      metavar="INT"),
    S("keepalive", _work, ("--keep-alive",), number, 2,
      "Seconds to wait for the next request on a keep-alive connection.", metavar="INT"),
    S("asgi_loop", _work, ("--asgi-loop",), choice("auto", "asyncio", "uvloop"), "auto",
      "gunicorn's event loop choice for its ASGI worker: auto, asyncio or uvloop.",
      metavar="STRING", honoured=("uvloop",),
      ignored="asgi_loop is ignored: unicorn_aio's workers always run uvloop (a dependency)"),
    S("asgi_disconnect_grace_period", _work, ("--asgi-disconnect-grace-period",), number, 3,
      "gunicorn's seconds before an ASGI request task is cancelled once its client has left.",
      metavar="INT",
      ignored="asgi_disconnect_grace_period is ignored: unicorn_aio never cancels an ASGI request "
              "whose client left; receive() returns http.disconnect, send() raises, and the app "
              "finishes in its own time"),
    S("http_parser", _work, ("--http-parser",), choice("auto", "fast", "python"), "auto",
      "gunicorn's HTTP parser choice: auto, fast (its C parser) or python.", metavar="STRING",
      honoured=("fast",),
      ignored="http_parser is ignored: requests are always parsed by httptools (llhttp, in C)"),

    S("dispatch", _ui, ("--dispatch",), choice("threads", "inline"), "threads",
      "Where WSGI app calls run: threads (the thread pool) or inline.\n\n"
      "inline calls the app on the event-loop thread: fastest for apps that never block, fatal "
      "to latency for apps that do.", metavar="MODE"),
    S("interface", _ui, ("--interface",), choice("auto", "wsgi", "asgi"), "auto",
      "The application interface: auto, wsgi or asgi.\n\n"
      "auto treats coroutine functions and objects with an async __call__ as ASGI. A -k worker "
      "class of gunicorn's implies one when this is auto (sync, gthread: wsgi; "
      "uvicorn.workers.UvicornWorker: asgi). An app that plainly does not fit (an async app "
      "as wsgi, an app(environ, start_response) as asgi) is refused at boot.", metavar="KIND"),
    S("lifespan", _ui, ("--lifespan", "--asgi-lifespan"), choice("auto", "on", "off"), "auto",
      "ASGI lifespan events: auto (use if the app supports them), on (require), off.\n\n"
      "gunicorn 24's asgi_lifespan (--asgi-lifespan) is another name for this setting.",
      metavar="MODE"),
    S("header_timeout", _ui, ("--header-timeout",), number, 10,
      "Seconds a client has to send complete request headers (0 = no limit).\n\n"
      "Closes slowloris connections that trickle headers.", metavar="SECONDS"),
    S("body_timeout", _ui, ("--body-timeout",), number, 30,
      "Seconds a request body may stall without new bytes (0 = no limit).", metavar="SECONDS"),
    S("body_min_rate", _ui, ("--body-min-rate",), integer(0), 240,
      "Bytes per second a streamed request body must average while a WSGI app waits for it, "
      "once the app has waited --body-timeout in all (5 s if that is 0); 0 = no minimum.\n\n"
      "--body-timeout catches a client that stops; this one catches a client that sends the "
      "first --inline-body-max bytes quickly and trickles the rest, holding an app thread. "
      "Time the app spends not reading does not count against the client.", metavar="BYTES"),
    S("max_worker_memory", _ui, ("--max-worker-memory",), integer(0), 0,
      "Restart a worker gracefully once its resident memory exceeds this many MB (0 = off).",
      metavar="MB"),
    S("request_timeout", _ui, ("--request-timeout",), number_or_none, None,
      "Seconds a WSGI request in an app thread may go without sending anything (no head, no "
      "body bytes) before it is stopped (0 = never).\n\n"
      "A stopped request is logged with its thread's stack; its client gets a 500 if nothing "
      "was sent, else the connection closes; its thread is interrupted and a fresh one takes its "
      "place. Time spent waiting on the client (reading a streamed wsgi.input, writing to a slow "
      "reader) does not count. Unset, it is --timeout under -k sync with --threads 1, as "
      "gunicorn's sync worker is killed at its timeout, and never under the classes gunicorn "
      "sets no limit on (gthread, sync with more threads, the green ones), which log a request "
      "stuck for --timeout once instead. See docs/timeouts.md.", metavar="SECONDS",
      default_doc="None"),
    S("asgi_request_timeout", _ui, ("--asgi-request-timeout",), number, 0,
      "Seconds an ASGI HTTP request may run before its task is cancelled (0 = no limit).\n\n"
      "The cancelled request is logged with where it was waiting; its client gets a 500 if no "
      "response had started, else the connection closes. WebSocket connections have no such "
      "limit.", metavar="SECONDS"),
    S("access_log_json", _ui, ("--access-log-json",), boolean, False,
      "Write access log lines as JSON objects instead of access_log_format.", action="store_true"),
    S("inline_body_max", _ui, ("--inline-body-max",), integer(0), 65536,
      "Bytes of request body buffered on the event loop before the app is called.\n\n"
      "Smaller bodies reach the app complete, so its reads never wait on the network; larger "
      "ones stream.", metavar="BYTES"),
    S("websocket_max_size", _ui, ("--websocket-max-size", "--websocket-max-message-size"),
      integer(0), 16 * 1024 * 1024,
      "The largest WebSocket message accepted, in bytes (0 = no limit).\n\n"
      "A larger message closes the connection with 1009 (message too big). gunicorn 26.3's "
      "websocket_max_message_size (--websocket-max-message-size) is another name for this "
      "setting.", metavar="BYTES"),
    S("metrics_bind", _ui, ("--metrics-bind",), listen_address, None,
      "An address the master serves /metrics, /livez and /readyz on (HOST:PORT, as --bind "
      "takes it), apart from the app's.\n\n"
      "/metrics is Prometheus's text format (OpenMetrics when the scraper asks), summed over "
      "every worker this master ran, so counters never go backwards across restarts and HUPs; "
      "with prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR) the app's own "
      "metrics are merged in. /livez answers while the master's loop turns; /readyz says 200 "
      "once a worker serves and 503 from a stop on. See docs/metrics.md and docs/kubernetes.md. "
      "Read at start; a HUP keeps the listener.", metavar="ADDRESS", default_doc="None (off)"),
    S("shutdown_delay", _ui, ("--shutdown-delay",), number, 0,
      "Seconds between a TERM and the start of the graceful stop, while /readyz answers 503 "
      "and the workers go on accepting and serving.\n\n"
      "For Kubernetes: time for the endpoints controller and the load balancers to stop "
      "sending new connections before the listeners close (docs/kubernetes.md). A second TERM, "
      "or INT or QUIT, stops at once.", metavar="SECONDS"),

    S("limit_request_line", _sec, ("--limit-request-line",), integer(0), 4094,
      "The maximum size of the HTTP request line in bytes (0 = unlimited, up to 8190).\n\n"
      "The whole line counts (method, target and version), as in gunicorn; a value over 8190 "
      "is 8190. With 0, lines over 64 KiB are still refused.", metavar="INT"),
    S("limit_request_fields", _sec, ("--limit-request-fields",), integer(0), 100,
      "The maximum number of header fields in a request (up to 32768; 0 is 32768).\n\n"
      "As in gunicorn, fields that header_map drops do not count.", metavar="INT"),
    S("limit_request_field_size", _sec, ("--limit-request-field_size", "--limit-request-field-size"),
      integer(0), 8190, "The maximum size of one request header field in bytes (0 = 8190).\n\n"
      "A field counts as its line \"Name: value\" with the CRLF, as in gunicorn 27, whose code "
      "also reads 0 as 8190 (its docs say unlimited). The same limit bounds a chunk size line "
      "and each trailer field.", metavar="INT"),

    S("reload", _dbg, ("--reload",), boolean, False,
      "Restart workers when code changes. For development; incompatible with preload_app.",
      action="store_true"),
    S("reload_engine", _dbg, ("--reload-engine",), choice("auto", "poll", "inotify"), "auto",
      "How code changes are detected: auto, poll or inotify.", metavar="STRING"),
    S("reload_extra_files", _dbg, ("--reload-extra-file",), watched_files, [],
      "More files to watch with reload (templates, configuration...).\n\n"
      "An entry with *, ? or [ is a glob pattern (** recurses), relative to the directory the "
      "server starts in. Patterns are expanded when the configuration is read, at start and on "
      "each HUP (gunicorn 26.1 re-expands them on every check), so a file created later is "
      "watched from the next HUP on; a pattern that matches nothing watches nothing.",
      metavar="FILES", action="append"),
    S("spew", _dbg, ("--spew",), boolean, False,
      "Trace every line executed by the server (gunicorn's nuclear option).", action="store_true",
      ignored="spew is not supported; the setting is ignored"),
    S("check_config", _dbg, ("--check-config",), boolean, False,
      "Check the configuration and that the app imports, then exit: 0 if fine, 1 if not.",
      action="store_true"),
    S("print_config", _dbg, ("--print-config",), boolean, False,
      "Print every setting as resolved from all sources, then exit 0.\n\n"
      "Unlike gunicorn it does not import the app; add --check-config for that.",
      action="store_true"),

    S("preload_app", _mech, ("--preload",), boolean, False,
      "Load the app in the master before forking workers (saves memory, prevents code reload).",
      action="store_true"),
    S("sendfile", _mech, ("--no-sendfile",), boolean, None,
      "Disable sendfile() for wsgi.file_wrapper responses.\n\n"
      "When not set, the SENDFILE environment variable decides; otherwise sendfile is used.",
      action="store_const", const=False, default_doc="None"),
    S("reuse_port", _mech, ("--reuse-port",), boolean, False,
      "Set SO_REUSEPORT on the listening sockets.", action="store_true"),
    S("chdir", _mech, ("--chdir",), directory, None,
      "Change to this directory before loading the app.", default_doc="the current directory"),
    S("daemon", _mech, ("-D", "--daemon"), boolean, False,
      "Detach from the terminal and run in the background.", action="store_true"),
    S("raw_env", _mech, ("-e", "--env"), string_list, [],
      "Set an environment variable, as KEY=VALUE (repeatable).", metavar="ENV", action="append"),
    S("pidfile", _mech, ("-p", "--pid"), string, None,
      "A file to write the master's PID to.", metavar="FILE"),
    # No warning for any value: --worker-tmp-dir /dev/shm is in most Docker recipes, and
    # having no heartbeat files to place is all the difference there is.
    S("worker_tmp_dir", _mech, ("--worker-tmp-dir",), string, None,
      "gunicorn's directory for worker heartbeat files; accepted and unused: unicorn_aio's "
      "workers heartbeat over socketpairs, so no files are written.", metavar="DIR"),
    S("user", _mech, ("-u", "--user"), user, None,
      "Run workers as this user (name or uid).", metavar="USER", default_doc="os.geteuid()"),
    S("group", _mech, ("-g", "--group"), group, None,
      "Run workers as this group (name or gid).", metavar="GROUP", default_doc="os.getegid()"),
    S("umask", _mech, ("-m", "--umask"), octal, 0,
      "The umask the unix sockets of --bind are created with (0022 is read as octal).\n\n"
      "As gunicorn's (where it also covers heartbeat files, which unicorn_aio has none of): the "
      "pidfile and log files are created with the umask the server was started with.",
      metavar="INT"),
    S("initgroups", _mech, ("--initgroups",), boolean, False,
      "Give workers all the supplementary groups of user.", action="store_true"),
    S("tmp_upload_dir", _mech, (), string, None,
      "gunicorn's directory for temporary request data.", metavar="DIR",
      ignored="tmp_upload_dir is ignored: request bodies are streamed to the app, not spooled"),
    S("secure_scheme_headers", _mech, (), scheme_headers,
      {"X-FORWARDED-PROTOCOL": "ssl", "X-FORWARDED-PROTO": "https", "X-FORWARDED-SSL": "on"},
      "Headers and values a trusted proxy sets to mark a request as HTTPS.\n\n"
      "Honoured only from forwarded_allow_ips. Values compare case-sensitively; a request whose "
      "secure headers disagree is refused."),
    S("forwarded_allow_ips", _mech, ("--forwarded-allow-ips",), address_list, "127.0.0.1,::1",
      "Proxy addresses (comma separated) trusted to set secure_scheme_headers and "
      "forwarder_headers; * trusts everyone.\n\n"
      "Defaults to the FORWARDED_ALLOW_IPS environment variable when set.", metavar="STRING",
      env="FORWARDED_ALLOW_IPS"),
    S("forwarder_headers", _mech, ("--forwarder-headers",), upper_comma_list, "SCRIPT_NAME,PATH_INFO",
      "Upper-case header names with underscores (comma separated; * for all) that a proxy in "
      "forwarded_allow_ips may send past header_map.\n\n"
      "As in gunicorn 27, they reach the app as headers (HTTP_PATH_INFO, HTTP_REMOTE_USER) and "
      "none sets the path; a SCRIPT_NAME header mounts the app there (SCRIPT_NAME in WSGI, "
      "root_path in ASGI). From other peers they are underscore names like any other: "
      "header_map drops, refuses or keeps them.", metavar="STRING"),
    S("pythonpath", _mech, ("--pythonpath",), string, None,
      "Directories (comma separated) to add to the Python path.", metavar="STRING"),
    S("paste", _mech, ("--paste", "--paster"), string, None,
      "Load the app from a PasteDeploy ini file: PATH or PATH#name (default [app:main]).\n\n"
      "Server settings still come from the command line; the ini's logging sections are used "
      "when it has a [loggers] section. Needs the pastedeploy package.", metavar="STRING"),
    S("raw_paste_global_conf", _mech, ("--paste-global",), string_list, [],
      "A PasteDeploy global variable as KEY=VALUE (repeatable), for %(KEY)s in the ini file.",
      metavar="CONF", action="append"),
    S("proxy_protocol", _mech, ("--proxy-protocol",), proxy_protocol_mode, False,
      "Accept the PROXY protocol header (haproxy, stunnel) on new connections: off, v1, v2 or "
      "auto; the flag alone means auto.\n\n"
      "v1 and v2 each read either version of the header, as auto does (the first bytes tell "
      "them apart). true and false, gunicorn's values before 24.1, mean auto and off.",
      metavar="MODE", nargs="?", const="auto", default_doc="False (off)"),
    S("proxy_allow_ips", _mech, ("--proxy-allow-from",), address_list, "127.0.0.1,::1",
      "Addresses or networks (comma separated) allowed to send the PROXY protocol header; * "
      "allows all.\n\n"
      "A header from any other peer is refused with 403; the header is optional, so plain HTTP "
      "from any peer is still served. Unix-socket peers are always allowed (as in gunicorn).",
      metavar="STRING"),
    S("strip_header_spaces", _mech, ("--strip-header-spaces",),
      refuse_true("unicorn_aio never strips header spaces (request smuggling risk)"), False,
      "gunicorn's option to strip spaces before a header's colon; refused here.",
      action="store_true"),
    S("permit_obsolete_folding", _mech, ("--permit-obsolete-folding",),
      refuse_true("obsolete line folding is always refused with 400: httptools cannot unfold "
                  "it, so requests that need this option cannot be served; unfold in a proxy"),
      False, "gunicorn's option to accept obsolete line folding in request headers (RFC 9112 "
      "section 5.2); refused here.", action="store_true"),
    S("permit_unconventional_http_method", _mech, ("--permit-unconventional-http-method",),
      boolean, False,
      "Accept any method token, not only gunicorn's conventions (upper case, no \"#\", 3 to "
      "20 bytes). Unlike gunicorn, a method still needs 3 bytes at least.\n\n"
      "Dangerous, as in gunicorn: a proxy in front may read such a method otherwise.",
      action="store_true"),
    S("permit_unconventional_http_version", _mech, ("--permit-unconventional-http-version",),
      boolean, False, "Permit HTTP/1 versions other than 1.0 and 1.1.", action="store_true"),
    S("casefold_http_method", _mech, ("--casefold-http-method",), boolean, False,
      "gunicorn's option to upper-case received request methods.\n\n"
      "As in gunicorn 27's code, it changes nothing without permit_unconventional_http_method: "
      "a method with lower case is refused before it would apply.", action="store_true"),
    S("header_map", _mech, ("--header-map",), choice("drop", "refuse", "dangerous"), "drop",
      "Headers whose names map to the same environ key (X-A_B vs X-A-B): drop, refuse or "
      "dangerous (keep both).", metavar="STRING"),
    S("root_path", _mech, ("--root-path",), url_path, "",
      "The path the app is mounted at behind a proxy, e.g. /api: ASGI's root_path.\n\n"
      "Both interfaces mount the app there: root_path in ASGI scopes, SCRIPT_NAME in WSGI "
      "environs. Without it, the SCRIPT_NAME environment variable decides, as in gunicorn. "
      "A trusted proxy's SCRIPT_NAME header (forwarder_headers) still wins per request.",
      metavar="STRING"),
    S("protocol", _mech, ("--protocol",), http_only, "http",
      "The protocol of incoming connections: http. gunicorn's uwsgi (nginx uwsgi_pass) is "
      "refused at startup.", metavar="STRING"),
    S("uwsgi_allow_ips", _mech, ("--uwsgi-allow-from",), address_list, "127.0.0.1,::1",
      "gunicorn's peers allowed to send the uwsgi protocol.", metavar="STRING",
      ignored="uwsgi_allow_ips is ignored: the uwsgi protocol is not supported"),

    S("accesslog", _log, ("--access-logfile",), string, None,
      "The access log file; - means stdout. No access log when unset.", metavar="FILE"),
    S("disable_redirect_access_to_syslog", _log, ("--disable-redirect-access-to-syslog",),
      boolean, False, "Do not send access logs to syslog.", action="store_true"),
    S("access_log_format", _log, ("--access-logformat",), string,
      '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
      "The access log format, with gunicorn's atoms.\n\n"
      "h remote address, l '-', u user, t date, r request line, m method, U path, q query, "
      "H protocol, s status, B response length, b length or '-', f referer, a user agent, "
      "T/M/D/L request time in s/ms/us/decimal s, p pid, {name}i request header, "
      "{name}o response header, {name}e environment variable.", metavar="STRING"),
    S("errorlog", _log, ("--error-logfile", "--log-file"), string, "-",
      "The error log file; - means stderr.", metavar="FILE"),
    S("loglevel", _log, ("--log-level",), loglevel, "info",
      "The error log level: debug, info, warning, error or critical.", metavar="LEVEL"),
    S("capture_output", _log, ("--capture-output",), boolean, False,
      "Redirect the app's stdout and stderr to the error log file.", action="store_true"),
    S("logger_class", _log, ("--logger-class",), logger_class, "gunicorn.glogging.Logger",
      "The logger: a subclass of unicorn_aio.log.Logger (gunicorn's glogging.Logger role; "
      "override setup(), access() or the level methods). The default is the built-in one.",
      metavar="STRING"),
    S("logconfig", _log, ("--log-config",), string, None,
      "A logging.config fileConfig file.", metavar="FILE"),
    S("logconfig_dict", _log, (), mapping, {},
      "A logging.config dictConfig dict; takes precedence over logconfig and logconfig_json."),
    S("logconfig_json", _log, ("--log-config-json",), string, None,
      "A JSON file holding a dictConfig dict.", metavar="FILE"),
    S("syslog_addr", _log, ("--log-syslog-to",), string, "udp://localhost:514",
      "Where to send syslog messages.", metavar="SYSLOG_ADDR"),
    S("syslog", _log, ("--log-syslog",), boolean, False,
      "Send logs to syslog.", action="store_true"),
    S("syslog_prefix", _log, ("--log-syslog-prefix",), string, None,
      "The program name in syslog entries.", metavar="SYSLOG_PREFIX"),
    S("syslog_facility", _log, ("--log-syslog-facility",), string, "user",
      "The syslog facility name.", metavar="SYSLOG_FACILITY"),
    S("enable_stdio_inheritance", _log, ("-R", "--enable-stdio-inheritance"), boolean, False,
      "Keep stdio file descriptors open in daemon mode.", action="store_true"),
    S("statsd_host", _log, ("--statsd-host",), statsd_address, None,
      "The StatsD server to send metrics to: HOST:PORT (port 8125 when left out), [IPv6]:PORT or "
      "unix:PATH (a unix datagram socket).\n\n"
      "gunicorn's metrics, over UDP: gunicorn.requests and gunicorn.request.status.<code> "
      "(counters) and gunicorn.request.duration (histogram, ms) per request, gunicorn.workers "
      "(gauge) from the master when the number of workers changes, gunicorn.log.critical, "
      ".error, .warning and .exception (counters) per error-log line, and gunicorn.backlog "
      "(histogram) with enable_backlog_metric. A statsd server that is down costs dropped "
      "datagrams, never requests.", metavar="STATSD_ADDR"),
    S("dogstatsd_tags", _log, ("--dogstatsd-tags",), string, "",
      "Comma-separated dogstatsd tags (tag1:value1,tag2:value2) added to every statsd metric.",
      metavar="DOGSTATSD_TAGS"),
    S("statsd_prefix", _log, ("--statsd-prefix",), string, "",
      "A prefix for statsd metric names (a trailing . is added when missing).",
      metavar="STATSD_PREFIX"),
    S("enable_backlog_metric", _log, ("--enable-backlog-metric",), boolean, False,
      "Send gunicorn.backlog (a histogram, as gunicorn's): the connections waiting in the "
      "listening sockets' accept queues, measured by the master about once a second.\n\n"
      "Needs statsd_host. Linux's TCP_INFO gives the queue of TCP listeners; unix sockets have "
      "no such counter and are left out, and with reuse_port each worker's queue is its own, "
      "out of the master's sight.", action="store_true"),

    S("proc_name", _name, ("-n", "--name"), string, None,
      "The process title base (needs setproctitle); default_proc_name when unset.",
      metavar="STRING"),
    S("default_proc_name", _name, (), string, "unicorn_aio",
      "The process title base used when proc_name is unset."),

    S("keyfile", _ssl, ("--keyfile",), string, None, "The TLS private key file.", metavar="FILE"),
    S("certfile", _ssl, ("--certfile",), string, None,
      "The TLS certificate file; setting it turns TLS on.", metavar="FILE"),
    S("ssl_version", _ssl, ("--ssl-version",), ssl_version, int(ssl.PROTOCOL_TLS),
      "Deprecated in gunicorn and ignored; use the ssl_context hook.",
      ignored="ssl_version is deprecated and ignored (as in gunicorn); use the ssl_context hook"),
    S("cert_reqs", _ssl, ("--cert-reqs",), integer(0), int(ssl.CERT_NONE),
      "Client certificates: 0 not asked, 1 optional, 2 required."),
    S("ca_certs", _ssl, ("--ca-certs",), string, None,
      "The CA certificates file for client certificates.", metavar="FILE"),
    S("suppress_ragged_eofs", _ssl, ("--suppress-ragged-eofs",), boolean, True,
      "Treat a TLS connection closed without close_notify as a normal end.", action="store_true"),
    S("do_handshake_on_connect", _ssl, ("--do-handshake-on-connect",), boolean, False,
      "Do the TLS handshake on accept rather than on first read.", action="store_true"),
    S("ciphers", _ssl, ("--ciphers",), string, None,
      "The TLS cipher list, in OpenSSL format; Python's ssl default when unset."),

    S("on_starting", _hooks, (), hook("server"), on_starting,
      "Called just before the master process is initialized: on_starting(server)."),
    S("on_reload", _hooks, (), hook("server"), on_reload,
      "Called to recycle workers on SIGHUP: on_reload(server)."),
    S("when_ready", _hooks, (), hook("server"), when_ready,
      "Called just after the server is started: when_ready(server)."),
    S("pre_fork", _hooks, (), hook("server", "worker"), pre_fork,
      "Called just before a worker is forked: pre_fork(server, worker)."),
    S("post_fork", _hooks, (), hook("server", "worker"), post_fork,
      "Called in the worker just after it is forked: post_fork(server, worker)."),
    S("post_worker_init", _hooks, (), hook("worker"), post_worker_init,
      "Called just after a worker has loaded the app: post_worker_init(worker)."),
    S("worker_int", _hooks, (), hook("worker"), worker_int,
      "Called when a worker exits on SIGINT or SIGQUIT: worker_int(worker)."),
    S("worker_abort", _hooks, (), hook("worker"), worker_abort,
      "Called when a worker gets SIGABRT, usually on timeout: worker_abort(worker)."),
    S("pre_exec", _hooks, (), hook("server"), pre_exec,
      "Called just before a new master is exec'd (USR2): pre_exec(server)."),
    S("pre_request", _hooks, (), hook("worker", "req"), pre_request,
      "Called just before a worker runs a request: pre_request(worker, req)."),
    S("post_request", _hooks, (), post_request_hook, post_request,
      "Called after a worker ran a request: post_request(worker, req, environ, resp)."),
    S("child_exit", _hooks, (), hook("server", "worker"), child_exit,
      "Called in the master just after a worker exited: child_exit(server, worker)."),
    S("worker_exit", _hooks, (), hook("server", "worker"), worker_exit,
      "Called in the worker just before it exits: worker_exit(server, worker)."),
    S("nworkers_changed", _hooks, (), hook("server", "new_value", "old_value"), nworkers_changed,
      "Called after the number of workers changed: nworkers_changed(server, new, old); old is "
      "None the first time."),
    S("on_exit", _hooks, (), hook("server"), on_exit,
      "Called just before the master exits: on_exit(server)."),
    S("ssl_context", _hooks, (), hook("config", "default_ssl_context_factory"), ssl_context,
      "Returns the SSLContext to use: ssl_context(config, default_ssl_context_factory).\n\n"
      "Call the factory for the context built from the SSL settings and adjust it."),

    S("http_protocols", _h2, ("--http-protocols",), http_protocols, "h1",
      "Protocols to offer, in order of preference: h1, h2 (comma separated). Over TLS h2 is "
      "negotiated by ALPN, without TLS by --http2-cleartext; it needs the http2 extra "
      "(docs/http2.md).", metavar="STRING"),
    S("http2_max_concurrent_streams", _h2, ("--http2-max-concurrent-streams",), integer(1), 100,
      "HTTP/2 streams (requests in the app) a client may have open at once on a connection; "
      "more are refused (REFUSED_STREAM), which clients retry.", metavar="INT"),
    S("http2_initial_window_size", _h2, ("--http2-initial-window-size",), http2_window, 65535,
      "HTTP/2 flow-control window of a stream, in bytes (at most 2147483647).", metavar="INT"),
    S("http2_max_frame_size", _h2, ("--http2-max-frame-size",), http2_frame_size, 16384,
      "Largest HTTP/2 frame payload accepted, in bytes (16384 to 16777215).", metavar="INT"),
    S("http2_max_header_list_size", _h2, ("--http2-max-header-list-size",), integer(0), 65536,
      "Largest HTTP/2 request header list, in bytes as HPACK decodes it: the bound on an HPACK "
      "bomb. 0 is unlimited (not recommended).", metavar="INT"),
    S("http2_max_streams_per_connection", _h2, ("--http2-max-streams-per-connection",),
      integer(1), 100000,
      "Streams one HTTP/2 connection serves before a graceful GOAWAY, as nginx's "
      "keepalive_requests: a load balancer's connections are spread over the workers again. "
      "Clients go on over a new connection; h2load does not (it fails what it had left).",
      metavar="INT"),
    S("http2_cleartext", _h2, ("--http2-cleartext",), http2_cleartext, "off",
      "HTTP/2 without TLS (h2c), as in gunicorn 26.2: off, prior-knowledge (the connection "
      "opens with the HTTP/2 preface), upgrade (Upgrade: h2c) or both. Needs h2 in "
      "--http-protocols; only for peers in --forwarded-allow-ips, the others get HTTP/1.x; "
      "with prior-knowledge alone a trusted peer that does not open with the preface gets "
      "400. Ignored with TLS.", metavar="STRING"),

    S("control_socket", _ctl, ("--control-socket",), string, None,
      "The master's control socket (unix), for unicorn_aioc and gunicorn's gunicornc.\n\n"
      "See docs/control.md. A relative PATH is from where the server starts. Unlike gunicorn, "
      "a socket another live server answers on is left alone (one warning, no control socket); "
      "a stale one is replaced. Read at start; a HUP keeps it.", metavar="PATH",
      default_doc="$XDG_RUNTIME_DIR/unicorn_aio.ctl, or $HOME/.unicorn_aio/unicorn_aio.ctl"),
    S("control_socket_mode", _ctl, ("--control-socket-mode",), permission_mode, 0o600,
      "The control socket's permissions, in octal: 0600 its owner only, 0660 its group too.",
      metavar="INT", default_doc="0600"),
    S("control_socket_disable", _ctl, ("--no-control-socket",), boolean, False,
      "Open no control socket.", action="store_true"),

    S("dirty_apps", _dirty, ("--dirty-app",), string_list, [],
      "gunicorn's DirtyApp classes (module:Class[:N]) loaded in its dirty worker pool.",
      metavar="STRING", action="append", ignored=_NO_DIRTY),
    S("dirty_workers", _dirty, ("--dirty-workers",), integer(0), 0,
      "gunicorn's number of dirty worker processes (0 = none).", metavar="INT",
      ignored=_NO_DIRTY),
    S("dirty_timeout", _dirty, ("--dirty-timeout",), number, 300,
      "gunicorn's seconds a dirty task may run.", metavar="INT", ignored=_NO_DIRTY),
    S("dirty_threads", _dirty, ("--dirty-threads",), integer(1), 1,
      "gunicorn's threads per dirty worker.", metavar="INT", ignored=_NO_DIRTY),
    S("dirty_graceful_timeout", _dirty, ("--dirty-graceful-timeout",), number, 30,
      "gunicorn's seconds dirty workers get to stop.", metavar="INT", ignored=_NO_DIRTY),
    S("on_dirty_starting", _dirty_hooks, (), hook("arbiter"), on_dirty_starting,
      "gunicorn's hook before its dirty arbiter starts: on_dirty_starting(arbiter).",
      ignored=_NO_DIRTY),
    S("dirty_post_fork", _dirty_hooks, (), hook("arbiter", "worker"), dirty_post_fork,
      "gunicorn's hook after a dirty worker is forked: dirty_post_fork(arbiter, worker).",
      ignored=_NO_DIRTY),
    S("dirty_worker_init", _dirty_hooks, (), hook("worker"), dirty_worker_init,
      "gunicorn's hook once a dirty worker loaded its apps: dirty_worker_init(worker).",
      ignored=_NO_DIRTY),
    S("dirty_worker_exit", _dirty_hooks, (), hook("arbiter", "worker"), dirty_worker_exit,
      "gunicorn's hook when a dirty worker exits: dirty_worker_exit(arbiter, worker).",
      ignored=_NO_DIRTY),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}

# Other names a setting answers to. gunicorn's flag --proxy-allow-from sets proxy_allow_ips, and
# gunicorn 24 named our lifespan asgi_lifespan.
ALIASES: dict[str, str] = {"proxy_allow_from": "proxy_allow_ips", "asgi_lifespan": "lifespan",
                           "websocket_max_message_size": "websocket_max_size"}

SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(s.section for s in SETTINGS))
