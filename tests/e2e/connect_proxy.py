"""A minimal HTTP CONNECT proxy (RFC 9110 §9.3.6) on loopback: the egress of the geo-fallback
test that reaches its target through a tunnel, as Envoy's `http_11_proxy` transport socket
does. It records each CONNECT target and pipes bytes both ways untouched."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

from .harness import free_port


class ConnectProxy:
    """127.0.0.1:`port`; `targets` lists the `host:port` of every CONNECT it served."""

    def __init__(self) -> None:
        self.port = free_port()
        self.targets: list[str] = []
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self._run, daemon=True).start()
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("connect proxy did not start") from None
                time.sleep(0.05)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self.loop.run_forever()

    @staticmethod
    async def _pipe(reader, writer) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader, writer) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            writer.close()  # the readiness probe, or a client that gave up
            return
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            writer.close()
            return
        self.targets.append(target)
        host, _, port = target.rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
