"""systemd's notify protocol: READY=1, RELOADING=1, STOPPING=1 on $NOTIFY_SOCKET.

Socket activation (LISTEN_FDS) is read in sockets.inherited_sockets.
"""

from __future__ import annotations

import os
import socket


def notify(state: str, environ=os.environ) -> bool:
    """Send ``state`` if systemd (or anything speaking its protocol) asked for it."""
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        # Close-on-exec already, as every Python socket (PEP 446): no SOCK_CLOEXEC, Linux's own.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
        return True
    except OSError:
        return False
