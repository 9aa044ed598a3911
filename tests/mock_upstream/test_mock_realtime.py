"""Self-tests of the mock's OpenAI Realtime client secrets (`realtime.py`). Run from the repo
root:

    .venv/bin/python -m pytest tests/mock_upstream -q
"""

from __future__ import annotations

import time

import pytest
import requests

from .server import MockUpstreamServer

REAL = {"authorization": "Bearer sk-real"}


@pytest.fixture(scope="module")
def mock():
    srv = MockUpstreamServer(port=0)
    srv.start()
    yield srv
    srv.stop()


def post(mock, path: str, headers: dict, **kw) -> requests.Response:
    return requests.post(mock.base_url + path, headers=headers, timeout=5, **kw)


@pytest.mark.parametrize("path", ["/v1/realtime/client_secrets",
                                  "/v1/realtime/translations/client_secrets"])
def test_ga_minting(mock, path):
    before = time.time()
    r = post(mock, path, REAL, json={"expires_after": {"anchor": "created_at", "seconds": 30},
                                     "session": {"type": "realtime", "model": "gpt-realtime"}})
    assert r.status_code == 200
    body = r.json()
    assert body["value"].startswith("ek_") and len(body["value"]) == 35
    assert before + 29 <= body["expires_at"] <= time.time() + 31
    assert body["session"]["model"] == "gpt-realtime"
    assert {"value": body["value"], "expires_at": body["expires_at"]} in requests.get(
        mock.base_url + "/__mock/client_secrets", timeout=5).json()


@pytest.mark.parametrize("path", ["/v1/realtime/sessions", "/v1/realtime/transcription_sessions"])
def test_beta_minting(mock, path):
    r = post(mock, path, REAL, json={"model": "gpt-4o-realtime-preview"})
    secret = r.json()["client_secret"]
    assert secret["value"].startswith("ek_")
    assert secret["expires_at"] <= time.time() + 61


def test_secrets_are_accepted_only_as_minted(mock):
    ek = post(mock, "/v1/realtime/client_secrets", REAL, json={}).json()["value"]
    sdp = {"content-type": "application/sdp"}
    ok = post(mock, "/v1/realtime/calls", {"authorization": f"Bearer {ek}", **sdp}, data="v=0")
    assert ok.status_code == 201 and ok.text.startswith("v=0")
    assert ok.headers["location"].startswith("/v1/realtime/calls/rtc_")
    never = post(mock, "/v1/realtime/calls", {"authorization": "Bearer ek_nope", **sdp}, data="v=0")
    assert never.status_code == 401 and never.json()["error"]["code"] == "invalid_api_key"
    assert post(mock, "/v1/realtime/client_secrets",
                {"authorization": f"Bearer {ek}"}, json={}).status_code == 401
    short = post(mock, "/v1/realtime/client_secrets", REAL,
                 json={"expires_after": {"anchor": "created_at", "seconds": 1}}).json()["value"]
    time.sleep(1.1)
    assert post(mock, "/v1/realtime", {"authorization": f"Bearer {short}"}).status_code == 401
