"""A throwaway redis-server on loopback for tests that need one (Debian's `redis-server`,
installed by `make test-deps`): no persistence, its files in a directory the test owns."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

from tests.ports import free_port


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """Starts redis-server, yields its URL (`redis://127.0.0.1:PORT/0`) once it accepts
    connections, and kills it on exit."""
    assert shutil.which("redis-server"), "redis-server missing: run `make test-deps`"
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, "redis-server exited"
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()
