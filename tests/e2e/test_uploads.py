"""Gemini resumable uploads through the real Envoy, against the mock's implementation of Google's
protocol (`tests/mock_upstream/uploads.py`).

The start call carries the token like any Gemini call; its `x-goog-upload-url` and
`x-goog-upload-control-url` come back on the proxy, as the client addressed it. The legs that
follow carry no key (Python `google-genai` and REST clients send none): the proxy forwards them
only for a session it started, whose token is still valid, and sends them up with no
credential at all. Anything else gets 401 in Gemini's shape and nothing is forwarded."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import time
from urllib.parse import urlsplit

import requests

from .flood import stat
from .harness import REAL_KEYS

GEMINI_KEY = REAL_KEYS["GEMINI_API_KEY"]
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key")
GRANULARITY = 8 * 1024 * 1024
UNKNOWN = {"error": {"code": 401, "message": "unknown or expired upload session",
                     "status": "UNAUTHENTICATED"}}


def start(stack, token: str, size: int, *, base: str | None = None, verify=True,
          headers: dict[str, str] | None = None) -> requests.Response:
    """The start call as the SDKs send it (token in x-goog-api-key)."""
    r = requests.post(
        f"{base or stack.url}/upload/v1beta/files",
        json={"file": {"displayName": "notes.txt"}},
        headers={
            "x-goog-api-key": token,
            "x-goog-upload-protocol": "resumable",
            "x-goog-upload-command": "start",
            "x-goog-upload-header-content-length": str(size),
            "x-goog-upload-header-content-type": "text/plain",
            **(headers or {}),
        },
        verify=verify, timeout=10,
    )
    return r


def leg(url: str, command: str, body: bytes = b"", offset: int | None = None, *, verify=True,
        headers: dict[str, str] | None = None) -> requests.Response:
    """One keyless leg to `url`, on a fresh connection (so legs land on either Envoy worker)."""
    h = {"x-goog-upload-command": command, "connection": "close", **(headers or {})}
    if offset is not None:
        h["x-goog-upload-offset"] = str(offset)
    return requests.post(url, data=body, headers=h, verify=verify, timeout=30)


def raw(stack, method: str, path: str, headers: dict[str, str], source: str) -> tuple[int, dict, bytes]:
    """A request from a chosen loopback address (the guess throttle counts per address)."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.proxy_port, timeout=10,
                                      source_address=(source, 0))
    try:
        conn.request(method, path, body=b"", headers=headers)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def headers_of(record: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in record["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def upload_id(url: str) -> str:
    return dict(p.split("=", 1) for p in urlsplit(url).query.split("&"))["upload_id"]


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def assert_keyless_upstream(record: dict, token: str) -> None:
    """A leg reached the provider with no credential at all, and neither the token nor a key."""
    h = headers_of(record)
    assert not any(name in h for name in CREDENTIAL_HEADERS), h
    everything = json.dumps(record["headers"]) + record["path"]
    assert token not in everything
    for key in REAL_KEYS.values():
        assert key not in everything


def test_start_points_both_upload_urls_at_the_proxy(stack):
    token = stack.mint("gemini")["token"]
    r = start(stack, token, 5)
    assert r.status_code == 200, r.text
    url = r.headers["x-goog-upload-url"]
    assert url.startswith(f"{stack.url}/upload/v1beta/files?upload_id="), url
    assert url.endswith("&upload_protocol=resumable")
    assert r.headers["x-goog-upload-control-url"] == url
    [rec] = stack.upstream_requests()
    assert rec["path"] == "/upload/v1beta/files"
    creds = {n: v for n, v in headers_of(rec).items() if n in CREDENTIAL_HEADERS}
    assert creds == {"x-goog-api-key": [GEMINI_KEY]}
    assert token not in json.dumps(rec["headers"]) + rec["path"] + rec["body"]


def test_the_url_names_the_host_the_client_used(stack):
    token = stack.mint("gemini")["token"]
    r = start(stack, token, 5, headers={"host": "llm-proxy.internal:8080"})
    assert r.status_code == 200, r.text
    assert r.headers["x-goog-upload-url"].startswith(
        "http://llm-proxy.internal:8080/upload/v1beta/files?upload_id=")


def test_keyless_legs_of_a_started_session_are_forwarded_without_any_key(stack):
    token = stack.mint("gemini")["token"]
    data = os.urandom(GRANULARITY) + b"the last few bytes"
    url = start(stack, token, len(data)).headers["x-goog-upload-url"]
    stack.reset_upstream()
    query = leg(url, "query")
    assert query.status_code == 200 and query.headers["x-goog-upload-status"] == "active"
    first = leg(url, "upload", data[:GRANULARITY], offset=0)
    assert first.status_code == 200, first.text
    assert first.headers["x-goog-upload-status"] == "active"
    # Legs on fresh connections land on both workers: the session is in shared data.
    for _ in range(6):
        assert leg(url, "query").headers["x-goog-upload-size-received"] == str(GRANULARITY)
    last = leg(url, "upload, finalize", data[GRANULARITY:], offset=GRANULARITY)
    assert last.status_code == 200, last.text
    assert last.headers["x-goog-upload-status"] == "final"
    assert last.json()["file"]["sizeBytes"] == str(len(data))
    sha = hashlib.sha256(data).hexdigest()
    [summary] = [s for s in requests.get(f"{stack.mock_url}/__mock/uploads", timeout=5).json()
                 if s["sha256"] == sha]
    assert summary["size"] == len(data) and summary["state"] == "final"
    legs = stack.upstream_requests()
    assert len(legs) == 9
    for rec in legs:
        assert rec["path"] == path_of(url)
        assert_keyless_upstream(rec, token)
    # A finished session can still be queried for a while (a lost final answer).
    assert leg(url, "query").headers["x-goog-upload-status"] == "final"


def test_whatever_sits_in_a_keyless_legs_credential_slots_stays_behind(stack):
    # No slot here holds a token the filter would take (an empty x-goog-api-key, a non-Bearer
    # scheme, an empty ?key=, a subprotocol entry on a non-upgrade), so this is a keyless leg;
    # none of it, the token under another scheme least of all, may reach the provider.
    token = stack.mint("gemini")["token"]
    url = start(stack, token, 3).headers["x-goog-upload-url"]
    stack.reset_upstream()
    r = leg(f"{url}&key=", "upload, finalize", b"abc", offset=0, headers={
        "x-goog-api-key": "", "authorization": f"Token {token}", "x-api-key": "",
        "sec-websocket-protocol": f"openai-insecure-api-key.{token}"})
    assert r.status_code == 200, r.text
    [rec] = stack.upstream_requests()
    assert_keyless_upstream(rec, token)
    assert "sec-websocket-protocol" not in headers_of(rec)
    assert rec["path"] == path_of(url)


def test_the_tls_listener_gives_https_urls_that_work(stack):
    token = stack.mint("gemini")["token"]
    ca = str(stack.ca_cert)
    r = start(stack, token, 3, base=stack.tls_url, verify=ca)
    assert r.status_code == 200, r.text
    url = r.headers["x-goog-upload-url"]
    assert url.startswith(f"{stack.tls_url}/upload/v1beta/files?upload_id="), url
    done = leg(url, "upload, finalize", b"abc", offset=0, verify=ca)
    assert done.status_code == 200, done.text
    assert done.headers["x-goog-upload-status"] == "final"


def test_unknown_or_forged_upload_ids_get_401_and_nothing_is_forwarded(stack):
    token = stack.mint("gemini")["token"]
    url = start(stack, token, 3).headers["x-goog-upload-url"]
    known = upload_id(url)
    stack.reset_upstream()
    source = "127.0.0.31"
    forged = [
        f"/upload/v1beta/files?upload_id=AU{'x' * 64}&upload_protocol=resumable",
        f"/upload/v1beta/files?upload_id={known[:-1]}&upload_protocol=resumable",
        f"/upload/v1beta/files?upload_id={known}A&upload_protocol=resumable",
        f"/upload/v1beta/files?upload_id={known.lower()}&upload_protocol=resumable",
        "//upload/v1beta/files?upload_id=AUother",
    ]
    for path in forged:
        status, headers, body = raw(stack, "POST", path, {"x-goog-upload-command": "query"}, source)
        assert status == 401, (path, body)
        assert json.loads(body) == UNKNOWN, body
        assert headers["x-goog-upload-status"] == "final"
    # A known id outside the upload surface, with another method, or beside a second id (which
    # one Google would use is not ours to guess) is no leg at all: a missing token.
    for method, path in [
        ("POST", f"/upload/v1beta/files?upload_id={known}&upload_id=AUother"),
        ("POST", f"/v1beta/models/gemini-2.5-flash:generateContent?upload_id={known}"),
        ("POST", f"/upload/../v1beta/files?upload_id={known}"),
        ("GET", path_of(url)),
        ("POST", "/upload/v1beta/files"),
    ]:
        status, _, body = raw(stack, method, path, {"x-goog-upload-command": "query"}, source)
        assert status in (400, 401), (method, path, status)
        if status == 401:
            assert json.loads(body)["error"]["message"] == "missing token", (method, path)
    assert stack.upstream_requests() == []
    # The real session is untouched by all that.
    assert leg(url, "query").status_code == 200


def test_a_revoked_tokens_session_is_refused_on_its_next_leg(stack):
    created = stack.mint("gemini")
    token = created["token"]
    url = start(stack, token, 3).headers["x-goog-upload-url"]
    assert leg(url, "query").status_code == 200
    stack.cli("tokens", "disable", created["hash"])
    disabled_at = time.monotonic()
    while True:
        r = leg(url, "query")
        if r.status_code != 200:
            break
        assert time.monotonic() - disabled_at < 3.0, "the leg still passed 3 s after the disable"
    assert r.status_code == 401, r.text
    assert r.json() == {"error": {"code": 401, "message": "invalid or revoked token",
                                  "status": "UNAUTHENTICATED"}}
    assert r.headers["x-goog-upload-status"] == "final"
    stack.reset_upstream()
    assert leg(url, "upload, finalize", b"abc", offset=0).status_code == 401
    assert stack.upstream_requests() == []


def test_an_upload_costs_one_rate_limit_unit_however_many_legs(stack):
    # Legs are revalidated (validity only), not checked: a 2 GB file is 256 SDK chunks, and a
    # 429 halfway would waste the upload. The start is an ordinary, counted request.
    token = stack.mint("gemini", "--rate-limit", "2/60")["token"]
    url = start(stack, token, 3).headers["x-goog-upload-url"]
    for _ in range(8):
        assert leg(url, "query").status_code == 200
    assert leg(url, "upload, finalize", b"abc", offset=0).status_code == 200
    generate = f"{stack.url}/v1beta/models/gemini-2.5-flash:generateContent"
    call = lambda: requests.post(generate, json={"contents": []},  # noqa: E731
                                 headers={"x-goog-api-key": token}, timeout=10)
    assert call().status_code == 200, "the legs spent the token's second unit"
    assert call().status_code == 429


def test_foreign_upload_urls_are_left_alone_and_start_no_session(stack):
    token = stack.mint("gemini")["token"]
    r = start(stack, token, 3, headers={"x-mock-upload-base": "https://uploads.example.net"})
    url = r.headers["x-goog-upload-url"]
    assert url.startswith("https://uploads.example.net/upload/v1beta/files?upload_id="), url
    stack.reset_upstream()
    through_proxy = leg(f"{stack.url}{path_of(url)}", "query")
    assert through_proxy.status_code == 401 and through_proxy.json() == UNKNOWN
    assert stack.upstream_requests() == []


def test_a_leg_that_carries_a_token_is_an_ordinary_request(stack):
    token = stack.mint("gemini")["token"]
    url = start(stack, token, 3).headers["x-goog-upload-url"]
    stack.reset_upstream()
    r = leg(url, "upload, finalize", b"abc", offset=0, headers={"x-goog-api-key": token})
    assert r.status_code == 200 and r.headers["x-goog-upload-status"] == "final"
    # An id the proxy never saw is none of its business when the token is valid: forwarded
    # (with the real key) and answered by the provider.
    other = leg(f"{stack.url}/upload/v1beta/files?upload_id=AUnever", "query",
                headers={"x-goog-api-key": token})
    assert other.status_code == 404
    for rec in stack.upstream_requests():
        creds = {n: v for n, v in headers_of(rec).items() if n in CREDENTIAL_HEADERS}
        assert creds == {"x-goog-api-key": [GEMINI_KEY]}
        assert token not in json.dumps(rec["headers"]) + rec["path"]


def test_guessing_upload_ids_is_throttled_and_a_known_upload_keeps_working(stack):
    token = stack.mint("gemini")["token"]
    source = "127.0.0.32"
    conn = http.client.HTTPConnection("127.0.0.1", stack.proxy_port, timeout=10,
                                      source_address=(source, 0))
    conn.request("POST", "/upload/v1beta/files", body=b"{}", headers={
        "x-goog-api-key": token, "x-goog-upload-protocol": "resumable",
        "x-goog-upload-command": "start", "x-goog-upload-header-content-length": "3",
        "content-type": "application/json"})
    started = conn.getresponse()
    started.read()
    conn.close()
    assert started.status == 200
    url = started.getheader("x-goog-upload-url")
    codes = [raw(stack, "POST", f"/upload/v1beta/files?upload_id=AUguess{n:04d}",
                 {"x-goog-upload-command": "query"}, source)[0] for n in range(60)]
    # 20 refusals per address per worker (the default), two workers.
    assert codes.count(401) <= 40 and codes.count(429) >= 20, codes
    status, headers, _ = raw(stack, "POST", path_of(url), {"x-goog-upload-command": "query"}, source)
    assert status == 200, "the address's own upload stopped working"
    assert headers["x-goog-upload-status"] == "active"


def test_logs_hold_no_upload_id_token_or_key(stack):
    token = stack.mint("gemini")["token"]
    url = start(stack, token, 3).headers["x-goog-upload-url"]
    assert leg(url, "upload, finalize", b"abc", offset=0).status_code == 200
    leg(f"{stack.url}/upload/v1beta/files?upload_id=AUforgedforlogs", "query")
    time.sleep(1.2)  # access log flush
    logs = stack.logs()
    for secret in (upload_id(url), "AUforgedforlogs", token, *REAL_KEYS.values()):
        assert secret not in logs


def test_the_table_is_bounded_and_overflow_evicts_older_sessions(make_stack):
    slots = 16
    # The guess throttle off: the evicted sessions' legs below are refusals from one address.
    small = make_stack(plugin_config={"uploads": {"slots": slots},
                                      "guess_throttle": {"enabled": False}})
    token = small.mint("gemini", "--rate-limit", "1000/60")["token"]
    urls = []
    for _ in range(3 * slots):
        r = start(small, token, 3)
        assert r.status_code == 200, r.text
        urls.append(r.headers["x-goog-upload-url"])
        # The newest session always works.
        assert leg(urls[-1], "query").status_code == 200
    alive = [u for u in urls if leg(u, "query").status_code == 200]
    assert len(alive) <= slots, f"{len(alive)} sessions in a table of {slots}"
    assert urls[-1] in alive
    # A full table: every slot is live, and still no forged id matches one.
    for n in range(32):
        forged = leg(f"{small.url}/upload/v1beta/files?upload_id=AUforged{n:03d}", "query")
        assert forged.status_code == 401 and forged.json() == UNKNOWN
    time.sleep(1.2)  # counters flush on the tick
    assert stat(small.admin_port, "wasmcustom.ptk.upload.sessions_started") == 3 * slots
    assert stat(small.admin_port, "wasmcustom.ptk.upload.sessions_evicted") >= 2 * slots
    assert stat(small.admin_port, "wasmcustom.ptk.refused.unknown_upload") >= 2 * slots + 32
