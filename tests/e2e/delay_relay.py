"""A TCP relay that delays what passes through it: latency between Envoy and the token-service
(a token-service on another host, a slow database), for the tests whose subject is timing."""

from __future__ import annotations

import asyncio

from .harness import Stack
from .loopback_server import LoopbackServer


class DelayRelay(LoopbackServer):
    """127.0.0.1:`port` -> 127.0.0.1:`target_port`; each chunk toward the target waits
    `delay` s, each chunk back waits `reply_delay` s."""

    name = "delay relay"

    def __init__(self, target_port: int, delay: float = 0.0, reply_delay: float = 0.0):
        self.target_port, self.delay, self.reply_delay = target_port, delay, reply_delay
        super().__init__()

    async def _handle(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self.pipe(reader, up_writer, self.delay),
                             self.pipe(up_reader, writer, self.reply_delay))


class SlowChecksStack(Stack):
    """A stack whose check cluster reaches the token-service through a DelayRelay."""

    def __init__(self, check_delay: float = 0.0, reply_delay: float = 0.0, **settings):
        super().__init__(**settings)
        self.check_delay, self.reply_delay = check_delay, reply_delay

    def _start_service(self) -> None:
        super()._start_service()
        self.relay = DelayRelay(self.service_port, self.check_delay, self.reply_delay)
        self.token_service_addr = f"127.0.0.1:{self.relay.port}"
