"""Self-tests for the mock upstream. Run from the repo root:

    .venv/bin/python -m pytest tests/mock_upstream -q
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import requests
import yarl

from .server import MockUpstreamServer, classify, start_in_thread

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mock():
    srv = MockUpstreamServer(port=0)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _reset(mock):
    requests.post(mock.base_url + "/__mock/reset", timeout=5).raise_for_status()
    yield


def recorded(mock):
    r = requests.get(mock.base_url + "/__mock/requests", timeout=5)
    r.raise_for_status()
    return r.json()


def parse_sse(raw: bytes) -> list[tuple[str | None, str]]:
    events = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        event, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        events.append((event, "\n".join(data)))
    return events


def post_stream(mock, path, body, **kw):
    r = requests.post(mock.base_url + path, json=body, timeout=10, **kw)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    return parse_sse(r.content)


# --------------------------------------------------------------------------- control + recording


def test_health_and_control_not_recorded(mock):
    assert requests.get(mock.base_url + "/__mock/health", timeout=5).status_code == 200
    assert requests.get(mock.base_url + "/__mock/nope", timeout=5).status_code == 404
    assert recorded(mock) == []


def test_start_in_thread_returns_bound_port():
    port = start_in_thread(port=0)
    assert port > 0
    assert requests.get(f"http://127.0.0.1:{port}/__mock/health", timeout=5).status_code == 200


def test_records_raw_path_duplicate_headers_and_body(mock):
    target = "/v1beta/models/gemini-x:generateContent?key=a%2Fb&foo=bar%20baz&x=1&x=2&plus=a+b&e=&tilde=%7e"
    conn = http.client.HTTPConnection("127.0.0.1", mock.port, timeout=5)
    body = b'{"contents":[{"parts":[{"text":"hello \xc3\xa9"}]}]}'
    conn.putrequest("POST", target, skip_accept_encoding=True)
    conn.putheader("X-Goog-Api-Key", "real-key")
    conn.putheader("X-Dup", "one")
    conn.putheader("X-Dup", "two")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    resp = conn.getresponse()
    assert resp.status == 200
    resp.read()
    conn.close()

    [rec] = recorded(mock)
    assert rec["kind"] == "http"
    assert rec["method"] == "POST"
    assert rec["path"] == target
    assert ["x-dup", "one"] in rec["headers"] and ["x-dup", "two"] in rec["headers"]
    assert [v for k, v in rec["headers"] if k == "x-dup"] == ["one", "two"]
    assert ["x-goog-api-key", "real-key"] in rec["headers"]
    assert rec["body"] == body.decode()
    assert rec["body_base64"] is False
    assert abs(rec["time"] - time.time()) < 30
    assert rec["seq"] >= 1


def test_odd_raw_path_preserved(mock):
    target = "//double//slash/%7E/a%2Fb?q=%2f&q=&&z"
    conn = http.client.HTTPConnection("127.0.0.1", mock.port, timeout=5)
    conn.request("GET", target)
    conn.getresponse().read()
    conn.close()
    assert recorded(mock)[0]["path"] == target


def test_binary_body_is_base64(mock):
    payload = bytes(range(256))
    requests.post(mock.base_url + "/v1/files", data=payload, timeout=5)
    [rec] = recorded(mock)
    assert rec["body_base64"] is True
    assert base64.b64decode(rec["body"]) == payload


def test_reset_and_last(mock):
    requests.get(mock.base_url + "/v1/models", timeout=5)
    requests.get(mock.base_url + "/v1/models?b=1", timeout=5)
    assert [r["path"] for r in recorded(mock)] == ["/v1/models", "/v1/models?b=1"]
    assert requests.get(mock.base_url + "/__mock/last", timeout=5).json()["path"] == "/v1/models?b=1"
    assert mock.requests()[-1]["path"] == "/v1/models?b=1"
    assert requests.post(mock.base_url + "/__mock/reset", timeout=5).status_code == 200
    assert recorded(mock) == []
    assert requests.get(mock.base_url + "/__mock/last", timeout=5).json() is None


# --------------------------------------------------------------------------- classification + shapes


@pytest.mark.parametrize(
    "path,method,expected",
    [
        ("/v1/chat/completions", "POST", ("openai", "chat")),
        ("/v1beta/openai/chat/completions", "POST", ("openai", "chat")),
        ("/v1beta/openai/embeddings", "POST", ("openai", "embeddings")),
        ("/v1/responses", "POST", ("openai", "responses")),
        ("/v1/embeddings", "POST", ("openai", "embeddings")),
        ("/v1/models", "GET", ("openai", "models")),
        ("/v1/messages", "POST", ("anthropic", "messages")),
        ("/v1/messages/count_tokens", "POST", ("anthropic", "count_tokens")),
        ("/v1beta/models/gemini-2.5-flash:generateContent", "POST", ("gemini", "generate")),
        ("/v1beta/models/gemini-2.5-flash:streamGenerateContent", "POST", ("gemini", "generate")),
        ("/v1/models/gemini-2.5-flash:generateContent", "POST", ("gemini", "generate")),
        ("/v1alpha/models/gemini-2.5-flash:generateContent", "POST", ("gemini", "generate")),
        ("/v1beta/models/text-embedding-004:embedContent", "POST", ("gemini", "embed")),
        ("/v1beta/models/text-embedding-004:batchEmbedContents", "POST", ("gemini", "batch_embed")),
        ("/v1beta/models", "GET", ("gemini", "models")),
        ("/anything/else", "POST", ("openai", "chat")),
    ],
)
def test_classify(path, method, expected):
    assert classify(path, method, {}) == expected


def test_openai_chat_shape(mock):
    r = requests.post(mock.base_url + "/v1/chat/completions", json={"model": "gpt-test", "messages": []}, timeout=5)
    d = r.json()
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert d["object"] == "chat.completion" and d["id"].startswith("chatcmpl-")
    assert d["model"] == "gpt-test"
    choice = d["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "hi", "refusal": None, "annotations": []}
    assert choice["finish_reason"] == "stop" and choice["index"] == 0
    assert d["usage"]["total_tokens"] == d["usage"]["prompt_tokens"] + d["usage"]["completion_tokens"]


def test_gemini_openai_compat_is_openai_shape(mock):
    d = requests.post(mock.base_url + "/v1beta/openai/chat/completions", json={"model": "gemini-2.5-flash"},
                      timeout=5).json()
    assert d["object"] == "chat.completion" and d["model"] == "gemini-2.5-flash"


def test_get_without_body_falls_back_to_chat_shape(mock):
    d = requests.get(mock.base_url + "/v1/chat/completions", timeout=5).json()
    assert d["object"] == "chat.completion" and d["model"] == "gpt-4o-mini"


def test_responses_shape(mock):
    d = requests.post(mock.base_url + "/v1/responses", json={"model": "gpt-4.1", "input": "x"}, timeout=5).json()
    assert d["object"] == "response" and d["status"] == "completed" and d["id"].startswith("resp_")
    assert d["model"] == "gpt-4.1"
    item = d["output"][0]
    assert item["type"] == "message" and item["role"] == "assistant" and item["status"] == "completed"
    assert item["content"][0] == {"type": "output_text", "text": "hi", "annotations": [], "logprobs": []}
    assert d["usage"]["total_tokens"] == d["usage"]["input_tokens"] + d["usage"]["output_tokens"]


def test_embeddings_float_and_base64(mock):
    d = requests.post(mock.base_url + "/v1/embeddings",
                      json={"model": "text-embedding-3-small", "input": ["a", "b"]}, timeout=5).json()
    assert d["object"] == "list" and d["model"] == "text-embedding-3-small"
    assert [e["index"] for e in d["data"]] == [0, 1]
    assert all(e["object"] == "embedding" and len(e["embedding"]) == 8 for e in d["data"])
    d64 = requests.post(mock.base_url + "/v1/embeddings",
                        json={"input": "a", "encoding_format": "base64", "dimensions": 4}, timeout=5).json()
    raw = base64.b64decode(d64["data"][0]["embedding"])
    assert len(struct.unpack("<4f", raw)) == 4


def test_openai_models_list(mock):
    d = requests.get(mock.base_url + "/v1/models", timeout=5).json()
    assert d["object"] == "list" and all(m["object"] == "model" for m in d["data"])
    d = requests.get(mock.base_url + "/v1/models", headers={"anthropic-version": "2023-06-01"}, timeout=5).json()
    assert d["data"][0]["type"] == "model" and d["has_more"] is False


def test_anthropic_shape(mock):
    r = requests.post(mock.base_url + "/v1/messages",
                      json={"model": "claude-x", "max_tokens": 5, "messages": []}, timeout=5)
    d = r.json()
    assert d["type"] == "message" and d["role"] == "assistant" and d["id"].startswith("msg_")
    assert d["model"] == "claude-x"
    assert d["content"] == [{"type": "text", "text": "hi"}]
    assert d["stop_reason"] == "end_turn" and d["stop_sequence"] is None
    assert d["usage"]["input_tokens"] > 0 and d["usage"]["output_tokens"] > 0
    assert "request-id" in r.headers
    c = requests.post(mock.base_url + "/v1/messages/count_tokens", json={"model": "claude-x"}, timeout=5).json()
    assert c == {"input_tokens": 5}


@pytest.mark.parametrize(
    "path",
    [
        "/v1beta/models/gemini-2.5-flash:generateContent",
        "/v1/models/gemini-2.5-flash:generateContent",
        "/v1alpha/models/gemini-2.5-flash:generateContent",
    ],
)
def test_gemini_shape(mock, path):
    d = requests.post(mock.base_url + path, json={"contents": []}, timeout=5).json()
    cand = d["candidates"][0]
    assert cand["content"] == {"parts": [{"text": "hi"}], "role": "model"}
    assert cand["finishReason"] == "STOP"
    u = d["usageMetadata"]
    assert u["totalTokenCount"] == (u["promptTokenCount"] + u["candidatesTokenCount"]
                                    + u["thoughtsTokenCount"])
    assert d["modelVersion"] == "gemini-2.5-flash"


def test_gemini_aux_endpoints(mock):
    base = mock.base_url + "/v1beta/models"
    assert len(requests.post(base + "/e:embedContent", json={}, timeout=5).json()["embedding"]["values"]) == 8
    b = requests.post(base + "/e:batchEmbedContents", json={"requests": [{}, {}, {}]}, timeout=5).json()
    assert len(b["embeddings"]) == 3
    assert requests.post(base + "/g:countTokens", json={}, timeout=5).json()["totalTokens"] == 5
    assert requests.get(base, timeout=5).json()["models"][0]["name"].startswith("models/")
    assert requests.get(base + "/gemini-2.5-pro", timeout=5).json()["name"] == "models/gemini-2.5-pro"


# --------------------------------------------------------------------------- structured output / forced tools


PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "tags": {"type": "array",
                                                                                   "items": {"$ref": "#/$defs/T"}}},
    "required": ["name", "age"],
    "$defs": {"T": {"enum": ["a", "b"]}},
}


def test_forced_tool_calls_per_provider(mock):
    u = mock.base_url
    d = requests.post(u + "/v1/chat/completions", json={
        "model": "m", "tools": [{"type": "function", "function": {"name": "Person", "parameters": PERSON}}],
        "tool_choice": {"type": "function", "function": {"name": "Person"}}}, timeout=5).json()
    call = d["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "Person"
    assert json.loads(call["function"]["arguments"]) == {"name": "hi", "age": 1, "tags": ["a"]}

    d = requests.post(u + "/v1/messages", json={
        "model": "m", "tools": [{"name": "Person", "input_schema": PERSON}],
        "tool_choice": {"type": "any"}}, timeout=5).json()
    assert d["stop_reason"] == "tool_use" and d["content"][0]["input"]["name"] == "hi"

    d = requests.post(u + "/v1beta/models/g:generateContent", json={
        "tools": [{"functionDeclarations": [{"name": "Person", "parameters": PERSON}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}}, timeout=5).json()
    assert d["candidates"][0]["content"]["parts"][0]["functionCall"]["args"]["age"] == 1

    d = requests.post(u + "/v1/responses", json={
        "model": "m", "tools": [{"type": "function", "name": "Person", "parameters": PERSON}],
        "tool_choice": "required"}, timeout=5).json()
    assert d["output"][0]["type"] == "function_call" and json.loads(d["output"][0]["arguments"])["name"] == "hi"

    # unforced tools -> plain text
    d = requests.post(u + "/v1/chat/completions", json={
        "tools": [{"type": "function", "function": {"name": "Person", "parameters": PERSON}}]}, timeout=5).json()
    assert d["choices"][0]["message"]["content"] == "hi"


def test_json_schema_structured_output(mock):
    u = mock.base_url
    d = requests.post(u + "/v1/chat/completions", json={
        "response_format": {"type": "json_schema", "json_schema": {"name": "P", "schema": PERSON}}}, timeout=5).json()
    assert json.loads(d["choices"][0]["message"]["content"])["name"] == "hi"
    d = requests.post(u + "/v1beta/models/g:generateContent", json={
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": {
            "type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}}}}, timeout=5).json()
    assert json.loads(d["candidates"][0]["content"]["parts"][0]["text"]) == {"n": 1}


# --------------------------------------------------------------------------- SSE


def test_openai_chat_stream(mock):
    evs = post_stream(mock, "/v1/chat/completions",
                      {"model": "gpt-s", "stream": True, "stream_options": {"include_usage": True}})
    assert evs[-1] == (None, "[DONE]")
    chunks = [json.loads(d) for _, d in evs[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "gpt-s" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "hi"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 9  # 5 in, 1 + 3 reasoning out


def test_openai_chat_stream_tool_call(mock):
    evs = post_stream(mock, "/v1/chat/completions", {
        "stream": True, "tool_choice": "required",
        "tools": [{"type": "function", "function": {"name": "final_result", "parameters": PERSON}}]})
    chunks = [json.loads(d) for _, d in evs[:-1]]
    args = "".join(tc["function"].get("arguments", "") for c in chunks
                   for tc in c["choices"][0]["delta"].get("tool_calls", []))
    assert json.loads(args)["name"] == "hi"
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_gemini_openai_compat_stream(mock):
    evs = post_stream(mock, "/v1beta/openai/chat/completions", {"model": "gemini-2.5-flash", "stream": True})
    assert evs[-1] == (None, "[DONE]")
    assert json.loads(evs[0][1])["object"] == "chat.completion.chunk"


def test_responses_stream(mock):
    evs = post_stream(mock, "/v1/responses", {"model": "gpt-r", "stream": True, "input": "x"})
    names = [e for e, _ in evs]
    assert names[0] == "response.created" and names[-1] == "response.completed"
    assert "response.output_text.delta" in names and "response.output_item.done" in names
    datas = [json.loads(d) for _, d in evs]
    assert [d["type"] for d in datas] == names
    assert [d["sequence_number"] for d in datas] == list(range(len(datas)))
    assert "".join(d["delta"] for d in datas if d["type"] == "response.output_text.delta") == "hi"
    final = datas[-1]["response"]
    assert final["status"] == "completed" and final["model"] == "gpt-r"
    assert final["output"][0]["content"][0]["text"] == "hi"


def test_anthropic_stream(mock):
    evs = post_stream(mock, "/v1/messages", {"model": "claude-s", "stream": True, "max_tokens": 5})
    names = [e for e, _ in evs]
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta", "content_block_stop",
                     "message_delta", "message_stop"]
    datas = [json.loads(d) for _, d in evs]
    assert [d["type"] for d in datas] == names
    assert datas[0]["message"]["model"] == "claude-s" and datas[0]["message"]["type"] == "message"
    assert datas[3]["delta"] == {"type": "text_delta", "text": "hi"}
    assert datas[5]["delta"]["stop_reason"] == "end_turn"


@pytest.mark.parametrize(
    "path,body",
    [
        ("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", {}),
        ("/v1beta/models/gemini-2.5-flash:streamGenerateContent", {}),
        ("/v1beta/models/gemini-2.5-flash:generateContent?alt=sse", {}),
    ],
)
def test_gemini_stream(mock, path, body):
    evs = post_stream(mock, path, body)
    assert all(e is None for e, _ in evs)
    datas = [json.loads(d) for _, d in evs]
    text = "".join(p.get("text", "") for d in datas for p in d["candidates"][0]["content"]["parts"])
    assert text == "hi"
    assert datas[-1]["candidates"][0]["finishReason"] == "STOP"
    assert "usageMetadata" in datas[-1]


def test_hold_and_release(mock):
    async def run():
        async with aiohttp.ClientSession() as s:
            async with s.post(mock.base_url + "/v1/messages", json={"stream": True},
                              headers={"x-mock-hold": "1"}) as r:
                assert r.status == 200
                first = await asyncio.wait_for(r.content.readuntil(b"\n\n"), 5)
                assert b"event: message_start" in first
                rest_task = asyncio.create_task(r.content.read())
                await asyncio.sleep(0.5)
                assert not rest_task.done(), "stream was not held"
                async with s.post(mock.base_url + "/__mock/release") as rel:
                    assert (await rel.json())["released"] == 1
                rest = await asyncio.wait_for(rest_task, 5)
                names = [e for e, _ in parse_sse(rest)]
                assert names[-1] == "message_stop" and "message_start" not in names

    asyncio.run(asyncio.wait_for(run(), 15))
    assert requests.post(mock.base_url + "/__mock/release", timeout=5).json()["released"] == 0


def test_hold_and_release_a_json_response(mock):
    async def run():
        async with aiohttp.ClientSession() as s:
            call = asyncio.create_task(s.post(mock.base_url + "/v1/chat/completions",
                                              json={"model": "m"}, headers={"x-mock-hold": "1"}))
            await asyncio.sleep(0.5)
            assert not call.done(), "response was not held"
            assert len(mock.requests()) == 1, "a held request is recorded on arrival"
            async with s.post(mock.base_url + "/__mock/release") as rel:
                assert (await rel.json())["released"] == 1
            async with await asyncio.wait_for(call, 5) as r:
                assert r.status == 200
                assert (await r.json())["object"] == "chat.completion"

    asyncio.run(asyncio.wait_for(run(), 15))


# --------------------------------------------------------------------------- status override


def test_status_override_provider_shaped(mock):
    u = mock.base_url
    r = requests.post(u + "/v1/chat/completions", json={"stream": True}, headers={"x-mock-status": "503"}, timeout=5)
    assert r.status_code == 503 and r.json()["error"]["type"] == "server_error"
    r = requests.post(u + "/v1/messages", json={}, headers={"x-mock-status": "529"}, timeout=5)
    assert r.status_code == 529 and r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "overloaded_error"
    r = requests.post(u + "/v1beta/models/g:generateContent", json={}, headers={"x-mock-status": "429"}, timeout=5)
    assert r.status_code == 429 and r.json()["error"] == {
        "code": 429, "message": "mock upstream forced status 429", "status": "RESOURCE_EXHAUSTED"}
    assert len(recorded(mock)) == 3  # overridden requests are still recorded


# --------------------------------------------------------------------------- websocket


def ws_url(mock, path):
    # encoded=True: send the target exactly as written (yarl would normalise it)
    return yarl.URL("ws" + mock.base_url[len("http"):] + path, encoded=True)


def test_websocket_echo_and_handshake_recorded(mock):
    async def run():
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(ws_url(mock, "/v1/responses?model=gpt&x=%2F"),
                                    headers={"Authorization": "Bearer real", "X-Dup": "1"}) as ws:
                await ws.send_str("héllo")
                msg = await ws.receive(timeout=5)
                assert msg.type == aiohttp.WSMsgType.TEXT and msg.data == "héllo"
                blob = bytes(range(256)) * 3
                await ws.send_bytes(blob)
                msg = await ws.receive(timeout=5)
                assert msg.type == aiohttp.WSMsgType.BINARY and msg.data == blob
                await ws.send_bytes(b"")
                msg = await ws.receive(timeout=5)
                assert msg.type == aiohttp.WSMsgType.BINARY and msg.data == b""

    asyncio.run(asyncio.wait_for(run(), 10))
    [rec] = recorded(mock)
    assert rec["kind"] == "websocket" and rec["method"] == "GET"
    assert rec["path"] == "/v1/responses?model=gpt&x=%2F"
    assert ["authorization", "Bearer real"] in rec["headers"]
    assert any(k == "sec-websocket-key" for k, _ in rec["headers"])


def test_websocket_gemini_live_setup_is_answered_with_setup_complete(mock):
    path = "//ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"

    async def run():
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(ws_url(mock, path)) as ws:
                await ws.send_str('{"setup":{"model":"models/gemini-live"}}')
                assert json.loads((await ws.receive(timeout=5)).data) == {"setupComplete": {}}
                await ws.send_str('{"clientContent":{"turnComplete":true}}')  # the rest is echoed
                assert (await ws.receive(timeout=5)).data == '{"clientContent":{"turnComplete":true}}'
            async with s.ws_connect(ws_url(mock, "/v1/realtime")) as ws:  # not Live: echoed
                await ws.send_str('{"setup":{}}')
                assert (await ws.receive(timeout=5)).data == '{"setup":{}}'

    asyncio.run(asyncio.wait_for(run(), 10))


def test_websocket_usage_per_response_when_asked(mock):
    """`x-mock-ws-usage: IN,OUT`: each request for a response gets one with that usage."""
    live = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    usage = {"x-mock-ws-usage": "30,12"}

    async def run():
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(ws_url(mock, "/v1/realtime"), headers=usage) as ws:
                await ws.send_str('{"type":"input_audio_buffer.append","audio":""}')  # echoed
                assert json.loads((await ws.receive(timeout=5)).data)["type"].startswith("input")
                await ws.send_str('{"type":"response.create"}')
                created = json.loads((await ws.receive(timeout=5)).data)
                done = json.loads((await ws.receive(timeout=5)).data)
                assert (created["type"], done["type"]) == ("response.created", "response.done")
                assert done["response"]["usage"]["input_tokens"] == 30
                assert done["response"]["usage"]["output_tokens"] == 12
            async with s.ws_connect(ws_url(mock, "/v1/responses"), headers=usage) as ws:
                await ws.send_str('{"type":"response.create"}')
                await ws.receive(timeout=5)
                done = json.loads((await ws.receive(timeout=5)).data)
                assert done["type"] == "response.completed"
            async with s.ws_connect(ws_url(mock, live), headers=usage) as ws:
                await ws.send_str('{"clientContent":{"turnComplete":true}}')
                assert "modelTurn" in json.loads((await ws.receive(timeout=5)).data)["serverContent"]
                end = json.loads((await ws.receive(timeout=5)).data)
                assert end["serverContent"]["turnComplete"] is True
                assert end["usageMetadata"]["totalTokenCount"] == 42

    asyncio.run(asyncio.wait_for(run(), 10))


def test_websocket_client_close_code_and_reason_echoed(mock):
    async def run():
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(ws_url(mock, "/ws"), autoclose=False)
            await ws.send_frame(struct.pack("!H", 4101) + b"cya later", aiohttp.WSMsgType.CLOSE)
            msg = await ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert (msg.data, msg.extra) == (4101, "cya later")
            await ws.close()

    asyncio.run(asyncio.wait_for(run(), 10))


def test_websocket_server_close_control(mock):
    async def run():
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(ws_url(mock, "/ws"), autoclose=False)
            await ws.send_str("__close:4102:bye: now")
            msg = await ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert (msg.data, msg.extra) == (4102, "bye: now")
            await ws.close()

    asyncio.run(asyncio.wait_for(run(), 10))


@pytest.mark.parametrize(
    "offered,expected",
    [
        (("openai-insecure-api-key.sk-proxy", "openai-beta.realtime-v1", "realtime"), "realtime"),
        (("openai-insecure-api-key.sk-proxy", "foo", "bar"), "foo"),
        (("openai-insecure-api-key.sk-proxy",), None),
        ((), None),
    ],
)
def test_websocket_subprotocol_selection(mock, offered, expected):
    async def run():
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(ws_url(mock, "/v1/realtime"), protocols=offered) as ws:
                assert ws.protocol == expected

    asyncio.run(asyncio.wait_for(run(), 10))


@pytest.mark.parametrize("how", ["header", "query"])
def test_websocket_refusal(mock, how):
    path = "/ws?mock_status=401" if how == "query" else "/ws"
    headers = {"x-mock-status": "401"} if how == "header" else {}

    async def run():
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.WSServerHandshakeError) as ei:
                await s.ws_connect(ws_url(mock, path), headers=headers)
            assert ei.value.status == 401
            raw = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", **headers}
            async with s.get(mock.base_url + path, headers=raw) as r:
                assert r.status == 401
                assert "error" in await r.json()

    asyncio.run(asyncio.wait_for(run(), 10))
    recs = recorded(mock)
    assert len(recs) == 2 and all(r["kind"] == "websocket" and r["path"] == path for r in recs)


# --------------------------------------------------------------------------- CLI


def test_cli_subprocess_ready_line_and_no_secret_logging():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.mock_upstream", "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("mock-upstream listening on 127.0.0.1:"), line
        port = int(line.strip().rsplit(":", 1)[1])
        base = f"http://127.0.0.1:{port}"
        secret = "SECRET-sk-do-not-log"
        r = requests.post(f"{base}/v1beta/models/g:generateContent?key={secret}",
                          headers={"x-goog-api-key": secret}, json={"p": secret}, timeout=5)
        assert r.status_code == 200
        assert secret in requests.get(base + "/__mock/requests", timeout=5).text
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert secret not in out and secret not in err
    assert "generateContent" not in out + err
    assert "POST 200" in err


# --- provider headers, key errors, fixed bodies, cached contents (issue 10, items 11 and 14) ---

OPENAI_KEY = "sk-proj-N3v8Qk2LmZr7Tx9WbYc4Hd6Fg1Js5Ap0UeKiOoPqRsTuVwXyZ1INEL"


def test_provider_rate_limit_headers_and_anthropic_expose_all(mock):
    r = requests.post(mock.base_url + "/v1/chat/completions", json={"model": "m", "messages": []})
    assert r.headers["x-ratelimit-remaining-requests"] == "4999"
    assert r.headers["x-request-id"].startswith("req_")
    assert "access-control-expose-headers" not in r.headers
    r = requests.post(mock.base_url + "/v1/messages", json={"model": "m", "messages": []})
    assert r.headers["anthropic-ratelimit-requests-remaining"] == "3999"
    assert r.headers["access-control-expose-headers"] == "*"
    r = requests.post(mock.base_url + "/v1beta/models/g:generateContent", json={})
    assert not [h for h in r.headers if h.lower().startswith(("x-ratelimit", "anthropic-"))]


def test_extra_response_headers(mock):
    r = requests.post(mock.base_url + "/v1/chat/completions", json={},
                      headers={"x-mock-status": "429",
                               "x-mock-headers": json.dumps({"retry-after": "7"})})
    assert (r.status_code, r.headers["retry-after"]) == (429, "7")
    twice = json.dumps([["x-a", "1"], ["x-a", "2"]])
    conn = http.client.HTTPConnection("127.0.0.1", mock.port, timeout=5)
    conn.request("GET", "/v1/models", headers={"x-mock-headers": twice})
    assert conn.getresponse().headers.get_all("x-a") == ["1", "2"]


def test_invalid_key_errors_quote_what_each_provider_quotes(mock):
    r = requests.post(mock.base_url + "/v1/chat/completions", json={},
                      headers={"authorization": f"Bearer {OPENAI_KEY}", "x-mock-error": "invalid_key"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    message = r.json()["error"]["message"]
    assert message.startswith("Incorrect API key provided: sk-proj-****")
    assert OPENAI_KEY[-4:] in message and OPENAI_KEY[8:-4] not in message
    r = requests.post(mock.base_url + "/v1/messages", json={},
                      headers={"x-api-key": "k", "x-mock-error": "invalid_key"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = requests.post(mock.base_url + "/v1beta/models/g:generateContent?mock_error=invalid_key",
                      json={}, headers={"x-goog-api-key": "AIzaBAD"})
    assert r.status_code == 400
    assert r.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"


def test_quoted_key_errors(mock):
    for mode, shown in (("quote_key", "sk-proj-****"), ("quote_key_full", OPENAI_KEY)):
        r = requests.post(mock.base_url + "/v1/chat/completions", json={},
                          headers={"authorization": f"Bearer {OPENAI_KEY}", "x-mock-error": mode,
                                   "x-mock-status": "500"})
        assert r.status_code == 500 and shown in r.json()["error"]["message"]
    r = requests.post(mock.base_url + "/v1/chat/completions", json={},
                      headers={"authorization": f"Bearer {OPENAI_KEY}", "x-mock-error": "quote_key"})
    assert r.status_code == 429


def test_websocket_handshake_key_errors(mock):
    base = {"connection": "Upgrade", "upgrade": "websocket", "sec-websocket-version": "13",
            "sec-websocket-key": base64.b64encode(b"0123456789abcdef").decode()}
    r = requests.get(mock.base_url + "/v1/realtime",
                     headers={**base, "authorization": f"Bearer {OPENAI_KEY}",
                              "x-mock-error": "invalid_key"}, timeout=5)
    assert r.status_code == 401 and OPENAI_KEY[-4:] in r.text
    live = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    r = requests.get(mock.base_url + live, headers={**base, "x-goog-api-key": "AIzaBAD",
                                                    "x-mock-error": "invalid_key"}, timeout=5)
    assert r.status_code == 400 and "API_KEY_INVALID" in r.text


def test_fixed_body(mock):
    body = bytes(range(256))
    r = requests.post(mock.base_url + "/v1/chat/completions", json={},
                      headers={"x-mock-body": base64.b64encode(body).decode(), "x-mock-status": "418",
                               "x-mock-content-type": "application/octet-stream"})
    assert (r.status_code, r.content) == (418, body)
    assert r.headers["content-type"] == "application/octet-stream"
    assert requests.post(mock.base_url + "/v1/chat/completions", json={},
                         headers={"x-mock-body": "%%%"}).status_code == 400


def test_gemini_cached_contents(mock):
    r = requests.patch(mock.base_url + "/v1beta/cachedContents/c1?updateMask=ttl", json={"ttl": "60s"})
    assert r.status_code == 200 and r.json()["name"] == "cachedContents/c1"
    assert classify("/v1beta/cachedContents/c1", "GET", {}) == ("gemini", "cached_content")


def test_websocket_invalid_key_event_then_close_3000(mock):
    async def run():
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(mock.base_url + "/v1/realtime",
                                    headers={"authorization": f"Bearer {OPENAI_KEY}",
                                             "x-mock-error": "invalid_key_event"}) as ws:
                event = await ws.receive(timeout=5)
                closing = await ws.receive(timeout=5)
                return event.data, ws.close_code, closing.extra
    data, code, reason = asyncio.run(run())
    assert json.loads(data)["error"]["code"] == "invalid_api_key" and OPENAI_KEY[-4:] in data
    assert (code, reason) == (3000, "invalid_request_error.invalid_api_key")
