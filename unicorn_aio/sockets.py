"""Listening sockets: bind-address parsing, binding, and fds inherited across exec.

Sockets are bound once, in the master, before any fork: every worker accepts from the same
kernel queue.  A re-exec'd master (USR2) or systemd passes them on as inherited fds instead.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import struct
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from unicorn_aio.errors import ConfigError

if TYPE_CHECKING:
    from unicorn_aio.config.config import Config
    from unicorn_aio.log.logger import Logger

# The fds a re-exec'd master inherits from the old one, as a comma-separated list.
INHERIT_ENV = "UNICORN_AIO_FD"
SD_LISTEN_FDS_START = 3
# gunicorn's: an address in use at startup is tried five times, a second apart (a previous
# server may be releasing it).  Constants, not settings: tests rely on them.
BIND_TRIES = 5
BIND_RETRY_DELAY = 1.0

# The head of Linux's struct tcp_info (include/uapi/linux/tcp.h): eight u8 fields (tcpi_state
# first), then u32s: rto, ato, snd_mss, rcv_mss, unacked, sacked. For a socket in LISTEN the
# kernel puts the accept queue's length in tcpi_unacked (sk_ack_backlog) and its limit in
# tcpi_sacked (net/ipv4/tcp.c, tcp_get_info); gunicorn's backlog metric reads the same field.
_TCP_INFO_HEAD = struct.Struct("=8B6I")
_TCP_LISTEN = 10


class AddressInUse(ConfigError):
    """Another socket holds the address: worth trying again at startup."""


def parse_address(bind: str, default_port: int = 8000) -> tuple[socket.AddressFamily | None, Any]:
    """'HOST:PORT', '[v6]:PORT', 'HOST', 'unix:PATH' or 'fd://N' -> (family, address): a path
    for AF_UNIX, (host, port) for AF_INET(6), an fd number for None."""
    if bind.startswith("unix:"):
        path = bind[5:]
        if not path:
            raise ConfigError(f"bind {bind!r}: unix socket path is empty")
        return socket.AF_UNIX, path
    if bind.startswith("fd://"):
        try:
            return None, int(bind[5:])
        except ValueError:
            raise ConfigError(f"bind {bind!r}: fd:// needs a file descriptor number") from None
    host, port = bind, str(default_port)
    if bind.startswith("["):
        end = bind.find("]")
        if end < 0:
            raise ConfigError(f"bind {bind!r}: missing ']' after IPv6 address")
        host, rest = bind[1:end], bind[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f"bind {bind!r}: expected ':PORT' after ']'")
            port = rest[1:]
        family = socket.AF_INET6
    else:
        if ":" in bind:
            host, port = bind.rsplit(":", 1)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"bind {bind!r}: port must be a number from 0 to 65535")
    if host in ("", "*"):
        host = "0.0.0.0"
    elif ":" not in host and not _is_ipv4(host):
        try:  # 'localhost' and other names: bind what the name resolves to
            host = str(socket.getaddrinfo(host, None, family, socket.SOCK_STREAM)[0][4][0])
        except socket.gaierror as exc:
            raise ConfigError(f"bind {bind!r}: cannot resolve host {host!r}: {exc.strerror}") from None
    return family, (host, int(port))


def _is_ipv4(host: str) -> bool:
    # An address needs no resolver: getaddrinfo would also load the idna codec (and
    # unicodedata, 400 KB) into every worker just to encode it.
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return host.count(".") == 3


def create_listener(bind: str, backlog: int = 2048, reuse_port: bool = False,
                    umask: int | None = None, listen: bool = True) -> socket.socket:
    family, address = parse_address(bind)
    if family is None:
        return socket_from_fd(address)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_UNIX:
            _remove_stale_unix_socket(address)
            old = os.umask(umask) if umask is not None else None
            try:
                sock.bind(address)
            finally:
                if old is not None:
                    os.umask(old)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
        if listen:
            sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AddressInUse(f"cannot listen on {bind}: address already in use") from None
        raise ConfigError(f"cannot listen on {bind}: {exc.strerror}") from None
    except AddressInUse:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _remove_stale_unix_socket(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(path)
            except ConnectionRefusedError:
                os.unlink(path)  # nobody listens: a leftover from an unclean exit
            else:
                raise AddressInUse(f"cannot listen on unix:{path}: another server is using it")
            finally:
                probe.close()
    except FileNotFoundError:
        pass


def socket_from_fd(fd: int) -> socket.socket:
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ConfigError(f"fd://{fd}: not a usable socket: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def describe(sock: socket.socket) -> str:
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{name}"
    if sock.family == socket.AF_INET6:
        return f"[{name[0]}]:{name[1]}"
    return f"{name[0]}:{name[1]}"


def unix_files(socks: Iterable[socket.socket]) -> dict[str, tuple[int, int]]:
    """The files of the unix sockets among ``socks``, with their (device, inode) now: what
    unlink_own_files may remove later."""
    files = {}
    for sock in socks:
        if sock.family == socket.AF_UNIX:
            path = sock.getsockname()
            try:
                st = os.stat(path)
            except (OSError, TypeError, ValueError):  # abstract or unnamed: no file
                continue
            files[path] = (st.st_dev, st.st_ino)
    return files


def unlink_own_files(files: dict[str, tuple[int, int]]) -> None:
    """Remove the unix socket files we bound, unless another server has bound the path since
    (a replacement started while we drained): removing its file would cut it off."""
    for path, identity in files.items():
        try:
            st = os.stat(path)
            if (st.st_dev, st.st_ino) == identity:
                os.unlink(path)
        except OSError:
            pass


def listener_url(sock: socket.socket, tls: bool = False) -> str:
    """A listener as gunicorn logs it, which scripts grep for: http://HOST:PORT, unix:PATH."""
    where = describe(sock)
    return where if where.startswith("unix:") else ("https://" if tls else "http://") + where


