"""systemd's readiness protocol: ``READY=1`` and ``STOPPING=1`` sent to ``$NOTIFY_SOCKET``."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("relay")


def notify_address(environ: Mapping[str, str]) -> str | None:
    """The socket address in ``NOTIFY_SOCKET``: a path, or an abstract-namespace name given
    with a leading ``@`` (a leading NUL byte for the kernel); None if unset or unusable."""
    address = environ.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        return "\0" + address[1:]
    if address.startswith("/"):
        return address
    return None  # unset, or a kind of socket (vsock) the relay does not speak


def notify(state: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Send ``state`` (``"READY=1"``, ``"STOPPING=1"``, ...) to the service manager when it
    asked for it (``Type=notify``); whether it was sent. A failure is logged, never raised:
    the relay works the same without a service manager."""
    address = notify_address(environ)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("could not tell the service manager %r (NOTIFY_SOCKET): %s", state, exc)
        return False
    return True
