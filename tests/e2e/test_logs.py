"""No token and no real key in any log: Envoy's access log and its own log, the token-service's
log and the mock's. Runs traffic of every kind (allowed, refused, ?key=) through one stack
first, then reads everything it wrote."""

from __future__ import annotations

import hashlib
import http.client
import re
import subprocess
import time

import requests

from .admin_client import AdminClient
from .harness import REAL_KEYS


def test_logs_never_hold_a_token_or_a_key(make_stack):
    s = make_stack()
    token = s.mint("openai,anthropic,gemini", "--token", "ptk_LOGSENTINEL_abcdefghij")["token"]
    url = s.url
    requests.post(f"{url}/v1/chat/completions", json={"model": "m"}, headers={"authorization": f"Bearer {token}"})
    requests.post(f"{url}/v1/messages", json={}, headers={"x-api-key": token, "anthropic-version": "2023-06-01"})
    requests.post(f"{url}/v1beta/models/m:generateContent?key={token}", json={})
    requests.post(f"{url}/v1beta/models/m:generateContent", json={}, headers={"x-goog-api-key": token})
    requests.get(f"{url}/v1/models", headers={"authorization": "Bearer ptk_LOGSENTINEL_unknown_0000"})
    live = "//ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    upgrade = {"connection": "Upgrade", "upgrade": "websocket", "sec-websocket-version": "13",
               "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="}
    requests.get(f"{url}{live}?key={token}", headers={**upgrade, "x-mock-status": "426"})
    requests.get(f"{url}/v1/realtime", headers={
        **upgrade, "sec-websocket-protocol": f"realtime, openai-insecure-api-key.{token}",
        "x-mock-status": "426"})
    s.cli("tokens", "disable", s.mint("openai")["hash"])
    s.kill_service()
    requests.get(f"{url}/v1/models", headers={"authorization": f"Bearer {token}"})
    s.stop()
    logs = s.logs()
    assert "GET /v1/models" in logs, "access log missing"
    assert "BidiGenerateContent" in logs, "websocket handshake not in the access log"
    assert "LOGSENTINEL" not in logs
    for key in REAL_KEYS.values():
        assert key not in logs


# --- only server-derived values in the access log ------------------------------------------

FORGED = "/forged/ptk_LOGFORGE_abcdefghij"
CLIENT_ENVOY_HEADERS = {
    "x-envoy-original-path": FORGED,
    "x-envoy-upstream-rq-timeout-ms": "1",
    "x-envoy-retry-on": "5xx",
    "x-envoy-max-retries": "5",
    "x-envoy-made-up": "LOGFORGE",
}


def access_lines(s) -> list[str]:
    return [line for line in s.access_log.read_text().splitlines() if line.strip()]


def redacted(lines: list[str], *secrets: str) -> list[str]:
    """Lines fit for a failure message: no test token printed, even a fake one."""
    out = []
    for line in lines:
        for secret in secrets:
            line = line.replace(secret, "<redacted>")
        out.append(line)
    return out


def raw_http1(s, target: str, headers: dict[str, str]) -> int:
    """A request line exactly as given (requests and urllib drop a #fragment)."""
    conn = http.client.HTTPConnection("127.0.0.1", s.proxy_port, timeout=10)
    try:
        conn.putrequest("GET", target, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def raw_http2(s, target: str, headers: dict[str, str]) -> int:
    """The same over HTTP/2 (prior knowledge), through curl's --request-target."""
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--http2-prior-knowledge",
            "--request-target", target]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    done = subprocess.run([*args, f"{s.url}/"], capture_output=True, text=True, timeout=10)
    return int(done.stdout)


def test_client_x_envoy_headers_neither_shape_the_log_nor_reach_the_provider(make_stack):
    s = make_stack()
    token = s.mint()["token"]
    allowed = requests.get(f"{s.url}/v1/models", timeout=10, headers={
        "authorization": f"Bearer {token}", **CLIENT_ENVOY_HEADERS})
    refused = requests.get(f"{s.url}/v1beta/models", timeout=10, headers=CLIENT_ENVOY_HEADERS)
    assert (allowed.status_code, refused.status_code) == (200, 401)
    (upstream,) = s.upstream_requests()
    sent = {name: value for name, value in upstream["headers"]}
    for name, value in CLIENT_ENVOY_HEADERS.items():
        reached = sent.get(name) == value
        assert not reached, f"the client's {name} reached the provider"
    s.stop()
    lines = redacted(access_lines(s), token)
    assert any('"GET /v1/models HTTP/1.1" 200' in line for line in lines), lines
    assert any('"GET /v1beta/models HTTP/1.1" 401' in line for line in lines), lines
    assert not any("LOGFORGE" in line or "forged" in line for line in lines), lines


