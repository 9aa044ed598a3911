"""Fails clearly when a port `make run` / `make demo` needs is taken.

    python tools/port_check.py 'Envoy proxy=PTK_PROXY_PORT=127.0.0.1:10000' ...

Each argument is WHAT=VARIABLE=HOST:PORT. A port is taken when something accepts a connection
on it or when it cannot be bound: a foreign server there would otherwise answer our readiness
probes while our own process dies on start. Exit 1 naming every taken port and the variable that
moves it; 0 when all are free.
"""

from __future__ import annotations

import socket
import sys


def taken(host: str, port: int) -> str | None:
    """Why HOST:PORT cannot be ours, or None when it is free."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return "something is already listening there"
    except OSError:
        pass
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As Envoy and the token-service bind: connections of an earlier run still in
        # TIME_WAIT do not make the port taken, a listener does.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            return f"it cannot be bound ({e.strerror})"
    return None


def wanted(var: str) -> str:
    """What a setting takes: a port number (`PTK_…_PORT`) or a host:port address."""
    return "port number" if var.endswith("_PORT") else "host:port, e.g. 127.0.0.1:11080"


def main(argv: list[str]) -> int:
    problems = []
    for arg in argv:
        what, var, addr = arg.split("=", 2)
        host, _, port = addr.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            # Caught here, before anything is generated or started, with the setting named.
            value = port if var.endswith("_PORT") else addr
            problems.append(f"{var}={value!r} ({what}): expected a {wanted(var)}")
            continue
        why = taken(host, int(port))
        if why:
            problems.append(f"port {port} ({what}, {host}:{port}) is taken: {why}; "
                            f"stop that program or set {var} to a free {wanted(var)}")
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
