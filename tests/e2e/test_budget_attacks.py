"""A budgeted token's holder against its budget, through the real Envoy and token-service:
leaving before the answer (charged its estimate, not nothing), asking for several
completions (`n`, `candidateCount`: each estimated up to the cap), naming the cap in a
spelling the provider accepts and the estimator missed (a protobuf-JSON string), input the
body's bytes do not bound (`previous_response_id`: estimated at the context bound), and a
body the filter cannot read as the provider would (refused)."""

from __future__ import annotations

import base64
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import pytest
import requests

from .test_budgets import ESTIMATE, body, budgets, post


@pytest.fixture(scope="module")
def stack():
    from .harness import Stack
    s = Stack().start()
    try:
        yield s
    finally:
        s.stop()
        s.cleanup()


def spent_at_least(stack, token_hash: str, floor: int, timeout: float = 10) -> dict:
    """The token budget once its spend reaches `floor` (or the last seen at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        b = budgets(stack, token_hash)
        if b["spent"] >= floor or time.monotonic() > deadline:
            return b
        time.sleep(0.3)


def test_a_request_the_client_leaves_before_its_answer_is_charged_its_estimate(stack):
    """A non-streamed completion answers only once it is done; a client that sends it and
    hangs up before the answer still had it run (the provider bills it). It was charged
    nothing (its estimate lapsed with the grant, back in the budget): spend for free."""
    minted = stack.mint("openai", "--token-budget", "1000000/day")
    token, token_hash = minted["token"], minted["hash"]
    data = body()
    url = urlparse(stack.url)
    stack.reset_upstream()
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: proxy.local\r\n"
                     + f"authorization: Bearer {token}\r\n".encode()
                     + b"content-type: application/json\r\nx-mock-hold: 1\r\n"
                     + f"content-length: {len(data)}\r\n\r\n".encode() + data)
        deadline = time.monotonic() + 10
        while not stack.upstream_requests():
            assert time.monotonic() < deadline, "the request never reached the provider"
            time.sleep(0.05)
    # The client is gone; the provider finishes the completion anyway.
    stack.release_upstream()
    b = spent_at_least(stack, token_hash, ESTIMATE)
    assert b["spent"] == ESTIMATE, b
    assert b["reserved"] >= 0


def chat_with(**fields) -> bytes:
    doc = {"model": "gpt-5-mini", "messages": [{"role": "user", "content": "hi"}], **fields}
    return json.dumps(doc, separators=(",", ":")).encode()


def test_every_choice_asked_for_is_estimated(stack):
    """`n: 8` with `max_tokens: 100` bills up to 800 output tokens: a budget of 600 cannot
    cover it, so it is refused before anything is forwarded (it was estimated at 100 and
    forwarded: up to 8x the estimate spent)."""
    minted = stack.mint("openai", "--token-budget", "600/day")
    stack.reset_upstream()
    r = post(stack, minted["token"], chat_with(max_tokens=100, n=8))
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "budget_exhausted"
    assert stack.upstream_requests() == []
    # One choice fits.
    assert post(stack, minted["token"], chat_with(max_tokens=100, n=1)).status_code == 200


def test_a_gemini_cap_written_as_a_string_is_read(stack):
    """Protobuf JSON takes integers as strings, so Gemini reads `"maxOutputTokens": "65536"`;
    the estimator read it as no cap (the 4,096 default) and forwarded it under a budget of
    10,000: up to 65,536 output tokens for an estimate of ~4,200."""
    minted = stack.mint("gemini", "--token-budget", "10000/day")
    stack.reset_upstream()
    doc = {"contents": [{"parts": [{"text": "hi"}]}],
           "generationConfig": {"maxOutputTokens": "65536"}}
    r = requests.post(f"{stack.url}/v1beta/models/gemini-2.5-flash:generateContent",
                      data=json.dumps(doc), timeout=30,
                      headers={"x-goog-api-key": minted["token"],
                               "content-type": "application/json"})
    assert r.status_code == 429, r.text
    assert r.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert stack.upstream_requests() == []


#: What OpenAI answers a Responses call that continues a long stored conversation: the
#: earlier turns are billed as input again, whatever the new body's size.
CONTINUED = {"id": "resp_2", "object": "response", "status": "completed",
             "model": "gpt-5-mini", "output": [],
             "usage": {"input_tokens": 50000, "output_tokens": 16, "total_tokens": 50016,
                       "input_tokens_details": {"cached_tokens": 0},
                       "output_tokens_details": {"reasoning_tokens": 0}}}


def test_input_the_body_only_references_does_not_overshoot_the_budget(stack):
    """Ten concurrent Responses calls with a 90-byte body, `max_output_tokens: 16` and a
    `previous_response_id`, each billed 50,016 (the stored conversation is input again).
    Estimated at their bytes (~110 tokens) they fitted a budget of 2,000: 6 admitted, 300,096
    spent. Estimated at OpenAI's context bound (1,050,000 + 16) none fits: all refused before
    anything is forwarded."""
    minted = stack.mint("openai", "--token-budget", "2000/day", "--rate-limit", "1000/60")
    token, token_hash = minted["token"], minted["hash"]
    data = json.dumps({"model": "gpt-5-mini", "input": "and then?", "max_output_tokens": 16,
                       "previous_response_id": "resp_1"}).encode()
    answer = base64.b64encode(json.dumps(CONTINUED).encode()).decode()
    stack.reset_upstream()

    def one(_):
        return post(stack, token, data, path="/v1/responses",
                    **{"x-mock-body": answer, "x-mock-hold": "1"})

    with ThreadPoolExecutor(max_workers=10) as pool:
        futures = [pool.submit(one, n) for n in range(10)]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if sum(f.done() for f in futures) + len(stack.upstream_requests()) >= 10:
                break
            time.sleep(0.1)
        stack.release_upstream()
        replies = [f.result() for f in futures]
    codes = [r.status_code for r in replies]
    admitted = codes.count(200)
    b = spent_at_least(stack, token_hash, admitted * 50016, timeout=2)
    # The measured overshoot, for the report.
    print(f"admitted {admitted} of 10, spent {b['spent']} of a {b['limit']} budget")
    assert b["spent"] <= b["limit"], b
    assert codes == [429] * 10, codes
    assert {r.json()["error"]["code"] for r in replies} == {"budget_exhausted"}
    assert stack.upstream_requests() == []
    # The same call without the reference is estimated at its bytes and runs.
    plain = json.dumps({"model": "gpt-5-mini", "input": "hi", "max_output_tokens": 16}).encode()
    assert post(stack, token, plain, path="/v1/responses").status_code == 200


@pytest.mark.parametrize("data", [
    b'{"model":"gpt-5-mini","max_tokens":16,"messages":[],"max_tokens":100000}',
    b'{"model":"gpt-5-mini","messages":[{"role":"user","content":"\xff"}]}',
], ids=["duplicate-cap", "invalid-utf8"])
def test_a_body_the_provider_may_read_otherwise_is_refused_before_forwarding(stack, data):
    """A last-key-wins server honours the second `max_tokens`; the filter's parser refuses the
    duplicate and estimated the default cap (4,096): up to 100,000 output tokens for an
    estimate of ~4,200. Under a budget such a body is refused (400), nothing forwarded."""
    minted = stack.mint("openai", "--token-budget", "1000000/day")
    stack.reset_upstream()
    r = post(stack, minted["token"], data)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "budget_body_unreadable"
    assert stack.upstream_requests() == []
    b = budgets(stack, minted["hash"])
    assert b["spent"] == 0, b
