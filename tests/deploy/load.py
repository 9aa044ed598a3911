"""A bounded load of checked requests through Envoy: a few client threads, each on its own
keep-alive session, for a fixed time; every answer is recorded with when it came back."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests


@dataclass
class Load:
    """`threads` clients calling `url` with `token` (OpenAI chat) until `stop()`."""

    url: str
    token: str
    threads: int = 6
    #: (seconds since start, status) of every answer; status 0 is a client-side error.
    results: list[tuple[float, int]] = field(default_factory=list)

    def start(self) -> "Load":
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._run, daemon=True)
                         for _ in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def _run(self) -> None:
        session = requests.Session()
        headers = {"authorization": f"Bearer {self.token}"}
        body = {"model": "gpt-4o-mini", "messages": []}
        while not self._stop.is_set():
            try:
                status = session.post(f"{self.url}/v1/chat/completions", json=body,
                                      headers=headers, timeout=10).status_code
            except requests.RequestException:
                status = 0
            with self._lock:
                self.results.append((time.monotonic() - self.t0, status))

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=15)

    def counts(self) -> Counter:
        return Counter(status for _, status in self.results)

    def failures(self) -> list[tuple[float, int]]:
        return [(t, s) for t, s in self.results if s != 200]
