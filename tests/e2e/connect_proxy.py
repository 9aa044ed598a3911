"""A minimal HTTP CONNECT proxy (RFC 9110 §9.3.6) on loopback: the egress of the geo-fallback
test that reaches its target through a tunnel, as Envoy's `http_11_proxy` transport socket
does. It records each CONNECT target and pipes bytes both ways untouched."""

from __future__ import annotations

import asyncio

from .loopback_server import LoopbackServer


class ConnectProxy(LoopbackServer):
    """127.0.0.1:`port`; `targets` lists the `host:port` of every CONNECT it served."""

    name = "connect proxy"

    def __init__(self) -> None:
        self.targets: list[str] = []
        super().__init__()

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
        await asyncio.gather(self.pipe(reader, up_writer), self.pipe(up_reader, writer))
