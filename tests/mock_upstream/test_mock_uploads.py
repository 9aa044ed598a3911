"""Self-tests of the mock's resumable upload protocol (`uploads.py`). Run from the repo root:

    .venv/bin/python -m pytest tests/mock_upstream -q
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import urlsplit

import pytest
import requests

from .server import MockUpstreamServer
from .uploads import GRANULARITY


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


def start(mock, size: int, extra: dict[str, str] | None = None, path: str = "/upload/v1beta/files"):
    headers = {
        "x-goog-upload-protocol": "resumable",
        "x-goog-upload-command": "start",
        "x-goog-upload-header-content-length": str(size),
        "x-goog-upload-header-content-type": "text/plain",
        **(extra or {}),
    }
    return requests.post(mock.base_url + path, json={"file": {"displayName": "notes"}},
                         headers=headers, timeout=5)


def leg(mock, url: str, command: str, body: bytes = b"", offset: int | None = None):
    """Sends a leg to the mock itself, whatever host the upload URL names."""
    parts = urlsplit(url)
    headers = {"x-goog-upload-command": command}
    if offset is not None:
        headers["x-goog-upload-offset"] = str(offset)
    return requests.post(f"{mock.base_url}{parts.path}?{parts.query}", data=body,
                         headers=headers, timeout=10)


def test_start_answers_googles_headers_and_no_body(mock):
    r = start(mock, 5)
    assert r.status_code == 200 and r.content == b""
    url = r.headers["x-goog-upload-url"]
    assert r.headers["x-goog-upload-control-url"] == url
    assert r.headers["x-goog-upload-status"] == "active"
    assert r.headers["x-goog-upload-chunk-granularity"] == str(GRANULARITY)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https", "generativelanguage.googleapis.com", "/upload/v1beta/files")
    assert parts.query.endswith("&upload_protocol=resumable")
    assert r.headers["x-guploader-uploadid"] in parts.query
    foreign = start(mock, 5, {"x-mock-upload-base": "https://uploads.example.net:8443"})
    assert foreign.headers["x-goog-upload-url"].startswith(
        "https://uploads.example.net:8443/upload/v1beta/files?upload_id=")
    doubled = start(mock, 5, path="//upload/v1beta/files")
    assert urlsplit(doubled.headers["x-goog-upload-url"]).path == "/upload/v1beta/files"


def test_chunks_then_finalize_give_the_file_with_its_hash(mock):
    data = b"a" * GRANULARITY + b"tail"
    url = start(mock, len(data)).headers["x-goog-upload-url"]
    first = leg(mock, url, "upload", data[:GRANULARITY], offset=0)
    assert first.status_code == 200 and first.headers["x-goog-upload-status"] == "active"
    q = leg(mock, url, "query")
    assert q.headers["x-goog-upload-size-received"] == str(GRANULARITY)
    last = leg(mock, url, "upload, finalize", data[GRANULARITY:], offset=GRANULARITY)
    assert last.status_code == 200, last.text
    assert last.headers["x-goog-upload-status"] == "final"
    f = last.json()["file"]
    assert f["sizeBytes"] == str(len(data)) and f["displayName"] == "notes"
    assert f["mimeType"] == "text/plain" and f["state"] == "ACTIVE"
    assert base64.b64decode(f["sha256Hash"]).decode() == hashlib.sha256(data).hexdigest()
    sha = hashlib.sha256(data).hexdigest()
    [summary] = [s for s in requests.get(mock.base_url + "/__mock/uploads", timeout=5).json()
                 if s["sha256"] == sha]
    assert summary["state"] == "final" and summary["size"] == len(data)
    again = leg(mock, url, "upload", b"x", offset=len(data))
    assert again.status_code == 400 and again.headers["x-goog-upload-status"] == "final"


def test_protocol_errors(mock):
    url = start(mock, 10).headers["x-goog-upload-url"]
    wrong_offset = leg(mock, url, "upload", b"abc", offset=3)
    assert wrong_offset.status_code == 400 and wrong_offset.headers["x-goog-upload-status"] == "active"
    not_granular = leg(mock, url, "upload", b"abc", offset=0)
    assert not_granular.status_code == 400
    short = leg(mock, url, "upload, finalize", b"abc", offset=0)
    assert short.status_code == 400 and "declared" in short.json()["error"]["message"]
    cancelled = leg(mock, url, "cancel")
    assert cancelled.headers["x-goog-upload-status"] == "cancelled"
    unknown = leg(mock, url.replace("upload_id=AU", "upload_id=XX"), "query")
    assert unknown.status_code == 404 and unknown.headers["x-goog-upload-status"] == "final"
    assert unknown.json()["error"]["status"] == "NOT_FOUND"
    no_id = requests.post(mock.base_url + "/upload/v1beta/files", headers={"x-goog-upload-command": "upload"},
                          timeout=5)
    assert no_id.status_code == 400