def test_a_fragment_or_path_parameter_never_carries_a_token_into_the_log(make_stack):
    s = make_stack()
    token = s.mint("openai,gemini", "--token", "ptk_LOGFRAGMENT_abcdefghij")["token"]
    auth = {"authorization": f"Bearer {token}"}
    gemini = "/v1beta/models/m:generateContent"
    # Envoy refuses a fragment anywhere in the target with 400 before any filter runs (and so
    # before anything is forwarded), over HTTP/1.1 and HTTP/2 alike; it would log it whole.
    for send in (raw_http1, raw_http2):
        for target in (f"/v1/models#key={token}", f"{gemini}#key={token}?alt=sse",
                       f"/v1/models?alt=sse#key={token}", f"/v1/models#{token}"):
            for headers in (auth, {}):
                status = send(s, target, headers)
                assert status == 400, (send.__name__, target.replace(token, "<token>"), status)
    # A path parameter is part of the path: forwarded or refused as the filter decides, but
    # logged only up to the `;`.
    raw_http1(s, f"{gemini};key={token}", {})
    assert s.upstream_requests() == []
    s.stop()
    lines = redacted(access_lines(s), token)
    assert sum('"GET /v1/models HTTP/1.1" 400' in line for line in lines) == 6, lines
    assert sum('"GET /v1/models HTTP/2" 400' in line for line in lines) == 6, lines
    assert sum(f'"GET {gemini} HTTP/' in line for line in lines) == 5, lines
    leaked = "LOGFRAGMENT" in s.logs()
    assert not leaked, "the token reached a log"


def test_neither_method_nor_path_characters_can_forge_a_log_field(make_stack):
    s = make_stack()
    # HTTP/2 takes any token as a method: it could carry a token into the log.
    done = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--http2-prior-knowledge",
         "-X", "ptk_LOGMETHOD_abcdefghij", f"{s.url}/v1/models"],
        capture_output=True, text=True, timeout=10)
    assert done.stdout == "401"
    # HTTP/1.1 takes a `"` in the path: it could close the quoted request field early.
    assert raw_http1(s, '/v1/models"200-FORGED', {}) == 401
    s.stop()
    lines = access_lines(s)
    assert any('"OTHER /v1/models HTTP/2" 401' in line for line in lines), lines
    assert any('"GET /v1/models HTTP/1.1" 401' in line for line in lines), lines
    assert not any("LOGMETHOD" in line or "FORGED" in line for line in lines), lines


# --- no token and no token hash through the path ---------------------------------------------

UPGRADE = {"connection": "Upgrade", "upgrade": "websocket", "sec-websocket-version": "13",
           "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="}


