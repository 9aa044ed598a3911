"""Issue 10 items 3, 4 and 12 through the real Envoy: the Gemini ephemeral pass-through is
opt-in and relays nothing that could be a proxy token; every credential spelling is stripped
and whatever still carries a proxy token is refused with 400 (fresh check and cached verdict
alike); clients cannot pick the OpenAI organization/project or Google billing project.

This module's stack runs the plugin with `ephemeral.pass_through` on and an operator
`openai-organization`; test_websocket.py pins the default (pass-through off)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import time
from pathlib import Path

import pytest
import requests
import yaml

from .harness import REAL_KEYS, Stack

GEMINI_KEY = REAL_KEYS["GEMINI_API_KEY"]
OPENAI_KEY = REAL_KEYS["OPENAI_API_KEY"]
LIVE = "//ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained"
EPHEMERAL = "auth_tokens/cd02d243f0cc8cc2d2aa5d0295e927b6"
OPERATOR_ORG = "org-operator-e2e"
PLUGIN = {
    "ephemeral": {"pass_through": True},
    "providers": {"openai": {"request_headers": {"openai-organization": OPERATOR_ORG}}},
}


def merge(into: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value


class PluginStack(Stack):
    """A stack whose plugin configuration gets PLUGIN merged in (the committed config and
    render_envoy.py otherwise unchanged)."""

    def render(self, out: Path, **overrides: str) -> None:
        super().render(out, **overrides)
        config = yaml.safe_load(out.read_text())
        for listener in config["static_resources"]["listeners"]:
            for chain in listener["filter_chains"]:
                for filt in chain["filters"]:
                    for http_filter in filt.get("typed_config", {}).get("http_filters", []):
                        if http_filter.get("name") != "ptk":
                            continue
                        wasm = http_filter["typed_config"]["config"]
                        plugin = json.loads(wasm["configuration"]["value"])
                        merge(plugin, PLUGIN)
                        wasm["configuration"]["value"] = json.dumps(plugin)
        out.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture(scope="module")
def stack():
    s = PluginStack().start()
    try:
        yield s
    finally:
        s.stop()
        s.cleanup()


def send(stack, method: str, path: str, headers: list[tuple[str, str]], websocket: bool = False,
         body: bytes = b"") -> tuple[int, str, dict[str, str]]:
    """One request with headers exactly as listed (duplicates kept, in order)."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.proxy_port, timeout=10)
    conn.putrequest(method, path, skip_accept_encoding=True)
    if websocket:
        headers = [("connection", "Upgrade"), ("upgrade", "websocket"),
                   ("sec-websocket-version", "13"),
                   ("sec-websocket-key", base64.b64encode(os.urandom(16)).decode()), *headers]
    for name, value in headers:
        conn.putheader(name, value)
    if body or method == "POST":
        conn.putheader("content-type", "application/json")
        conn.putheader("content-length", str(len(body)))
    conn.endheaders(body or None)
    resp = conn.getresponse()
    status = resp.status
    text = "" if status == 101 else resp.read().decode(errors="replace")
    resp_headers = {k.lower(): v for k, v in resp.getheaders()}
    conn.close()
    return status, text, resp_headers


def recorded(stack) -> list[dict]:
    return stack.upstream_requests()


