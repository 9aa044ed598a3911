"""OpenAI's geo-403 egress fallback through the real Envoy (`providers.openai.geo_fallback`).

The direct OpenAI route leads to the shared mock, which answers `x-mock-geo: block` with
OpenAI's geo-block 403; the fallback cluster leads to a second mock playing an egress in a
supported region, which answers normally. The client gets the egress's answer; the real key
goes only to those two; any other 403, any other provider, a body past the bound and a stack
without the setting get exactly one upstream call and no replay.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import requests
import yaml

from tests.mock_upstream.server import MockUpstreamServer

from .connect_proxy import ConnectProxy
from .test_uploads import leg, start
from .test_websocket import raw_handshake, round_trip, ws_url
from .harness import REAL_KEYS, Stack
from .tls_peer import TestPki, TlsPeer

BOUND = 4096
GEO = {"x-mock-geo": "block"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def egress():
    srv = MockUpstreamServer()
    srv.state.region_supported = True
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def stack(egress):
    fallback = {"cluster": "openai_egress", "max_request_body_bytes": BOUND}
    s = Stack(
        plugin_config={"providers": {"openai": {"geo_fallback": fallback}}},
        render_extra=lambda _: ["--geo-fallback-egress", f"http://127.0.0.1:{egress.port}"],
    ).start()
    try:
        yield s
    finally:
        s.stop()
        s.cleanup()


@pytest.fixture(autouse=True)
def _clean_egress(egress):
    egress.reset()
    yield


def stat(s: Stack, name: str, at_least: int) -> int:
    """The filter's counter `ptk.<name>`, waited for up to 5 s (counters flush on the tick)."""
    value, deadline = 0, time.monotonic() + 5
    while time.monotonic() < deadline:
        text = requests.get(f"http://127.0.0.1:{s.admin_port}/stats?filter=ptk.{name}",
                            timeout=5).text
        values = dict(line.partition(": ")[::2] for line in text.splitlines())
        value = int(values.get(f"wasmcustom.ptk.{name}", 0))
        if value >= at_least:
            break
        time.sleep(0.2)
    return value


def chat(s: Stack, token: str, headers: dict | None = None, body: dict | None = None):
    return requests.post(
        f"{s.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {token}", **(headers or {})},
        data=json.dumps(body or CHAT),
        timeout=30,
    )


def header(record: dict, name: str) -> list[str]:
    return [v for n, v in record["headers"] if n == name]


def test_a_geo_403_is_replayed_once_through_the_egress(stack, egress):
    token = stack.mint()["token"]
    metered = stat(stack, "usage.output_tokens", 0)
    resp = chat(stack, token, GEO)
    assert resp.status_code == 200, resp.text
    assert resp.json()["object"] == "chat.completion"
    direct, replayed = stack.upstream_requests(), egress.requests()
    assert (len(direct), len(replayed)) == (1, 1)
    key = f"Bearer {REAL_KEYS['OPENAI_API_KEY']}"
    for record in (direct[0], replayed[0]):
        assert header(record, "authorization") == [key]
        assert record["path"] == "/v1/chat/completions"
        assert json.loads(record["body"]) == CHAT
        assert token not in json.dumps(record)
    assert header(replayed[0], "host") == ["api.openai.com"]
    assert REAL_KEYS["OPENAI_API_KEY"] not in resp.text + json.dumps(dict(resp.headers))
    assert stat(stack, "geo_fallback.replayed", 1) >= 1
    # The replay's usage is metered like any answer's.
    output = resp.json()["usage"]["completion_tokens"]
    assert stat(stack, "usage.output_tokens", metered + output) == metered + output


def test_a_streamed_call_through_the_egress_arrives_whole(stack, egress):
    resp = chat(stack, stack.mint()["token"], GEO, {**CHAT, "stream": True})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.text.rstrip().endswith("data: [DONE]")
    assert len(egress.requests()) == 1