def send(s, method: str, target: str, headers: dict[str, str]) -> int:
    """A request line exactly as given (no client library re-encodes the target)."""
    conn = http.client.HTTPConnection("127.0.0.1", s.proxy_port, timeout=10)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in {**headers, "content-length": "2"}.items():
            conn.putheader(name, value)
        conn.endheaders(b"{}")
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_token_in_the_path_never_reaches_the_access_log(make_stack):
    """The attack's paths (attack/token_in_access_log.py) and their siblings: every refusal
    rewrites its own `:path` before answering, and the log format cuts the rest."""
    s = make_stack()
    token = s.mint("openai,anthropic,gemini", "--token", "ptk_LOGPATHgen_abcdefghij")["token"]
    custom = s.mint("openai,gemini", "--token", "Custom!LogPath.2026")["token"]
    other = "ptk_LOGPATHother_abcdefghij"  # a token-shaped run that is no slot's value
    gemini = "/v1beta/models/gemini-2.5-flash:generateContent"
    bearer = {"authorization": f"Bearer {token}"}
    expected = [
        # (method, target, headers, status, what the log prints)
        ("POST", f"{gemini}&key={token}", {}, 401, gemini),
        ("POST", f"{gemini}%3Fkey={token}", {}, 401, gemini),
        ("POST", f"{gemini}?key={token}&alt=sse", {}, 200, gemini),
        ("GET", f"/v1/models/{token}", bearer, 400, "/v1/models/[redacted]"),
        ("GET", f"/v1/files/{token}/content", {"x-api-key": token}, 400,
         "/v1/files/[redacted]/content"),
        ("GET", f"/v1/files/{token.upper()}/content", bearer, 400,
         "/v1/files/[redacted]/content"),
        ("GET", "/v1/models/Custom%21LogPath.2026/x", {"x-goog-api-key": custom}, 400,
         "/v1/models/[redacted]/x"),
        ("GET", "/v1/models/Custom%2521LogPath.2026", {"authorization": f"Bearer {custom}"},
         400, "/v1/models/[redacted]"),
        ("GET", f"/v1/x/{other}", {"authorization": f"Bearer {other}"}, 401, "/v1/x/[redacted]"),
        ("GET", f"/v1/x/{other}/y", {}, 401, "/v1/x/[redacted]/y"),
        ("OPTIONS", f"/v1/models/{token}?q=1", {"origin": "http://app.example",
                                                "access-control-request-method": "POST"},
         204, "/v1/models/[redacted]"),
        ("GET", f"/v1/realtime/{token}?model=m", {**UPGRADE, **bearer}, 400,
         "/v1/realtime/[redacted]"),
        # Forwarded: its own token cannot be in its path (400 above), another token-shaped
        # run is cut by the log format.
        ("GET", f"/v1/models/{other}/z", bearer, 200, "/v1/models/[redacted]"),
    ]
    for method, target, headers, status, _ in expected:
        got = send(s, method, target, headers)
        assert got == status, (method, target.replace(token, "<token>"), got)
    h2 = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--http2-prior-knowledge",
         "-H", f"authorization: Bearer {token}", f"{s.url}/v1/h2/{token}?k=v"],
        capture_output=True, text=True, timeout=10)
    assert h2.stdout == "400"
    s.stop()
    lines = redacted(access_lines(s), token, custom, other)
    for method, _, _, status, logged in expected:
        line = f'"{method} {logged} HTTP/1.1" {status}'
        assert any(line in entry for entry in lines), (line, lines)
    assert any('"GET /v1/h2/[redacted] HTTP/2" 400' in entry for entry in lines), lines
    logs = s.logs().lower()
    for secret in (token, custom, "custom!logpath", "custom%21logpath", "custom%2521logpath",
                   "logpathother"):
        leaked = secret.lower() in logs
        assert not leaked, "a token reached a log"