def accept_queue(sock: socket.socket) -> int | None:
    """Connections waiting in a listening TCP socket's accept queue, or None when the kernel
    does not say: a unix socket, a socket not listening, a platform without TCP_INFO."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not hasattr(socket, "TCP_INFO"):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_HEAD.size)
    except OSError:
        return None
    if len(info) < _TCP_INFO_HEAD.size:
        return None
    fields = _TCP_INFO_HEAD.unpack(info)
    return fields[12] if fields[0] == _TCP_LISTEN else None


def inherited_sockets(environ: Mapping[str, str] = os.environ) -> list[socket.socket]:
    """Listeners passed by an old master (USR2) or by systemd socket activation."""
    fds = environ.get(INHERIT_ENV)
    if fds:
        return [socket_from_fd(int(fd)) for fd in fds.split(",") if fd]
    if environ.get("LISTEN_PID") == str(os.getpid()):
        count = int(environ.get("LISTEN_FDS", "0"))
        return [socket_from_fd(SD_LISTEN_FDS_START + i) for i in range(count)]
    return []


def bind_all(cfg: Config, log: Logger | None = None) -> list[socket.socket]:
    """The listeners of --bind (or the inherited ones).  With ``log`` (the master's start), an
    address in use is tried again as gunicorn does, each try logged in gunicorn's words."""
    inherited = inherited_sockets()
    if inherited:
        return inherited
    umask = cfg.umask if isinstance(getattr(cfg, "umask", None), int) else None
    listeners = []
    try:
        for bind in cfg.bind:
            # With --reuse-port the master only holds the address; each worker listens on a
            # socket of its own (worker_listeners), so a busy worker's queue is its own.
            tcp = not bind.startswith(("unix:", "fd://"))
            for attempt in range(1, BIND_TRIES + 1):
                try:
                    listeners.append(create_listener(bind, cfg.backlog, cfg.reuse_port, umask,
                                                     listen=not (cfg.reuse_port and tcp)))
                    break
                except AddressInUse as exc:
                    if log is None:
                        raise
                    log.error("Connection in use: %s", parse_address(bind)[1])
                    if attempt == BIND_TRIES:
                        raise AddressInUse(f"{exc} ({BIND_TRIES} tries, "
                                           f"{BIND_RETRY_DELAY:g} s apart)") from None
                    log.debug("Retrying in %g second.", BIND_RETRY_DELAY)
                    time.sleep(BIND_RETRY_DELAY)
            if bind.startswith("unix:"):
                _chown_to_workers(bind[5:], cfg)
    except BaseException:
        for sock in listeners:
            sock.close()
        raise
    return listeners


def _chown_to_workers(path: str, cfg: Config) -> None:
    """A unix socket belongs to --user/--group, as in gunicorn: with --umask 007 and
    --group www-data, nginx (in www-data) can connect and other users cannot."""
    uid, gid = getattr(cfg, "uid", None), getattr(cfg, "gid", None)
    if uid is None or gid is None or (uid, gid) == (os.geteuid(), os.getegid()):
        return
    try:
        os.chown(path, uid, gid)
    except OSError as exc:
        raise ConfigError(f"cannot give unix:{path} to uid {uid} gid {gid}: "
                          f"{exc.strerror}") from None


def worker_listeners(sockets: list[socket.socket], cfg: Config) -> list[socket.socket]:
    """A worker's own listeners: SO_REUSEPORT siblings of the master's TCP sockets."""
    if not cfg.reuse_port:
        return sockets
    own = []
    for sock in sockets:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            own.append(create_listener(describe(sock), cfg.backlog, reuse_port=True))
            sock.close()  # the master keeps the address reserved; we never accept on it
        else:
            own.append(sock)
    return own
