"""A small asyncio TCP server on a loopback port, run on its own thread, for the test relays
(delay_relay.py, connect_proxy.py): started and reachable when the constructor returns."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

from .harness import free_port


class LoopbackServer:
    """127.0.0.1:`port`, serving `_handle(reader, writer)` (a subclass's) on every connection."""

    name = "loopback server"

    def __init__(self) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self._run, daemon=True).start()
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not start") from None
                time.sleep(0.05)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self.loop.run_forever()

    async def _handle(self, reader, writer) -> None:
        raise NotImplementedError

    @staticmethod
    async def pipe(reader, writer, delay: float = 0.0) -> None:
        """Copies `reader` to `writer` until either side ends, each chunk `delay` s late."""
        try:
            while data := await reader.read(65536):
                if delay:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