def test_gemini_and_openai_paths_still_log_usefully(make_stack):
    s = make_stack()
    token = s.mint()["token"]
    for target, headers in (
            ("/v1beta/models/gemini-2.5-flash:generateContent", {"x-goog-api-key": token}),
            ("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
             {"x-goog-api-key": token}),
            ("/v1beta/tunedModels/my-model_1.2:generateContent", {"x-goog-api-key": token}),
            ("/v1/chat/completions", {"authorization": f"Bearer {token}"})):
        assert send(s, "POST", target, headers) == 200
    s.stop()
    lines = redacted(access_lines(s), token)
    for logged in ("/v1beta/models/gemini-2.5-flash:generateContent",
                   "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                   "/v1beta/tunedModels/my-model_1.2:generateContent", "/v1/chat/completions"):
        assert any(f'"POST {logged} HTTP/1.1" 200' in line for line in lines), (logged, lines)


def test_token_hashes_never_reach_the_access_log(make_stack):
    """attack/hash_in_access_log.py: the dashboard's calls name tokens by their unsalted
    SHA-256, which cracks offline for a weak custom token; the log prints `{hash}`."""
    s = make_stack()
    admin = AdminClient(s.url, s.admin_secret)
    created = admin.create(label="weak", providers=["openai"], token="Summer2026!!")
    digest = created["hash"]
    assert admin.get(digest).status_code == 200
    admin.patch(digest, status="disabled")
    admin.delete(digest)
    # Misspelled or unknown paths under the token API too (an encoded hex digit: the cut
    # would otherwise print the digest up to it).
    admin.http.get(f"{s.url}/admin/api/tokens/{digest[:10]}%61{digest[11:]}", timeout=10)
    admin.http.get(f"{s.url}/admin/api/tokens/{digest}/x", timeout=10)
    s.stop()
    text = s.access_log.read_text()
    assert not re.search(r"[0-9a-f]{16}", text), "a token hash (or part of one) was logged"
    assert digest[:16] not in s.logs()
    for method, status in (("GET", 200), ("PATCH", 200), ("DELETE", 204), ("GET", 404)):
        line = f'"{method} /admin/api/tokens/{{hash}} HTTP/1.1" {status}'
        assert line in text, (line, text)
    assert '"POST /admin/api/tokens HTTP/1.1" 201' in text


# --- what the filter adds: provider, token, model, usage ---------------------------------------

def field(line: str, name: str) -> str:
    """The value of ` name=value` in an access-log line."""
    match = re.search(rf" {name}=(\S+)", line)
    assert match, (name, line)
    return match.group(1)


def test_a_forwarded_call_logs_its_provider_token_prefix_model_and_usage(make_stack):
    s = make_stack()
    minted = s.mint()
    generated, digest = minted["token"], minted["hash"]
    custom = s.mint("openai", "--token", "team-log-fields-custom")["token"]
    for token in (generated, custom):
        done = requests.post(f"{s.url}/v1/chat/completions", timeout=10,
                             headers={"authorization": f"Bearer {token}"},
                             json={"model": "gpt-4o", "messages": [{"role": "user",
                                                                    "content": "hi"}]})
        assert done.status_code == 200, done.text
        usage = done.json()["usage"]
    refused = requests.get(f"{s.url}/v1/models", timeout=10,
                           headers={"authorization": "Bearer ptk_not_a_known_token_at_all"})
    assert refused.status_code == 401
    s.stop()
    lines = redacted(access_lines(s), generated, custom)
    chats = [line for line in lines if '"POST /v1/chat/completions HTTP/1.1" 200' in line]
    assert len(chats) == 2, lines
    first, second = chats
    assert field(first, "provider") == "openai"
    # A generated token by its hash prefix, a custom one (maybe weak) never by its hash.
    assert field(first, "token") == digest[:12]
    assert field(second, "token") == "custom"
    for line in chats:
        assert field(line, "model") == "gpt-4o"
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)
        expected = (f"input={usage['prompt_tokens']},cached={cached},cache_write=0,"
                    f"output={usage['completion_tokens']},reasoning={reasoning},complete")
        assert field(line, "usage") == expected, line
    (unknown,) = [line for line in lines if '"GET /v1/models HTTP/1.1" 401' in line]
    for name in ("provider", "token", "model", "usage"):
        assert field(unknown, name) == "-", unknown
    text = s.access_log.read_text()
    assert generated not in text and custom not in text
    assert hashlib.sha256(custom.encode()).hexdigest()[:8] not in text


def test_the_proxy_overhead_and_callout_time_are_envoy_histograms(make_stack):
    s = make_stack()
    token = s.mint()["token"]
    for _ in range(3):
        done = requests.get(f"{s.url}/v1/models", timeout=10,
                            headers={"authorization": f"Bearer {token}"})
        assert done.status_code == 200
    # Envoy merges histograms on its stats flush (every 5 s by default).
    deadline = time.monotonic() + 20
    while True:
        text = requests.get(f"http://127.0.0.1:{s.admin_port}/stats/prometheus",
                            timeout=5).text
        counts = {name: re.search(rf"^{name}_count(?:{{[^}}]*}})? (\d+)$", text, re.M)
                  for name in ("ptk_overhead_us", "ptk_check_callout_us")}
        if all(m and int(m.group(1)) > 0 for m in counts.values()):
            break
        assert time.monotonic() < deadline, {k: bool(v) for k, v in counts.items()}
        time.sleep(0.5)
    # Every forwarded request is sampled; the first (a cache miss) called out once.
    assert int(counts["ptk_overhead_us"].group(1)) == 3
    assert int(counts["ptk_check_callout_us"].group(1)) >= 1
    assert re.search(r'^ptk_overhead_us_bucket\{le="1000"\} \d+$', text, re.M), text[:2000]
