"""What Envoy itself answers on a provider's behalf, through the real Envoy and the mock:
a call that goes quiet past the provider routes' idle timeout is a 504, a provider that
cannot be reached is a 502, each in the shape of the provider the route leads to (Gemini's
OpenAI-compatible endpoint in OpenAI's), never Envoy's plain-text `stream timeout` or one
shape for all. The stacks use the *_UPSTREAM overrides (host_rewrite_literal to the mock);
test_provider_tls.py covers the committed routes."""

from __future__ import annotations

import threading
import time

import pytest

from .harness import free_port
from .provider_calls import assert_error_shape, call_all

UPSTREAM_VARS = ("OPENAI_UPSTREAM", "ANTHROPIC_UPSTREAM", "GEMINI_UPSTREAM")
IDLE_TIMEOUT_S = 3


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_call_quiet_past_the_idle_timeout_is_504_in_each_providers_shape(make_stack, method):
    """GET too: a request without a body is routed by the connection manager before the
    filter names the provider, so only the connection manager's own idle timeout reaches it
    (a GET used to be cut at 300 s whatever the provider routes said)."""
    s = make_stack(render_extra=lambda _: ["--provider-idle-timeout", str(IDLE_TIMEOUT_S)])
    token = s.mint()["token"]
    hold = {"x-mock-hold": "1"}

    # Control: the mock answers after 1 s of silence, inside the timeout: every call passes.
    releaser = threading.Timer(1.0, s.release_upstream)
    releaser.start()
    try:
        replies = call_all(s.url, token, hold, method=method)
    finally:
        releaser.cancel()
    assert {r: resp.status_code for r, resp in replies.items()} == dict.fromkeys(replies, 200)

    # The mock holds every response (up to 20 s): Envoy gives up after the idle timeout.
    s.reset_upstream()
    started = time.monotonic()
    try:
        replies = call_all(s.url, token, hold, method=method)
    finally:
        s.release_upstream()
    elapsed = time.monotonic() - started
    for route, resp in replies.items():
        assert_error_shape(resp, route, 504, "upstream request timed out")
    assert IDLE_TIMEOUT_S - 0.5 <= elapsed < IDLE_TIMEOUT_S + 5, elapsed
    assert len(s.upstream_requests()) == 4, "each call reached the provider before the cut"


def test_an_unreachable_provider_is_502_in_each_providers_shape(make_stack):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    s = make_stack(upstreams=dict.fromkeys(UPSTREAM_VARS, dead))
    replies = call_all(s.url, s.mint()["token"])
    for route, resp in replies.items():
        assert_error_shape(resp, route, 502, "upstream request failed")