def headers_of(record: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in record["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def assert_nowhere_upstream(stack, *secrets: str) -> list[dict]:
    records = recorded(stack)
    text = json.dumps(records)
    for secret in secrets:
        assert secret not in text, "a proxy token reached the upstream"
    return records


# --- item 3: the ephemeral pass-through ------------------------------------------------------


def test_google_ephemeral_tokens_pass_through_when_switched_on(stack):
    forms = [
        (f"{LIVE}?access_token={EPHEMERAL}", []),
        (LIVE, [("authorization", f"Token {EPHEMERAL}"), ("x-goog-api-key", EPHEMERAL)]),
    ]
    for path, headers in forms:
        stack.reset_upstream()
        status, _, _ = send(stack, "GET", path, headers, websocket=True)
        assert status == 101, path
        (rec,) = recorded(stack)
        assert rec["path"] == path
        h = headers_of(rec)
        assert h.get("authorization", []) == [v for n, v in headers if n == "authorization"]
        assert h.get("x-goog-api-key", []) == [v for n, v in headers if n == "x-goog-api-key"]
        assert GEMINI_KEY not in json.dumps(rec)


def test_a_proxy_token_next_to_a_google_token_is_never_relayed(stack):
    """The four leaks of issue 10 item 3 (each relayed the proxy token to Gemini before)."""
    token = stack.mint("gemini")["token"]
    cases = [
        ("a second x-goog-api-key", LIVE,
         [("x-goog-api-key", EPHEMERAL), ("x-goog-api-key", token)]),
        ("an empty key= then key=<token>", f"{LIVE}?access_token={EPHEMERAL}&key=&key={token}", []),
        ("Token auth_tokens plus a Bearer proxy token", LIVE,
         [("authorization", f"Token {EPHEMERAL}"), ("authorization", f"Bearer {token}")]),
        ("an empty x-api-key then one with the token", LIVE,
         [("authorization", f"Token {EPHEMERAL}"), ("x-api-key", ""), ("x-api-key", token)]),
    ]
    for name, path, headers in cases:
        stack.reset_upstream()
        status, _, _ = send(stack, "GET", path, headers, websocket=True)
        assert status in (400, 401), (name, status)
        assert assert_nowhere_upstream(stack, token) == [], name


def test_a_valid_proxy_token_next_to_a_google_token_is_swapped_and_both_stripped(stack):
    token = stack.mint("gemini")["token"]
    status, _, _ = send(stack, "GET", f"{LIVE}?access_token={EPHEMERAL}",
                        [("x-goog-api-key", token)], websocket=True)
    assert status == 101
    (rec,) = assert_nowhere_upstream(stack, token, EPHEMERAL)
    assert rec["path"] == LIVE
    assert headers_of(rec)["x-goog-api-key"] == [GEMINI_KEY]


def pct(text: str) -> str:
    return "".join(f"%{b:02X}" for b in text.encode())


def assert_refused_plain_text(status: int, text: str, headers: dict[str, str], *tokens: str):
    assert status == 400, (status, text)
    assert headers["content-type"].startswith("text/plain")
    assert text.startswith("proxy token found outside its auth slot")
    for token in tokens:
        assert token not in text


def test_a_proxy_token_outside_any_slot_of_a_pass_through_is_refused(stack):
    """attack/smuggle_battery.py: with the pass-through on, `?access_token=auth_tokens/…&x=<token>`
    and `cookie: <token>` reached Gemini (no final guard on that path). Every slot holds a Google
    token, so this is a pass-through: the guard looks for the generated-token shape anywhere
    else, and refuses in plain text (a handshake) with nothing forwarded."""
    token = stack.mint("gemini")["token"]
    other = stack.mint("openai")["token"]
    python_sdk = [("authorization", f"Token {EPHEMERAL}"), ("x-goog-api-key", EPHEMERAL)]
    cases = [
        ("a query value", f"{LIVE}?access_token={EPHEMERAL}&x={token}", []),
        ("a cookie", f"{LIVE}?access_token={EPHEMERAL}", [("cookie", token)]),
        ("a cookie among others", f"{LIVE}?access_token={EPHEMERAL}",
         [("cookie", f"a=1; t={token}")]),
        ("a query value encoded twice", f"{LIVE}?access_token={EPHEMERAL}&x={pct(pct(token))}", []),
        ("another header, the python SDK's form", LIVE, [*python_sdk, ("x-debug", other)]),
        ("upper-cased", LIVE, [*python_sdk, ("x-debug", other.upper())]),
        ("a subprotocol entry", f"{LIVE}?access_token={EPHEMERAL}",
         [("sec-websocket-protocol", f"x, {token}")]),
    ]
    for name, path, headers in cases:
        status, text, resp_headers = send(stack, "GET", path, headers, websocket=True)
        assert_refused_plain_text(status, text, resp_headers, token, other)
    assert recorded(stack) == [], "a refused handshake reached Gemini"
    # The same handshakes without the stray token still pass through.
    status, _, _ = send(stack, "GET", f"{LIVE}?access_token={EPHEMERAL}", [("cookie", "a=1")],
                        websocket=True)
    assert status == 101
    assert_nowhere_upstream(stack, token, other)


def test_a_proxy_token_outside_any_slot_of_an_upload_leg_is_refused(stack):
    """A keyless upload leg of a session the proxy started, with a generated token anywhere
    in it (or a value of one of its slots copied elsewhere): 400 in Gemini's shape, nothing
    forwarded; the same leg without it goes through."""
    from .test_uploads import assert_keyless_upstream, leg, start

    token = stack.mint("gemini")["token"]
    other = stack.mint("openai")["token"]
    url = start(stack, token, 3).headers["x-goog-upload-url"]
    stack.reset_upstream()
    cases = [
        ("another header", url, {"x-debug": token}),
        ("a cookie", url, {"cookie": f"t={other}"}),
        ("a query value", f"{url}&note={other}", {}),
        ("a query value encoded twice", f"{url}&note={pct(pct(token))}", {}),
        ("a slot value copied", url, {"api-key": "custom-value-000", "x-copy": "custom-value-000"}),
    ]
    for name, target, headers in cases:
        r = leg(target, "query", headers=headers)
        assert r.status_code == 400, (name, r.status_code, r.text)
        body = r.json()
        assert body["error"]["status"] == "INVALID_ARGUMENT", (name, body)
        assert token not in r.text and other not in r.text
    assert recorded(stack) == [], "a refused leg reached Gemini"
    done = leg(url, "upload, finalize", b"abc", offset=0)
    assert done.status_code == 200, done.text
    [rec] = recorded(stack)
    assert_keyless_upstream(rec, token)
    assert_nowhere_upstream(stack, token, other)


def test_a_proxy_token_outside_any_slot_of_a_client_secret_use_is_refused(stack):
    """An OpenAI client secret minted through the proxy, used with a generated token elsewhere
    in the request: 400 in OpenAI's shape, nothing forwarded."""
    from .test_client_secrets import call, mint

    token = stack.mint("openai")["token"]
    ek = mint(stack, token)["value"]
    stack.reset_upstream()
    for headers in ({"x-debug": token}, {"cookie": f"t={token}"}):
        r = call(stack, ek, headers=headers)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "proxy_token_in_request"
        assert token not in r.text
    assert recorded(stack) == []
    assert call(stack, ek).status_code == 201
    assert_nowhere_upstream(stack, token)


# --- item 4: every spelling stripped, the final guard ----------------------------------------


def test_every_key_spelling_is_stripped(stack):
    token = stack.mint("gemini")["token"]
    base = "/v1beta/models/m:generateContent"
    for spelling in ("KEY", "key[]", "key%5B%5D", "key%00", "%24key", "Key", "%256Bey", "api_key",
                     "access_token"):
        for sep in ("&", ";"):
            stack.reset_upstream()
            path = f"{base}?alt=sse{sep}{spelling}={token}&x=1"
            status, text, _ = send(stack, "POST", path, [("x-goog-api-key", token)], body=b"{}")
            assert status == 200, (path, text)
            (rec,) = assert_nowhere_upstream(stack, token)
            assert rec["path"] == f"{base}?alt=sse&x=1", path


@pytest.mark.parametrize("where", ["header", "path", "query", "encoded", "second-slot",
                                   "second-outside-any-slot", "cookie"])
def test_a_token_that_would_still_go_upstream_is_refused_with_400(stack, where):
    token = stack.mint("openai,gemini")["token"]
    other = stack.mint("openai")["token"]
    path, headers = "/v1/chat/completions", [("authorization", f"Bearer {token}")]
    if where == "second-outside-any-slot":
        # In no slot: the guard knows it by the shape of a generated token.
        headers.append(("x-debug-copy", other))
    elif where == "cookie":
        headers.append(("cookie", f"session=1; t={other}"))
    elif where == "header":
        headers.append(("x-debug-copy", token))
    elif where == "path":
        path = f"/v1/chat/{token}/completions"
    elif where == "query":
        path += f"?note={token}"
    elif where == "encoded":
        path += "?note=" + "".join(f"%25{ord(c):02X}" for c in token)  # encoded twice
    else:
        path += f"?key={other}"
        headers.append(("x-debug-copy", other))
    # First the fresh check, then the cached verdict: both refuse.
    for attempt in ("fresh check", "cached verdict"):
        status, text, resp_headers = send(stack, "POST", path, headers, body=b"{}")
        assert status == 400, (where, attempt, text)
        body = json.loads(text)
        assert body["error"]["code"] == "proxy_token_in_request", body
        assert body["error"]["type"] == "invalid_request_error"
        assert token not in text and other not in text
    assert_nowhere_upstream(stack, token, other)
    assert recorded(stack) == []
    # The token itself is fine: a clean request with it goes through at once.
    status, _, _ = send(stack, "POST", "/v1/chat/completions",
                        [("authorization", f"Bearer {token}")], body=b"{}")
    assert status == 200


def test_guard_refusals_are_plain_text_on_handshakes_and_in_gemini_shape(stack):
    token = stack.mint("openai,gemini")["token"]
    status, text, headers = send(stack, "GET", "/v1/realtime?model=m",
                                 [("authorization", f"Bearer {token}"), ("x-debug", token)],
                                 websocket=True)
    assert status == 400
    assert headers["content-type"].startswith("text/plain")
    assert text.startswith("proxy token found outside its auth slot")
    status, text, _ = send(stack, "POST", f"/v1beta/models/{token}:generateContent",
                           [("x-goog-api-key", token)], body=b"{}")
    assert status == 400
    assert json.loads(text)["error"]["status"] == "INVALID_ARGUMENT"
    assert recorded(stack) == []


def test_guard_refusals_are_counted(stack):
    token = stack.mint("openai")["token"]
    send(stack, "POST", "/v1/chat/completions",
         [("authorization", f"Bearer {token}"), ("x-copy", token)], body=b"{}")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        stats = requests.get(f"http://127.0.0.1:{stack.admin_port}/stats?filter=token_in_request",
                             timeout=5).text
        if any(line.endswith(tuple(f": {n}" for n in range(1, 100))) for line in stats.splitlines()):
            return
        time.sleep(0.2)
    raise AssertionError(f"refused.token_in_request not counted: {stats!r}")


# --- item 12: organization, project, billing project -----------------------------------------


def test_client_org_and_project_are_replaced_by_the_operators(stack):
    token = stack.mint()["token"]
    status, _, _ = send(stack, "POST", "/v1/chat/completions", [
        ("authorization", f"Bearer {token}"), ("OpenAI-Organization", "org-client"),
        ("openai-organization", "org-client-2"), ("OpenAI-Project", "proj_client")], body=b"{}")
    assert status == 200
    (rec,) = recorded(stack)
    h = headers_of(rec)
    assert h["openai-organization"] == [OPERATOR_ORG]
    assert "openai-project" not in h


def test_realtime_handshake_org_and_project_are_stripped_in_headers_and_subprotocols(stack):
    token = stack.mint()["token"]
    offer = (f"realtime, openai-insecure-api-key.{token}, openai-organization.org-client, "
             "openai-project.proj_client, openai-beta.realtime-v1")
    status, _, resp_headers = send(stack, "GET", "/v1/realtime?model=m", [
        ("sec-websocket-protocol", offer), ("openai-project", "proj_client")], websocket=True)
    assert status == 101
    assert resp_headers.get("sec-websocket-protocol") == "realtime"
    (rec,) = assert_nowhere_upstream(stack, token, "org-client", "proj_client")
    h = headers_of(rec)
    assert h["sec-websocket-protocol"] == ["realtime, openai-beta.realtime-v1"]
    assert h["openai-organization"] == [OPERATOR_ORG]
    assert h["authorization"] == [f"Bearer {OPENAI_KEY}"]


def test_google_billing_and_quota_project_choices_are_stripped(stack):
    token = stack.mint("gemini")["token"]
    status, _, _ = send(stack, "POST",
                        "/v1beta/models/m:generateContent?userProject=client&%24quotaUser=u&alt=sse",
                        [("x-goog-api-key", token), ("X-Goog-User-Project", "client-project"),
                         ("x-goog-quota-user", "someone")], body=b"{}")
    assert status == 200
    (rec,) = recorded(stack)
    assert rec["path"] == "/v1beta/models/m:generateContent?alt=sse"
    h = headers_of(rec)
    assert "x-goog-user-project" not in h and "x-goog-quota-user" not in h


def test_bad_request_headers_and_ephemeral_configs_are_refused_at_start_naming_the_field(stack):
    from .test_fail_closed import envoy_with_plugin_config

    env = dict(os.environ, PTK_CHECK_SECRET=stack.secret)
    cases = [
        ({"providers": {"openai": {"request_headers": {"OpenAI-Organization": "org"}}}},
         "providers.openai.request_headers"),
        ({"providers": {"gemini": {"request_headers": {"x-goog-api-key": "AIza"}}}},
         "providers.gemini.request_headers"),
        ({"ephemeral": {"pass_through": "yes"}}, "ephemeral.pass_through"),
    ]
    for plugin, field in cases:
        out = envoy_with_plugin_config(stack.dir, stack.dir / "envoy.yaml", json.dumps(plugin), env)
        assert out.returncode != 0, f"envoy accepted {plugin}"
        log = out.stdout + out.stderr
        assert "bad config" in log and field in log, log[-2000:]
        assert "AIza" not in log