def test_a_non_geo_403_passes_with_one_upstream_call(stack, egress):
    resp = chat(stack, stack.mint()["token"], {"x-mock-geo": "other"})
    assert resp.status_code == 403
    # Answered as every refused key is (the proxy's credential, not the client's).
    assert "unsupported_country" not in resp.text
    assert len(stack.upstream_requests()) == 1
    assert egress.requests() == []


def test_an_anthropic_geo_403_passes_with_one_upstream_call(stack, egress):
    resp = requests.post(
        f"{stack.url}/v1/messages",
        headers={"x-api-key": stack.mint()["token"], "anthropic-version": "2023-06-01", **GEO},
        json={"model": "claude-sonnet-4-5", "max_tokens": 8,
              "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert resp.status_code == 403
    assert len(stack.upstream_requests()) == 1
    assert egress.requests() == []


def test_whatever_the_replay_answers_is_what_the_client_gets(stack, egress):
    # The mock's plain 403 is a geo-block everywhere, the egress's too: replayed once, no more.
    resp = chat(stack, stack.mint()["token"], {"x-mock-status": "403"})
    assert resp.status_code == 403
    assert (len(stack.upstream_requests()), len(egress.requests())) == (1, 1)


def test_a_body_past_the_bound_is_not_replayed(stack, egress):
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * (2 * BOUND)}]}
    resp = chat(stack, stack.mint()["token"], GEO, big)
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "unsupported_country_region_territory"
    assert len(stack.upstream_requests()) == 1
    assert egress.requests() == []
    assert stat(stack, "geo_fallback.unreplayable", 1) == 1


def test_off_unless_configured(make_stack):
    s = make_stack()
    resp = chat(s, s.mint()["token"], GEO)
    assert resp.status_code == 403
    assert len(s.upstream_requests()) == 1


def test_without_the_hold_filter_a_geo_403_is_answered_whole_and_never_replayed(make_stack,
                                                                               egress):
    """The setting alone (no hold filter in front of ptk): ptk cannot keep a 403's headers
    from the client, so it replays nothing and answers as it would without the fallback, whole;
    a client cannot fake the hold filter's mark (Envoy drops it as the request arrives)."""
    fallback = {"cluster": "openai_egress"}
    s = make_stack(plugin_config={"providers": {"openai": {"geo_fallback": fallback}}})
    token = s.mint()["token"]
    for headers in (GEO, {**GEO, "x-ptk-geo-hold": "1"}):
        resp = chat(s, token, headers)
        assert resp.status_code == 403
        assert resp.json()["error"]["code"] == "upstream_credential_refused", resp.text
    assert len(s.upstream_requests()) == 2
    assert egress.requests() == []
    for record in s.upstream_requests():
        assert header(record, "x-ptk-geo-hold") == []
    assert stat(s, "geo_fallback.unreplayable", 2) == 2
    assert "hold filter in front of ptk is missing" in s.logs()


class TunnelledStack(Stack):
    """The egress cluster of README's example: api.openai.com over verified TLS inside an HTTP
    CONNECT tunnel (`http_11_proxy`); here the "api.openai.com" is a TLS front (test CA) of
    the egress mock, and the proxy a loopback one that records what it was asked to reach."""

    connect_proxy_port: int = 0
    front_port: int = 0
    ca: str = ""

    def render(self, out, **overrides):
        super().render(out, **overrides)
        config = yaml.safe_load(out.read_text())
        clusters = config["static_resources"]["clusters"]
        egress = next(c for c in clusters if c["name"] == "openai_egress")
        egress["type"] = "STATIC"
        egress["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] = {
            "socket_address": {"address": "127.0.0.1", "port_value": self.front_port}}
        tls = {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                        "UpstreamTlsContext",
               "sni": "api.openai.com",
               "common_tls_context": {"validation_context": {
                   "trusted_ca": {"filename": self.ca},
                   "match_typed_subject_alt_names": [
                       {"san_type": "DNS", "matcher": {"exact": "api.openai.com"}}]}}}
        egress["transport_socket"] = {
            "name": "envoy.transport_sockets.http_11_proxy",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.http_11_proxy"
                         ".v3.Http11ProxyUpstreamTransport",
                "default_proxy_address": {
                    "socket_address": {"address": "127.0.0.1",
                                       "port_value": self.connect_proxy_port}},
                "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": tls},
            },
        }
        out.write_text(yaml.safe_dump(config))


