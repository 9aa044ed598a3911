"""Token usage metered through the real Envoy (issue 13): the filter reads usage from each
provider's responses as they pass (JSON and SSE, OpenAI, Anthropic, Gemini), asks a streamed
Chat Completions call for usage the client did not ask for and removes the usage-only chunk
again (the client sees exactly its stream), reports with the worker's activity, and the
token-service prices and stores it: `tokens usage --json` shows per model what the clients'
own responses said they used."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.mock_upstream.fixtures import CACHE_WRITE_TOKENS, CACHED_TOKENS, INPUT_TOKENS

from .harness import Stack

STACK_SETTINGS: dict = {}

#: Prompt tokens of every mock reply.
PROMPT = INPUT_TOKENS
#: Anthropic's `input_tokens` leaves out cache reads and writes; the normalised input has them.
CLAUDE_INPUT = PROMPT + CACHED_TOKENS + CACHE_WRITE_TOKENS


def chat(stack: Stack, token: str, body: dict) -> requests.Response:
    return requests.post(f"{stack.url}/v1/chat/completions", json=body, timeout=30,
                         headers={"authorization": f"Bearer {token}"})


def data_events(text: str) -> list[dict]:
    events = []
    for line in text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            events.append(json.loads(line[len("data: "):]))
    return events


def usage_of(stack: Stack, token_hash: str) -> dict[str, dict]:
    """`tokens usage --json`, per model, once the workers have flushed."""
    deadline = time.monotonic() + 10
    while True:
        out = stack.cli("tokens", "usage", token_hash, "--json")
        models = {m["model"]: m for m in json.loads(out.stdout)["models"]}
        if sum(m["requests"] for m in models.values()) >= 5 or time.monotonic() > deadline:
            return models
        time.sleep(0.3)


def stat(stack: Stack, name: str) -> int:
    text = requests.get(f"http://127.0.0.1:{stack.admin_port}/stats?filter=ptk.usage",
                        timeout=5).text
    for line in text.splitlines():
        key, _, value = line.partition(": ")
        if key == f"wasmcustom.ptk.{name}":
            return int(value)
    raise AssertionError(f"no stat {name}: {text}")


def test_every_provider_is_metered_and_a_stream_sees_only_what_it_asked_for(stack):
    minted = stack.mint()
    token, token_hash = minted["token"], minted["hash"]
    stack.reset_upstream()

    # 1. Not streamed: the client's own usage is what gets metered.
    plain = chat(stack, token, {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    assert plain.status_code == 200, plain.text
    seen_output = plain.json()["usage"]["completion_tokens"]

    # 2. Streamed without asking for usage: asked upstream, not shown to the client.
    stream = chat(stack, token, {"model": "gpt-4o", "stream": True,
                                 "messages": [{"role": "user", "content": "hello there"}]})
    assert stream.status_code == 200, stream.text
    events = data_events(stream.text)
    assert events and all(e.get("choices") for e in events), stream.text
    assert all(e.get("usage") is None for e in events), stream.text
    assert stream.text.rstrip().endswith("data: [DONE]")
    upstream = [r for r in stack.upstream_requests() if r["path"].endswith("/chat/completions")]
    sent = json.loads(upstream[-1]["body"])
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["messages"] == [{"role": "user", "content": "hello there"}]

    # 3. Streamed and asking: the client keeps its usage chunk.
    asked = chat(stack, token, {"model": "gpt-4o", "stream": True,
                                "stream_options": {"include_usage": True}, "messages": []})
    usage_chunks = [e for e in data_events(asked.text) if e.get("usage")]
    assert len(usage_chunks) == 1 and usage_chunks[0]["choices"] == []
    seen_output += usage_chunks[0]["usage"]["completion_tokens"]

    # 4. Anthropic, streamed (message_start + cumulative message_delta).
    anthropic = requests.post(f"{stack.url}/v1/messages", timeout=30, json={
        "model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
        "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-api-key": token, "anthropic-version": "2023-06-01"})
    assert anthropic.status_code == 200, anthropic.text

    # 5. Gemini native, not streamed.
    gemini = requests.post(f"{stack.url}/v1beta/models/gemini-2.5-flash:generateContent",
                           json={"contents": [{"parts": [{"text": "hi"}]}]}, timeout=30,
                           headers={"x-goog-api-key": token})
    assert gemini.status_code == 200, gemini.text
    gemini_usage = gemini.json()["usageMetadata"]

    models = usage_of(stack, token_hash)
    gpt = models["gpt-4o"]
    assert gpt["requests"] == 3 and gpt["incomplete"] == 0, gpt
    assert gpt["input_tokens"] == 3 * PROMPT, gpt
    assert gpt["output_tokens"] >= seen_output + 1, gpt  # plus the stream's own output
    assert gpt["cost_usd"] is not None and float(gpt["cost_usd"]) > 0, gpt
    claude = models["claude-sonnet-4-5"]
    assert (claude["requests"], claude["input_tokens"], claude["incomplete"]) == (1, CLAUDE_INPUT, 0)
    flash = models["gemini-2.5-flash"]
    assert flash["input_tokens"] == gemini_usage["promptTokenCount"]
    # Gemini's candidatesTokenCount leaves out thoughts; the normalised output has them.
    assert flash["output_tokens"] == (gemini_usage["candidatesTokenCount"]
                                      + gemini_usage["thoughtsTokenCount"])
    # The filter's own counters agree.
    assert stat(stack, "usage.responses") == 5
    assert stat(stack, "usage.input_tokens") == 4 * PROMPT + CLAUDE_INPUT


def test_bodies_of_unknown_or_large_size_pass_as_they_come(stack):
    """Only a body with a content-length within metering.max_request_body_bytes is held to ask
    for usage: a chunked one, or a large one, is forwarded as it comes (never stalls)."""
    token = stack.mint()["token"]
    stack.reset_upstream()
    body = json.dumps({"model": "gpt-4o", "stream": True, "messages": []}).encode()
    chunked = requests.post(f"{stack.url}/v1/chat/completions", data=iter([body[:10], body[10:]]),
                            headers={"authorization": f"Bearer {token}",
                                     "content-type": "application/json"}, timeout=30)
    assert chunked.status_code == 200, chunked.text
    # Past metering.max_request_body_bytes (512 KiB by default).
    big = {"model": "gpt-4o", "stream": True,
           "messages": [{"role": "user", "content": "x" * 600_000}]}
    large = chat(stack, token, big)
    assert large.status_code == 200
    sent = [json.loads(r["body"]) for r in stack.upstream_requests()]
    assert [s.get("stream_options") for s in sent] == [None, None], "held and rewritten"
    assert sent[1] == big


def test_a_provider_error_counts_a_request_without_usage(stack):
    minted = stack.mint()
    failed = requests.post(f"{stack.url}/v1/chat/completions", timeout=30,
                           json={"model": "gpt-4o", "messages": []},
                           headers={"authorization": f"Bearer {minted['token']}",
                                    "x-mock-status": "500"})
    assert failed.status_code == 500, failed.text
    deadline = time.monotonic() + 10
    models: list = []
    while not models and time.monotonic() < deadline:
        time.sleep(0.3)
        out = stack.cli("tokens", "usage", minted["hash"], "--json")
        models = json.loads(out.stdout)["models"]
    assert len(models) == 1, models
    m = models[0]
    assert (m["requests"], m["incomplete"], m["input_tokens"], m["output_tokens"]) == (1, 1, 0, 0)
    # Its body was not read: the model is the one the request named.
    assert m["model"] == "gpt-4o", m


# --- every API: the totals equal what the client's own response said ----------------------

def _openai_usage(u: dict) -> dict:
    return {"input": u["prompt_tokens"], "output": u.get("completion_tokens", 0),
            "cached": (u.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
            "reasoning": (u.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)}


def _responses_usage(u: dict) -> dict:
    return {"input": u["input_tokens"], "output": u["output_tokens"],
            "cached": (u.get("input_tokens_details") or {}).get("cached_tokens", 0),
            "reasoning": (u.get("output_tokens_details") or {}).get("reasoning_tokens", 0)}


def _anthropic_usage(u: dict) -> dict:
    reads, writes = u.get("cache_read_input_tokens") or 0, u.get("cache_creation_input_tokens") or 0
    return {"input": u["input_tokens"] + reads + writes, "output": u["output_tokens"],
            "cached": reads, "reasoning": 0}


def _gemini_usage(u: dict) -> dict:
    thoughts = u.get("thoughtsTokenCount", 0)
    return {"input": u["promptTokenCount"] + u.get("toolUsePromptTokenCount", 0),
            "output": u.get("candidatesTokenCount", 0) + thoughts,
            "cached": u.get("cachedContentTokenCount", 0), "reasoning": thoughts}


def _sse_payloads(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines()
            if line.startswith("data: ") and line[6:].strip() not in ("", "[DONE]")]


def _last_with(events: list[dict], *path: str) -> dict:
    found = None
    for event in events:
        value = event
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value:
            found = value
    assert found is not None, (path, events)
    return found


# (name, path, auth header, body, the client's usage in our shape from its response)
API_CASES = [
    ("responses-json", "/v1/responses", "authorization",
     {"model": "gpt-4o", "input": "hi"},
     lambda r: _responses_usage(r.json()["usage"])),
    ("responses-sse", "/v1/responses", "authorization",
     {"model": "gpt-4o", "input": "hi", "stream": True},
     lambda r: _responses_usage(_last_with(_sse_payloads(r.text), "response", "usage"))),
    ("embeddings", "/v1/embeddings", "authorization",
     {"model": "text-embedding-3-small", "input": ["a", "b"]},
     lambda r: _openai_usage(r.json()["usage"])),
    ("anthropic-json", "/v1/messages", "x-api-key",
     {"model": "claude-sonnet-4-5", "max_tokens": 32, "messages": [{"role": "user",
                                                                    "content": "hi"}]},
     lambda r: _anthropic_usage(r.json()["usage"])),
    # Anthropic's OpenAI SDK compatibility endpoint (its key in x-api-key): no way around the
    # meter.
    ("anthropic-openai-compat", "/v1/chat/completions", "x-api-key",
     {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]},
     lambda r: _openai_usage(r.json()["usage"])),
    ("gemini-sse", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
     "x-goog-api-key", {"contents": [{"parts": [{"text": "hi"}]}]},
     lambda r: _gemini_usage(_last_with(_sse_payloads(r.text), "usageMetadata"))),
    ("gemini-openai", "/v1beta/openai/chat/completions", "authorization",
     {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]},
     lambda r: _openai_usage(r.json()["usage"])),
    # Siblings of a metered path the provider may serve too: the credential slot picks the
    # dialect (Gemini's OpenAI-compatible endpoint takes x-goog-api-key and ?key= as well),
    # and the path may carry a trailing slash, doubled slashes or percent-escapes. Metering a
    # spelling the provider refuses costs nothing; missing one it serves is a way around the
    # meter and the budgets.
    ("gemini-openai-goog-key", "/v1beta/openai/chat/completions", "x-goog-api-key",
     {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]},
     lambda r: _openai_usage(r.json()["usage"])),
    ("openai-trailing-slash", "/v1/chat/completions/", "authorization",
     {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
     lambda r: _openai_usage(r.json()["usage"])),
    ("responses-trailing-slash", "/v1/responses/", "authorization",
     {"model": "gpt-4o", "input": "hi"},
     lambda r: _responses_usage(r.json()["usage"])),
    ("anthropic-trailing-slash", "/v1/messages/", "x-api-key",
     {"model": "claude-sonnet-4-5", "max_tokens": 32, "messages": [{"role": "user",
                                                                    "content": "hi"}]},
     lambda r: _anthropic_usage(r.json()["usage"])),
    ("openai-escaped", "/v1/chat/completion%73", "authorization",
     {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
     lambda r: _openai_usage(r.json()["usage"])),
    ("gemini-escaped-colon", "/v1beta/models/gemini-2.5-flash%3AgenerateContent",
     "x-goog-api-key", {"contents": [{"parts": [{"text": "hi"}]}]},
     lambda r: _gemini_usage(r.json()["usageMetadata"])),
]


def _recorded(stack: Stack, token_hash: str, requests_expected: int) -> list[dict]:
    deadline = time.monotonic() + 10
    while True:
        out = stack.cli("tokens", "usage", token_hash, "--json")
        models = json.loads(out.stdout)["models"]
        if sum(m["requests"] for m in models) >= requests_expected:
            return models
        assert time.monotonic() < deadline, models
        time.sleep(0.3)


@pytest.mark.parametrize("name,path,slot,body,client_usage", API_CASES,
                         ids=[case[0] for case in API_CASES])
def test_each_api_records_exactly_what_its_client_was_told(stack, name, path, slot, body,
                                                          client_usage):
    minted = stack.mint("openai,anthropic,gemini")
    value = f"Bearer {minted['token']}" if slot == "authorization" else minted["token"]
    headers = {slot: value}
    if slot == "x-api-key":
        headers["anthropic-version"] = "2023-06-01"
    reply = requests.post(f"{stack.url}{path}", json=body, headers=headers, timeout=30)
    assert reply.status_code == 200, reply.text
    told = client_usage(reply)
    assert told["input"] > 0, told
    (row,) = _recorded(stack, minted["hash"], 1)
    recorded = {"input": row["input_tokens"], "output": row["output_tokens"],
                "cached": row["cached_input_tokens"], "reasoning": row["reasoning_tokens"]}
    assert recorded == told, (name, row)
    assert (row["requests"], row["incomplete"]) == (1, 0), row


def test_a_stream_the_client_abandons_is_recorded_incomplete_with_what_was_seen(stack):
    minted = stack.mint()
    with requests.post(f"{stack.url}/v1/chat/completions", stream=True, timeout=30,
                       json={"model": "gpt-4o", "stream": True, "messages": []},
                       headers={"authorization": f"Bearer {minted['token']}",
                                "x-mock-hold": "1"}) as reply:
        assert reply.status_code == 200
        first = next(reply.iter_lines())
        assert first.startswith(b"data: "), first
    # The connection is closed mid-stream: Envoy resets the stream and the filter records it.
    (row,) = _recorded(stack, minted["hash"], 1)
    assert (row["requests"], row["incomplete"], row["output_tokens"]) == (1, 1, 0), row
    assert row["model"] == "gpt-4o", row
