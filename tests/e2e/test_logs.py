"""No token and no real key in any log: Envoy's access log and its own log, the token-service's
log and the mock's. Runs traffic of every kind (allowed, refused, ?key=) through one stack
first, then reads everything it wrote."""

from __future__ import annotations

import requests

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