def test_the_egress_may_be_reached_through_a_connect_proxy(egress, tmp_path):
    pki = TestPki(tmp_path / "pki")
    front = TlsPeer(pki.issue("openai", ("api.openai.com",)))
    front.target = ("127.0.0.1", egress.port)
    proxy = ConnectProxy()
    s = TunnelledStack(
        render_extra=lambda _: ["--geo-fallback-egress", f"http://127.0.0.1:{egress.port}"])
    s.connect_proxy_port, s.front_port, s.ca = proxy.port, front.port, str(pki.ca)
    s.start()
    try:
        resp = chat(s, s.mint()["token"], GEO)
        assert resp.status_code == 200, resp.text
        assert proxy.targets == [f"127.0.0.1:{front.port}"]
        assert front.handshakes == 1 and front.plaintext_connections == 0
        replayed = egress.requests()
        assert len(replayed) == 1
        assert header(replayed[0], "authorization") == [f"Bearer {REAL_KEYS['OPENAI_API_KEY']}"]
    finally:
        s.stop()
        s.cleanup()
        proxy.stop()
        front.close()


def test_after_a_geo_block_websocket_handshakes_take_the_egress(egress):
    """A callout cannot replay an upgrade: once an HTTP call met the geo-block, OpenAI
    handshakes go through the egress route from the start (learn_ms, 10 min by default)."""
    s = Stack(render_extra=lambda _: ["--geo-fallback-egress", f"http://127.0.0.1:{egress.port}"])
    s.start()
    try:
        token = s.mint()["token"]
        auth = {"authorization": f"Bearer {token}", **GEO}
        # Nothing learned yet: the handshake goes direct and gets OpenAI's 403.
        assert raw_handshake(s, "/v1/realtime?model=gpt-realtime", auth).status_code == 403
        assert egress.requests() == []
        assert chat(s, token, GEO).status_code == 200  # the geo-block, replayed, learned
        egress.reset()
        s.reset_upstream()
        got = asyncio.run(round_trip(ws_url(s, "/v1/realtime?model=gpt-realtime"), headers=auth))
        assert got["text"] == '{"type":"session.update"}'
        assert s.upstream_requests() == [], "the direct route was not taken"
        (record,) = egress.requests()
        assert record["kind"] == "websocket"
        assert header(record, "authorization") == [f"Bearer {REAL_KEYS['OPENAI_API_KEY']}"]
        assert header(record, "x-ptk-egress") == [], "the route mark never goes upstream"
        assert stat(s, "geo_fallback.routed", 1) == 1
    finally:
        s.stop()
        s.cleanup()


def test_a_clients_egress_mark_is_removed(stack, egress):
    resp = chat(stack, stack.mint()["token"], {"x-ptk-egress": "geo-fallback"})
    assert resp.status_code == 200
    (record,) = stack.upstream_requests()
    assert header(record, "x-ptk-egress") == []
    assert egress.requests() == []


def test_a_keyless_forward_cannot_carry_the_egress_mark_either(stack, egress):
    """Envoy drops a client's `x-ptk-egress` as the request arrives (an HCM early header
    mutation), so no forwarding path, keyless upload legs included, can pick the egress route."""
    started = start(stack, stack.mint("gemini")["token"], 5)
    assert started.status_code == 200, started.text
    stack.reset_upstream()
    done = leg(started.headers["x-goog-upload-url"], "upload, finalize", b"hello", 0,
               headers={"x-ptk-egress": "geo-fallback"})
    assert done.status_code == 200, done.text
    (record,) = stack.upstream_requests()
    assert header(record, "x-ptk-egress") == []
    assert egress.requests() == []
