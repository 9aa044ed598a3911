"""Google's resumable upload protocol, as generativelanguage.googleapis.com speaks it for
`POST /upload/v1beta/files` (what `google-genai`'s and `@google/genai`'s `files.upload()` use).

Start: `POST /upload/...` with `x-goog-upload-protocol: resumable`, `x-goog-upload-command:
start`, `x-goog-upload-header-content-length` / `-content-type` and a JSON `{"file": {...}}`
body. The answer is 200 with an empty body and `x-goog-upload-status: active`,
`x-goog-upload-url` and `x-goog-upload-control-url` (the same absolute URL on Google's host,
`/upload/v1beta/files?upload_id=…&upload_protocol=resumable`), `x-goog-upload-chunk-granularity:
8388608` and `x-guploader-uploadid`.

Legs go to that URL, without any key (the upload id is the capability), each with an
`x-goog-upload-command`:

* `upload` (+ `x-goog-upload-offset`): the offset must be the bytes received so far and every
  chunk but the last a multiple of the granularity; 200 `active`.
* `upload, finalize` or `finalize`: the total must be the declared size; 200 `final` with
  `{"file": {...}}` (name, sizeBytes, sha256Hash, uri, state ACTIVE, ...).
* `query`: 200 with the status and `x-goog-upload-size-received`.
* `cancel`: 200 `cancelled`.

An unknown upload id gets 404, and a leg on a finished session 400, both with
`x-goog-upload-status: final` (the SDKs stop on that header). Errors come in Gemini's shape.

Test-only control: a start request's `x-mock-upload-base: https://host[:port]` puts the upload
URL on that base instead of Google's (to test URLs on a foreign host).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

GOOGLE_BASE = "https://generativelanguage.googleapis.com"
GRANULARITY = 8 * 1024 * 1024
FILE_LIFETIME_S = 48 * 3600


def is_upload_path(path: str) -> bool:
    return ("/" + path.lstrip("/")).startswith("/upload/")


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1e6) % 10**6:06d}Z"


@dataclass
class Session:
    upload_id: str
    declared_size: int | None
    mime_type: str
    display_name: str | None
    name: str
    created: float
    received: bytearray = field(default_factory=bytearray)
    state: str = "active"  # active | final | cancelled

    def file(self) -> dict[str, Any]:
        digest = hashlib.sha256(self.received).hexdigest()
        out = {
            "name": self.name,
            "mimeType": self.mime_type,
            "sizeBytes": str(len(self.received)),
            "createTime": _iso(self.created),
            "updateTime": _iso(time.time()),
            "expirationTime": _iso(self.created + FILE_LIFETIME_S),
            # Google sends the hex digest, base64-encoded.
            "sha256Hash": base64.b64encode(digest.encode()).decode(),
            "uri": f"{GOOGLE_BASE}/v1beta/{self.name}",
            "state": "ACTIVE",
            "source": "UPLOADED",
        }
        if self.display_name is not None:
            out["displayName"] = self.display_name
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "display_name": self.display_name,
            "mime_type": self.mime_type,
            "declared_size": self.declared_size,
            "size": len(self.received),
            "sha256": hashlib.sha256(self.received).hexdigest(),
            "state": self.state,
        }


class Uploads:
    """The sessions a mock has started. Thread-safe for the in-process control API."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def summaries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [s.summary() for s in self._sessions.values()]

    def reset(self) -> None:
        with self._lock:
            self._sessions.clear()

    def handle(self, request: web.Request, body: bytes) -> web.Response:
        command = request.headers.get("x-goog-upload-command", "").lower()
        commands = [c.strip() for c in command.split(",") if c.strip()]
        if "start" in commands:
            return self._start(request, body)
        upload_id = request.query.get("upload_id")
        if not upload_id:
            return _error(400, "INVALID_ARGUMENT", "resumable upload without an upload_id")
        with self._lock:
            session = self._sessions.get(upload_id)
            if session is None:
                return _error(404, "NOT_FOUND", "upload session not found", status_header="final")
            return self._leg(session, commands, request, body)

    def _start(self, request: web.Request, body: bytes) -> web.Response:
        if request.method != "POST":
            return _error(405, "INVALID_ARGUMENT", "start must be a POST")
        if request.headers.get("x-goog-upload-protocol", "").lower() != "resumable":
            return _error(400, "INVALID_ARGUMENT", "only the resumable protocol is supported")
        try:
            meta = json.loads(body) if body else {}
        except ValueError:
            return _error(400, "INVALID_ARGUMENT", "metadata is not JSON")
        file_meta = meta.get("file") if isinstance(meta, dict) else None
        file_meta = file_meta if isinstance(file_meta, dict) else {}
        size_header = request.headers.get("x-goog-upload-header-content-length")
        try:
            declared = int(size_header) if size_header is not None else None
        except ValueError:
            return _error(400, "INVALID_ARGUMENT", "bad x-goog-upload-header-content-length")
        mime = (request.headers.get("x-goog-upload-header-content-type")
                or file_meta.get("mimeType") or file_meta.get("mime_type")
                or "application/octet-stream")
        name = file_meta.get("name") or f"files/{secrets.token_hex(6)}"
        upload_id = "AU" + secrets.token_urlsafe(48)
        with self._lock:
            self._sessions[upload_id] = Session(
                upload_id=upload_id, declared_size=declared, mime_type=mime,
                display_name=file_meta.get("displayName") or file_meta.get("display_name"),
                name=name, created=time.time(),
            )
        base = request.headers.get("x-mock-upload-base") or GOOGLE_BASE
        path = "/" + request.path.lstrip("/")
        url = f"{base.rstrip('/')}{path}?upload_id={upload_id}&upload_protocol=resumable"
        return web.Response(status=200, body=b"", headers={
            "content-type": "text/plain; charset=utf-8",
            "x-goog-upload-status": "active",
            "x-goog-upload-url": url,
            "x-goog-upload-control-url": url,
            "x-goog-upload-chunk-granularity": str(GRANULARITY),
            "x-guploader-uploadid": upload_id,
        })

    def _leg(self, s: Session, commands: list[str], request: web.Request,
             body: bytes) -> web.Response:
        if s.state != "active":
            if commands == ["query"]:
                return _status(s)
            return _error(400, "FAILED_PRECONDITION", f"upload session is {s.state}",
                          status_header="final")
        if commands == ["query"]:
            return _status(s)
        if commands == ["cancel"]:
            s.state = "cancelled"
            return web.Response(status=200, body=b"", headers={"x-goog-upload-status": "cancelled"})
        finalize = "finalize" in commands
        if "upload" in commands:
            try:
                offset = int(request.headers.get("x-goog-upload-offset", ""))
            except ValueError:
                return _error(400, "INVALID_ARGUMENT", "upload without x-goog-upload-offset",
                              status_header="active")
            if offset != len(s.received):
                return _error(400, "INVALID_ARGUMENT",
                              f"offset {offset} but {len(s.received)} bytes received",
                              status_header="active")
            if not finalize and len(body) % GRANULARITY:
                return _error(400, "INVALID_ARGUMENT",
                              "only the last chunk may be a non-multiple of the granularity",
                              status_header="active")
            s.received += body
        elif not finalize:
            return _error(400, "INVALID_ARGUMENT", f"unknown upload command {commands!r}",
                          status_header="active")
        if not finalize:
            return web.Response(status=200, body=b"", headers={"x-goog-upload-status": "active"})
        if s.declared_size is not None and len(s.received) != s.declared_size:
            return _error(400, "INVALID_ARGUMENT",
                          f"{len(s.received)} bytes received, {s.declared_size} declared",
                          status_header="active")
        s.state = "final"
        return web.json_response({"file": s.file()}, headers={"x-goog-upload-status": "final"})


def _status(s: Session) -> web.Response:
    headers = {"x-goog-upload-status": s.state, "x-goog-upload-size-received": str(len(s.received))}
    if s.state == "active":
        headers["x-goog-upload-chunk-granularity"] = str(GRANULARITY)
        return web.Response(status=200, body=b"", headers=headers)
    return web.json_response({"file": s.file()}, headers=headers)


def _error(code: int, status: str, message: str, status_header: str | None = None) -> web.Response:
    headers = {"x-goog-upload-status": status_header} if status_header else {}
    return web.json_response({"error": {"code": code, "message": message, "status": status}},
                             status=code, headers=headers)
