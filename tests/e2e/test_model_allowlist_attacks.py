"""Attacks on a token's model allow-list through the real Envoy, as a client holding a
limited token would try them: each sends a model the list refuses in a spelling or framing
the filter might not read, and the provider (the mock) must never hear of it."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import struct

import pytest
import requests

MODELS = "gpt-5*,claude-sonnet-4*,gemini-2.5-*,gpt-realtime"


def limited(stack) -> str:
    return stack.mint("openai,anthropic,gemini", "--models", MODELS)["token"]


def chat(model: str) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}]}


# A Gemini-dialect request (the token in `x-goog-api-key`) with an allowed `?model=` in its
# query: Google reads the model from the path or the body, never from `?model=`.
GEMINI_QUERY_MODEL = [
    # Gemini's OpenAI-compatible endpoint, spoken with Gemini's native header.
    ("/v1beta/openai/chat/completions?model=gemini-2.5-flash", chat("gemini-1.5-pro")),
    # cachedContents names its model in the body.
    ("/v1beta/cachedContents?model=gemini-2.5-flash",
     {"model": "models/gemini-1.5-pro", "contents": []}),
    # A path whose `:` is escaped (a server that decodes it reads gemini-1.5-pro).
    ("/v1beta/models/gemini-1.5-pro%3AgenerateContent?model=gemini-2.5-flash",
     {"contents": [{"parts": [{"text": "hi"}]}]}),
]


@pytest.mark.parametrize("path,body", GEMINI_QUERY_MODEL)
def test_a_query_model_does_not_stand_for_a_gemini_requests_model(stack, path, body):
    token = limited(stack)
    r = requests.post(f"{stack.url}{path}", json=body, timeout=20,
                      headers={"x-goog-api-key": token})
    assert r.status_code == 403, (r.status_code, r.text)
    assert stack.upstream_requests() == []




def test_a_gemini_path_model_with_an_escaped_slash_is_refused(stack):
    """`gemini-2.5-*` would match the decoded `gemini-2.5-flash/../../models/gemini-1.5-pro`,
    a name the provider may read as another model's path."""
    token = limited(stack)
    path = "/v1beta/models/gemini-2.5-flash%2F..%2F..%2Fmodels%2Fgemini-1.5-pro:generateContent"
    r = requests.post(f"{stack.url}{path}", json={"contents": []}, timeout=20,
                      headers={"x-goog-api-key": token})
    assert r.status_code == 403, (r.status_code, r.text)
    assert stack.upstream_requests() == []



@pytest.mark.parametrize("path", ["/v1/uploads/../chat/completions",
                                  "/v1/files/%2e%2e/chat/completions"])
def test_a_path_with_dot_segments_is_refused(stack, path):
    """Read as an upload (which spends nothing) here, but as Chat Completions by a server
    that resolves dot segments. Sent raw: requests would resolve them itself."""
    token = limited(stack)
    host, port = stack.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    conn.request("POST", path, body=json.dumps(chat("gpt-4o")),
                 headers={"authorization": f"Bearer {token}",
                          "content-type": "application/json"})
    r = conn.getresponse()
    assert r.status == 403, (r.status, r.read())
    conn.close()
    assert stack.upstream_requests() == []


# WebSocket handshakes whose `?model=` is allowed but does not bind what the session spends.
REFUSED_HANDSHAKES = [
    # OpenAI's Responses WebSocket mode names the model in each `response.create` message.
    "/v1/responses?model=gpt-5",
    # The same name twice under two spellings: a server may read either.
    "/v1/realtime?model=gpt-realtime&%6Dodel=gpt-4o-realtime-preview",
    "/v1/realtime?model=gpt-4o-realtime-preview",
]


@pytest.mark.parametrize("path", REFUSED_HANDSHAKES)
def test_a_websocket_session_is_refused_unless_its_handshake_binds_an_allowed_model(stack, path):
    token = limited(stack)
    headers = {"connection": "Upgrade", "upgrade": "websocket", "sec-websocket-version": "13",
               "sec-websocket-key": base64.b64encode(os.urandom(16)).decode(),
               "authorization": f"Bearer {token}"}
    r = requests.get(f"{stack.url}{path}", headers=headers, timeout=10)
    assert r.status_code == 403, (r.status_code, r.text)
    assert stack.upstream_requests() == []



