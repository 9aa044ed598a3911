"""google-genai (Python 3.x) `files.upload()`: a resumable upload. The start call carries the token
(`x-goog-api-key`) to `/upload/v1/files`; the SDK then sends the bytes, with no key, to the
`x-goog-upload-url` it got back exactly as it is. The proxy must have pointed that URL at itself
(plain or TLS listener, as the client addressed it) and forward those keyless legs for the
session it started: the mock must receive every byte, the start with the real key, the legs with
no credential, and the token nowhere."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
import ssl
import time

import pytest
import requests
from google import genai
from google.genai import errors, types

from tests.compat.checks import GOOG_GEMINI, assert_forwarded, recorded

PROVIDER = "gemini"
CHUNK = 8 * 1024 * 1024  # the SDK's chunk size
START = "/upload/v1/files"  # google-genai 3.x defaults to API version v1


def client(stack, token: str, tls: bool = False) -> genai.Client:
    options = types.HttpOptions(base_url=stack.url, retry_options=types.HttpRetryOptions(attempts=1))
    if tls:
        # Only because the test CA is private: trust it (httpx for sync, aiohttp for async).
        ctx = ssl.create_default_context(cafile=str(stack.ca_cert))
        options = types.HttpOptions(base_url=stack.tls_url, client_args={"verify": ctx},
                                    async_client_args={"ssl": ctx},
                                    retry_options=types.HttpRetryOptions(attempts=1))
    return genai.Client(api_key=token, http_options=options)


def body_bytes(record: dict) -> bytes:
    if record.get("body_base64"):
        return base64.b64decode(record["body"])
    return (record["body"] or "").encode()


def assert_uploaded(stack, token: str, data: bytes, legs: int) -> None:
    """The start went up with the real key; every leg with no credential and the file's bytes
    in order; the mock assembled exactly `data`."""
    start, *sent = recorded(stack)
    assert_forwarded(start, token, GOOG_GEMINI, path=START)
    assert len(sent) == legs, [r["path"] for r in sent]
    for rec in sent:
        assert rec["path"].startswith(f"{START}?upload_id="), rec["path"]
        assert_forwarded(rec, token, {})  # no credential at all: the upload id is the capability
    assert b"".join(body_bytes(r) for r in sent) == data
    sha = hashlib.sha256(data).hexdigest()
    sessions = requests.get(f"{stack.mock_url}/__mock/uploads", timeout=5).json()
    assert [s["state"] for s in sessions if s["sha256"] == sha] == ["final"]


@pytest.mark.parametrize("listener", ["plain", "tls"])
def test_upload_bytes(stack, tokens, listener):
    token = tokens.good("gemini")
    data = os.urandom(100_000)
    c = client(stack, token, tls=listener == "tls")
    f = c.files.upload(file=io.BytesIO(data),
                       config={"mime_type": "application/octet-stream", "display_name": "blob"})
    assert f.name.startswith("files/") and f.size_bytes == len(data)
    assert f.display_name == "blob" and f.state == types.FileState.ACTIVE
    assert base64.b64decode(f.sha256_hash).decode() == hashlib.sha256(data).hexdigest()
    assert_uploaded(stack, token, data, legs=1)


def test_upload_a_file_in_chunks_async(stack, tokens, tmp_path):
    token = tokens.good("gemini")
    data = os.urandom(CHUNK) + b"and a tail"
    path = tmp_path / "notes.txt"
    path.write_bytes(data)
    c = client(stack, token)
    f = asyncio.run(asyncio.wait_for(c.aio.files.upload(file=str(path)), 60))
    assert f.size_bytes == len(data) and f.mime_type == "text/plain"
    assert_uploaded(stack, token, data, legs=2)


def test_a_revoked_token_uploads_nothing(stack, tokens):
    token = tokens.revoked()
    c = client(stack, token)  # kept: a dropped client closes its connection pool
    with pytest.raises(errors.ClientError) as exc:
        c.files.upload(file=io.BytesIO(b"abc"), config={"mime_type": "text/plain"})
    assert exc.value.code == 401 and exc.value.message == "invalid or revoked token"
    assert recorded(stack) == []


def test_a_token_revoked_mid_upload_stops_the_legs_with_a_401(stack, tokens):
    created = stack.mint("gemini")
    token = created["token"]
    c = client(stack, token)
    send_bytes = c._api_client._upload_fd

    def revoke_then_send(*args, **kwargs):
        # Between the start and the first leg (only the interleaving needs the private hook),
        # and past the verdict cache's 1 s TTL, which bounds how late a revocation lands.
        stack.cli("tokens", "disable", created["hash"])
        time.sleep(1.5)
        return send_bytes(*args, **kwargs)

    c._api_client._upload_fd = revoke_then_send
    started = time.monotonic()
    with pytest.raises(errors.ClientError) as exc:
        c.files.upload(file=io.BytesIO(os.urandom(CHUNK) + b"x"), config={"mime_type": "text/plain"})
    assert exc.value.code == 401 and exc.value.message == "invalid or revoked token"
    # `x-goog-upload-status: final` on the refusal: the SDK stops instead of retrying 3 times.
    assert time.monotonic() - started < 5
    [start] = recorded(stack)
    assert start["path"] == START, "a leg of the revoked token went up"
