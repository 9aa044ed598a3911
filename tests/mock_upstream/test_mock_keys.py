"""Self-tests of the mock's per-key answers (``POST /__mock/keys``)."""

from __future__ import annotations

import pytest
import requests

from .server import MockUpstreamServer

CHAT = {"model": "m", "messages": []}


@pytest.fixture(scope="module")
def mock():
    srv = MockUpstreamServer(port=0)
    srv.start()
    yield srv
    srv.stop()


def chat(mock, key: str) -> requests.Response:
    return requests.post(f"{mock.base_url}/v1/chat/completions", json=CHAT, timeout=5,
                         headers={"authorization": f"Bearer {key}"})


def test_each_key_gets_its_own_answer_and_a_post_replaces_the_table(mock):
    table = {"sk-hot": {"status": 429, "headers": {"retry-after": "2"}},
             "sk-bad": {"error": "invalid_key"}}
    assert requests.post(f"{mock.base_url}/__mock/keys", json=table, timeout=5).ok
    assert requests.get(f"{mock.base_url}/__mock/keys", timeout=5).json() == table
    hot = chat(mock, "sk-hot")
    assert hot.status_code == 429 and hot.headers["retry-after"] == "2"
    assert "error" in hot.json()
    bad = chat(mock, "sk-bad")
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"
    gemini = requests.post(f"{mock.base_url}/v1beta/models/g:generateContent", json={},
                           headers={"x-goog-api-key": "sk-bad"}, timeout=5)
    assert gemini.status_code == 400 and "API_KEY_INVALID" in gemini.text
    assert chat(mock, "sk-other").status_code == 200
    assert requests.post(f"{mock.base_url}/__mock/keys", json={}, timeout=5).ok
    assert chat(mock, "sk-hot").status_code == 200
    assert requests.post(f"{mock.base_url}/__mock/keys", json=[1], timeout=5).status_code == 400
