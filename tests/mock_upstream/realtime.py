"""OpenAI Realtime client secrets (``ek_…``) as the real API mints and accepts them.

Minting (shapes from the ``openai`` 6.49 / 3.57 SDK types):

- ``POST /v1/realtime/client_secrets`` and ``POST /v1/realtime/translations/client_secrets``
  (GA): ``{"value": "ek_…", "expires_at": <unix s>, "session": {…}}``; the lifetime is the
  body's ``expires_after.seconds`` (default 600).
- ``POST /v1/realtime/sessions`` and ``POST /v1/realtime/transcription_sessions`` (beta): a
  session object with ``"client_secret": {"value": "ek_…", "expires_at": <unix s>}``; the
  lifetime is ``client_secret.expires_after.seconds`` (default 60).

Minting needs a credential that is not itself a client secret. Using a secret: the WebRTC
``POST /v1/realtime/calls`` (GA) or ``POST /v1/realtime`` (beta) answers 201 with an SDP
answer; a WebSocket handshake is accepted as any other. Either way a credential that starts
with ``ek_`` must be one this mock minted and not yet expired, else 401 in OpenAI's shape,
as OpenAI does. Minted secrets are listed by ``GET /__mock/client_secrets``.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any

from aiohttp import web

from . import fixtures as fx
from .key_errors import received_key

GA_MINT = ("/v1/realtime/client_secrets", "/v1/realtime/translations/client_secrets")
BETA_MINT = ("/v1/realtime/sessions", "/v1/realtime/transcription_sessions")
CALLS = ("/v1/realtime/calls", "/v1/realtime")

SDP_ANSWER = (
    "v=0\r\no=- 4215775240449105457 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "a=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
    "a=mid:0\r\na=sendrecv\r\na=rtpmap:111 opus/48000/2\r\n"
)


def _seconds(holder: Any, default: int) -> int:
    after = holder.get("expires_after") if isinstance(holder, dict) else None
    seconds = after.get("seconds") if isinstance(after, dict) else None
    return seconds if isinstance(seconds, int) and seconds > 0 else default


def _refused(message: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "invalid_request_error", "param": None,
                   "code": "invalid_api_key"}},
        status=401, headers={"x-request-id": fx._uid("req_")})


class Realtime:
    """The secrets this mock minted, and the endpoints that mint and use them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._minted: dict[str, int] = {}

    @staticmethod
    def handles(method: str, path: str) -> bool:
        return method == "POST" and path in GA_MINT + BETA_MINT + CALLS

    def summaries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"value": v, "expires_at": e} for v, e in self._minted.items()]

    def _mint(self, seconds: int) -> tuple[str, int]:
        value = "ek_" + secrets.token_hex(16)
        expires_at = int(time.time()) + seconds
        with self._lock:
            self._minted[value] = expires_at
        return value, expires_at

    def refusal(self, request: web.Request) -> web.Response | None:
        """401 for a client secret this mock never minted, or one that expired."""
        key = received_key(request)
        if not key.startswith("ek_"):
            return None
        with self._lock:
            expires_at = self._minted.get(key)
        if expires_at is None:
            return _refused("Invalid ephemeral key provided.")
        if time.time() >= expires_at:
            return _refused("Ephemeral key expired.")
        return None

    def handle(self, request: web.Request, body: bytes) -> web.Response:
        path = request.path
        if path in CALLS:
            refused = self.refusal(request)
            if refused is not None:
                return refused
            call = fx._uid("rtc_")
            return web.Response(status=201, text=SDP_ANSWER, content_type="application/sdp",
                                headers={"location": f"/v1/realtime/calls/{call}",
                                         "x-request-id": fx._uid("req_")})
        if received_key(request).startswith("ek_"):
            return _refused("A client secret cannot mint another one.")
        try:
            req = json.loads(body) if body else {}
        except ValueError:
            req = {}
        req = req if isinstance(req, dict) else {}
        headers = {"x-request-id": fx._uid("req_")}
        if path in GA_MINT:
            value, expires_at = self._mint(_seconds(req, 600))
            session = req.get("session") if isinstance(req.get("session"), dict) else {}
            answer = {"value": value, "expires_at": expires_at, "session": {
                "type": session.get("type", "realtime"), "object": "realtime.session",
                "id": fx._uid("sess_"), "model": session.get("model", "gpt-realtime"),
                "instructions": session.get("instructions", ""), "expires_at": 0}}
            return web.json_response(answer, headers=headers)
        value, expires_at = self._mint(_seconds(req.get("client_secret"), 60))
        obj = ("realtime.transcription_session" if path.endswith("transcription_sessions")
               else "realtime.session")
        answer = {"id": fx._uid("sess_"), "object": obj,
                  "model": req.get("model", "gpt-4o-realtime-preview"), "expires_at": 0,
                  "client_secret": {"value": value, "expires_at": expires_at}}
        return web.json_response(answer, headers=headers)
