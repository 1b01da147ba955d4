"""Run the review app: bind first (so ``--port 0`` can print the port it got), then hand the socket to uvicorn."""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Callable

from shiftlab.errors import InputError
from shiftlab.review.app import create_app


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0 = any free port; IPv6 when ``host`` has a ``:``), inheritable,
    with address reuse and TCP_NODELAY. ``InputError`` for a port outside 0–65535 or one that cannot be bound.
    """
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port}: use 1–65535, or 0 for any free one")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it: a response goes out as headers then body, and with Nagle on, the
    # body waits for the browser's delayed ACK (~40 ms a request: seconds for a grid of 200 thumbnails)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as e:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port} ({getattr(e, 'strerror', None) or e}); "
                         "pick another --port, or 0 for any free one") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(workspace=None, *, host: str = "127.0.0.1", port: int = 0, reviewer: str | None = None,
          token: str | None = None, echo: Callable[[str], None] | None = None) -> None:
    """Serve the review app until interrupted; prints one URL that carries the access token."""
    import uvicorn


    app = create_app(workspace, token=token, reviewer=reviewer)
    sock = bind(host, port)
    real_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{real_port}/?token={app.state.token}"
    say = echo or (lambda s: (print(s), sys.stdout.flush()))
    if not _is_loopback(host):
        say(f"warning: listening on {host}, reachable from other machines; anyone with the URL can decide")
    say(url)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
