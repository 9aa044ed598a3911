"""A TCP relay that delays what passes through it: latency between Envoy and the token-service
(a token-service on another host, a slow database), for the tests whose subject is timing."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

from .harness import Stack, free_port


class DelayRelay:
    """127.0.0.1:`port` -> 127.0.0.1:`target_port`; each chunk toward the target waits
    `delay` s, each chunk back waits `reply_delay` s."""

    def __init__(self, target_port: int, delay: float = 0.0, reply_delay: float = 0.0):
        self.target_port, self.delay, self.reply_delay = target_port, delay, reply_delay
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
                    raise RuntimeError("delay relay did not start") from None
                time.sleep(0.05)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self.loop.run_forever()

    @staticmethod
    async def _pipe(reader, writer, delay: float) -> None:
        try:
            while data := await reader.read(65536):
                if delay:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(reader, up_writer, self.delay),
                             self._pipe(up_reader, writer, self.reply_delay))


class SlowChecksStack(Stack):
    """A stack whose check cluster reaches the token-service through a DelayRelay."""

    def __init__(self, check_delay: float = 0.0, reply_delay: float = 0.0, **settings):
        super().__init__(**settings)
        self.check_delay, self.reply_delay = check_delay, reply_delay

    def _start_service(self) -> None:
        super()._start_service()
        self.relay = DelayRelay(self.service_port, self.check_delay, self.reply_delay)
        self.token_service_addr = f"127.0.0.1:{self.relay.port}"
