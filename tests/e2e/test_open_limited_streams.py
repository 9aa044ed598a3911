"""Open requests of limited and budgeted tokens outlive their verdicts: the filter revalidates
a token whose open requests' verdict ran out and closes them only when the token is refused or
its model allow-list changed. A budgeted token's verdicts each carry a new grant, and a
revalidation carries none: comparing the grants closed every open stream of a budgeted token
at its first revalidation (a long completion cut after the cache TTL)."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

STREAM = json.dumps({"model": "gpt-5-mini", "stream": True, "max_tokens": 50,
                     "messages": [{"role": "user", "content": "hi"}]}).encode()


def held_stream(stack, token: str) -> dict:
    """Starts a streamed chat request the mock holds after its first event; returns what the
    client read once the stream ends (status, body, error)."""
    out: dict = {}

    def run():
        try:
            with requests.post(f"{stack.url}/v1/chat/completions", data=STREAM, stream=True,
                               timeout=30,
                               headers={"authorization": f"Bearer {token}",
                                        "content-type": "application/json",
                                        "x-mock-hold": "1"}) as r:
                out["status"] = r.status_code
                out["body"] = b"".join(r.iter_content(None)).decode(errors="replace")
        except requests.RequestException as e:  # a reset stream
            out["error"] = repr(e)

    thread = threading.Thread(target=run)
    thread.start()
    out["thread"] = thread
    return out


def outlives_revalidations(stack, token: str) -> dict:
    stream = held_stream(stack, token)
    # Three revalidation ticks (the TTL is at most 1 s, the tick 1 s) with the stream open.
    time.sleep(3.5)
    stack.release_upstream()
    stream["thread"].join(30)
    return stream


@pytest.fixture(scope="module", params=[1000, 0], ids=["ttl-1s", "ttl-0"])
def stack(request):
    from .harness import Stack
    s = Stack(cache_ttl_ms=request.param).start()
    try:
        yield s
    finally:
        s.stop()
        s.cleanup()


@pytest.mark.parametrize("limits", [
    ("--token-budget", "1000000/day"),
    ("--models", "gpt-5*"),
    ("--token-budget", "1000000/day", "--models", "gpt-5*"),
], ids=["budget", "models", "both"])
def test_an_open_stream_of_a_limited_token_outlives_its_revalidations(stack, limits):
    token = stack.mint("openai", *limits)["token"]
    stream = outlives_revalidations(stack, token)
    assert "error" not in stream, stream
    assert stream["status"] == 200
    assert "[DONE]" in stream["body"], stream["body"][-300:]


def test_a_changed_model_allow_list_still_closes_the_open_stream(stack):
    minted = stack.mint("openai", "--models", "gpt-5*")
    stream = held_stream(stack, minted["token"])
    time.sleep(1.0)
    stack.cli("tokens", "update", minted["hash"], "--models", "gpt-4*")
    stream["thread"].join(10)
    done = not stream["thread"].is_alive()
    stack.release_upstream()
    stream["thread"].join(30)
    assert done, "the stream stayed open after its model was taken off the allow-list"
    assert "error" in stream or "[DONE]" not in stream.get("body", ""), stream