def test_an_upgrade_header_on_a_post_does_not_make_its_query_the_model(stack):
    """A POST that says `upgrade: websocket` is read as a handshake: its `?model=` must not
    stand for the model its body names."""
    token = limited(stack)
    r = requests.post(f"{stack.url}/v1/chat/completions?model=gpt-5", json=chat("gpt-4o"),
                      timeout=20, headers={"authorization": f"Bearer {token}",
                                           "upgrade": "websocket"})
    assert r.status_code == 403, (r.status_code, r.text)
    assert stack.upstream_requests() == []


def _hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out, value = bytearray([first | limit]), value - limit
    while value >= 128:
        out.append((value % 128) | 128)
        value //= 128
    out.append(value)
    return bytes(out)


def _hpack(headers: list[tuple[str, str]]) -> bytes:
    """Literal fields without indexing, new names, no Huffman: the plainest HPACK."""
    out = bytearray()
    for name, value in headers:
        out += b"\x00" + _hpack_int(len(name), 7) + name.encode()
        out += _hpack_int(len(value), 7) + value.encode()
    return bytes(out)


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + \
        struct.pack(">I", stream) + payload


def h2_post_with_trailers(url: str, path: str, headers: list[tuple[str, str]],
                          body: bytes) -> bytes:
    """An HTTP/2 (prior knowledge) POST whose body is followed by trailers, so the body's
    last DATA frame does not end the stream; returns the response's DATA bytes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = [(":method", "POST"), (":scheme", "http"), (":path", path),
                (":authority", f"{host}:{port}")] + headers
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(4, 0, 0, b"")
                     + _frame(1, 0x4, 1, _hpack(head)) + _frame(0, 0, 1, body)
                     + _frame(1, 0x5, 1, _hpack([("x-trailer", "1")])))
        data, buf = bytearray(), b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return bytes(data)
            buf += chunk
            while len(buf) >= 9:
                size = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + size:
                    break
                kind, flags = buf[3], buf[4]
                stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                payload, buf = buf[9:9 + size], buf[9 + size:]
                if kind == 4 and not flags & 1:
                    sock.sendall(_frame(4, 1, 0, b""))
                if stream == 1 and kind == 0:
                    data += payload
                if kind == 7 or (stream == 1 and (kind == 3 or (kind in (0, 1)
                                                                and flags & 1))):
                    return bytes(data)


def test_a_body_followed_by_trailers_is_still_checked(stack):
    """HTTP/2 request trailers: the body's last DATA frame does not end the stream, the
    trailers do. A filter waiting for the body's end would let it go on at the trailers."""
    token = limited(stack)
    headers = [("authorization", f"Bearer {token}"), ("content-type", "application/json")]
    refused = h2_post_with_trailers(stack.url, "/v1/chat/completions", headers,
                                    json.dumps(chat("gpt-4o")).encode())
    assert b"model_not_allowed" in refused, refused
    assert stack.upstream_requests() == []
    allowed = h2_post_with_trailers(stack.url, "/v1/chat/completions", headers,
                                    json.dumps(chat("gpt-5")).encode())
    assert b"model_not_allowed" not in allowed, allowed
    [seen] = stack.upstream_requests()
    assert json.loads(seen["body"])["model"] == "gpt-5"



def test_a_metered_stream_followed_by_trailers_reaches_the_provider_whole(stack):
    """Metering holds a streamed Chat Completions body to ask for its usage; trailers end it
    after its last DATA frame (which does not say so), and arrive, with the body, while ptk
    holds the headers for its check (a token not cached yet). Held on to the trailers, Envoy
    lost the body; whole at its `content-length`, it is asked and goes on."""
    token = stack.mint()["token"]
    sent = json.dumps({**chat("gpt-4o"), "stream": True}).encode()
    headers = [("authorization", f"Bearer {token}"), ("content-type", "application/json"),
               ("content-length", str(len(sent)))]
    h2_post_with_trailers(stack.url, "/v1/chat/completions", headers, sent)
    [seen] = stack.upstream_requests()
    asked = {**json.loads(sent), "stream_options": {"include_usage": True}}
    assert json.loads(seen["body"]) == asked
