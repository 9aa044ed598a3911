"""Loopback ports for the test servers, chosen so that the kernel cannot hand them out again.

`bind(0)` returns a port from the kernel's ephemeral range and forgets it once the probe socket
closes; before the server we start binds it, any outgoing connection (a test's HTTP client, a
token-service callout) may take the same number as its source port, and the server exits with
"Address already in use" (CI saw Envoy exit 1 that way). So ports come from *below* the
ephemeral range (`net.ipv4.ip_local_port_range`), which the kernel never assigns on its own,
each at most once per test process, and only after a bind probe shows them free.
"""

from __future__ import annotations

import random
import socket
import threading

#: Lowest port handed out; below it sit well-known and registered services' defaults.
FLOOR = 20000

_given: set[int] = set()
_lock = threading.Lock()


def ephemeral_floor() -> int:
    """The first port of the kernel's ephemeral range (32768 when it cannot be read)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback TCP port nothing listens on, outside the ephemeral range, never given twice
    by this process. Falls back to the kernel's choice if the range below is exhausted."""
    top = ephemeral_floor()
    with _lock:
        if top - FLOOR > 1000:
            for _ in range(200):
                port = random.randrange(FLOOR, top)
                if port not in _given and _bindable(port):
                    _given.add(port)
                    return port
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        _given.add(port)
        return port


def is_port_clash(log_text: str) -> bool:
    """Whether a server's output says it lost its port to someone else (then start it again on
    fresh ports rather than fail the test)."""
    return "address already in use" in log_text.lower()
