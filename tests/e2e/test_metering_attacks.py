"""Adversarial checks on metering (issue 13) through the real Envoy: a request body that
arrives before the check's verdict is never forwarded on its own, and the usage-only chunk's
removal never loses the bytes an upstream sent."""

from __future__ import annotations

import json
import secrets
import socket
import time

import pytest
import requests

from .conftest import stack_factory
from .delay_relay import SlowChecksStack


@pytest.fixture
def slow_stack():
    yield from stack_factory(SlowChecksStack)


def raw_post(port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """One HTTP/1.1 POST sent in a single write (headers and body together)."""
    head = f"POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head.encode() + body)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings"])
def test_a_body_that_arrives_before_the_verdict_is_not_forwarded(slow_stack, path):
    """The check answers after 1 s; the body is already in Envoy. An unknown token gets 401
    and the upstream sees nothing (a body callback answering Continue while the headers wait
    would let Envoy forward headers and body before the verdict)."""
    stack = slow_stack(reply_delay=1.0, timeout_ms=3000)
    stack.reset_upstream()
    body = json.dumps({"model": "gpt-4o-mini", "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    token = "ptk_" + secrets.token_urlsafe(24)
    out = raw_post(stack.proxy_port, path, {"authorization": f"Bearer {token}",
                                            "content-type": "application/json"}, body)
    assert out.startswith(b"HTTP/1.1 401"), out[:200]
    time.sleep(0.3)
    assert stack.upstream_requests() == []


def test_a_stream_whose_body_arrived_during_the_check_is_still_metered(slow_stack):
    """A cold cache: the check takes 0.5 s and the whole streamed Chat Completions body is
    already in Envoy when it answers. The call is still asked for its usage and metered."""
    stack = slow_stack(reply_delay=0.5, timeout_ms=3000)
    minted = stack.mint("openai")
    stack.reset_upstream()
    body = json.dumps({"model": "gpt-4o", "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    out = raw_post(stack.proxy_port, "/v1/chat/completions",
                   {"authorization": f"Bearer {minted['token']}",
                    "content-type": "application/json"}, body)
    assert out.startswith(b"HTTP/1.1 200"), out[:300]
    assert b'"choices":[]' not in out.replace(b" ", b""), out
    sent = [r for r in stack.upstream_requests() if r["path"].endswith("/chat/completions")]
    assert len(sent) == 1
    assert json.loads(sent[0]["body"]).get("stream_options") == {"include_usage": True}, sent
    deadline, models = time.monotonic() + 10, []
    while time.monotonic() < deadline:
        models = json.loads(stack.cli("tokens", "usage", minted["hash"], "--json").stdout)["models"]
        if models:
            break
        time.sleep(0.3)
    assert len(models) == 1 and models[0]["input_tokens"] > 0, models


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("size", [1000 * 1024, 3 * 1024 * 1024])
def test_a_chat_request_larger_than_envoys_buffer_is_forwarded(stack, stream, size):
    """Vision requests carry base64 images: a Chat Completions body near or over Envoy's 1 MiB
    default buffer limit passes as it did before metering, streamed or not (before: 413)."""
    minted = stack.mint("openai")
    stack.reset_upstream()
    image = "data:image/png;base64," + "A" * size
    body = {"model": "gpt-4o", "stream": stream, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": image}}]}]}
    reply = requests.post(f"{stack.url}/v1/chat/completions", json=body, timeout=60,
                          headers={"authorization": f"Bearer {minted['token']}"})
    assert reply.status_code == 200, (reply.status_code, reply.text[:300])
    sent = [r for r in stack.upstream_requests() if r["path"].endswith("/chat/completions")]
    assert len(sent) == 1 and len(sent[0]["body"]) >= size


@pytest.mark.parametrize("tail", [b"data: [DONE]\n\n", b"data: [DONE]\n", b"data: [DONE]", b"data: [DONE]\r\n\r"])
def test_an_asked_stream_reaches_the_client_byte_for_byte_whatever_its_last_line(stack, tail):
    """An asked stream, sent with a `content-length` (the usage chunk's removal shortens it:
    the client hung waiting for the missing bytes), and with a last event that may have no
    blank line after it (held by the usage-chunk remover until the end), reaches the client
    whole, its usage chunk removed."""
    import base64
    minted = stack.mint("openai")
    first = b'data: {"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
    usage = b'data: {"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1}}\n\n'
    reply = requests.post(
        f"{stack.url}/v1/chat/completions", timeout=30,
        json={"model": "gpt-4o", "stream": True, "messages": []},
        headers={"authorization": f"Bearer {minted['token']}",
                 "x-mock-body": base64.b64encode(first + usage + tail).decode(),
                 "x-mock-content-type": "text/event-stream"})
    assert reply.status_code == 200, reply.text
    assert reply.content == first + tail


def test_a_long_stream_request_below_the_hold_limit_is_still_asked(stack):
    """A 400 KB prompt (long context, under the 512 KiB hold limit) is still asked."""
    minted = stack.mint("openai")
    stack.reset_upstream()
    reply = requests.post(f"{stack.url}/v1/chat/completions", timeout=60, json={
        "model": "gpt-4o", "stream": True,
        "messages": [{"role": "user", "content": "x" * (400 * 1000)}]},
        headers={"authorization": f"Bearer {minted['token']}"})
    assert reply.status_code == 200
    sent = [r for r in stack.upstream_requests() if r["path"].endswith("/chat/completions")]
    assert json.loads(sent[0]["body"])["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("query,headers", [
    ("?fields=candidates", {}),
    ("?%24fields=candidates", {}),
    ("", {"x-goog-fieldmask": "candidates"}),
    ("?alt=proto", {}),
    ("?%24alt=PROTO", {}),
])
def test_a_gemini_call_cannot_hide_its_usage_behind_a_system_parameter(stack, query, headers):
    """Google APIs honour `fields`/`$fields`/`X-Goog-FieldMask` (partial responses) and
    `alt=proto` on every method: a client that asks for `candidates` only gets no
    `usageMetadata` (or a body the meter cannot read), and its tokens go unmetered. Expected:
    the upstream never sees them on a metered call (stripped, or the call refused)."""
    minted = stack.mint("gemini")
    stack.reset_upstream()
    path = "/v1beta/models/gemini-2.5-flash:generateContent" + query
    r = requests.post(f"{stack.url}{path}", timeout=30,
                      headers={"x-goog-api-key": minted["token"], **headers},
                      json={"contents": [{"parts": [{"text": "hi"}]}]})
    sent = [rec for rec in stack.upstream_requests() if ":generateContent" in rec["path"]]
    if r.status_code >= 400 and not sent:
        return  # refused before it went up: fine
    (record,) = sent
    names = {name.lower() for name, _ in record["headers"]}
    assert "x-goog-fieldmask" not in names, record
    assert "fields=" not in record["path"] and "proto" not in record["path"].lower(), record
