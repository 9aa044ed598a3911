"""Fixtures for the compat suite: one real stack (Envoy + built filter + token-service + mock)
per pytest run, always torn down; each test starts with an empty upstream recording."""

from __future__ import annotations

import pytest

from tests.compat import env
from tests.e2e.harness import Stack

env.apply()  # before any client library is imported by a test module


@pytest.fixture(scope="session")
def stack():
    s = Stack().start()
    try:
        yield s
    finally:
        s.stop()
        s.cleanup()


@pytest.fixture(autouse=True)
def _clean_upstream(request):
    if "stack" in request.fixturenames:
        request.getfixturevalue("stack").reset_upstream()
    yield


class Tokens:
    """Tokens for one test: a good one and the three refusals the official SDKs must surface."""

    def __init__(self, stack: Stack, provider: str) -> None:
        self.stack, self.provider = stack, provider

    def good(self, providers: str = "openai,anthropic,gemini") -> str:
        return self.stack.mint(providers)["token"]

    def revoked(self) -> str:
        created = self.stack.mint(self.provider)
        self.stack.cli("tokens", "disable", created["hash"])
        return created["token"]

    def out_of_scope(self) -> str:
        others = [p for p in ("openai", "anthropic", "gemini") if p != self.provider]
        return self.stack.mint(",".join(others))["token"]

    def rate_limited(self) -> str:
        """A token whose one request per minute is already spent by the caller's first call."""
        return self.stack.mint(self.provider, "--rate-limit", "1/60")["token"]


@pytest.fixture
def tokens(stack, request):
    provider = getattr(request.module, "PROVIDER", "openai")
    return Tokens(stack, provider)
