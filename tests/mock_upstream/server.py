"""aiohttp mock upstream standing in for api.openai.com, api.anthropic.com and
generativelanguage.googleapis.com. See ``__init__`` for the public API.

It never writes request headers, bodies or paths to stdout/stderr: the only
output is the readiness line (CLI) and, optionally, ``<METHOD> <status>`` per
recorded request on stderr.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import sys
import threading
import time
from typing import Any

from aiohttp import WSMsgType, web

from . import fixtures as fx
from .realtime import Realtime
from .uploads import Uploads, is_upload_path
from . import fixed_body, geo_block, key_errors, response_headers
from .key_behaviour import KeyBehaviour

HOLD_TIMEOUT_S = 20.0
CONTROL_PREFIX = "/__mock/"

# A logger for aiohttp's server internals that never prints details (error
# messages from the HTTP parser can quote the request line / headers).
_quiet_logger = logging.getLogger("tests.mock_upstream.aiohttp")
_quiet_logger.propagate = False
_quiet_logger.addHandler(logging.NullHandler())


class _DropProtocolWarning(logging.Filter):
    # aiohttp logs the offered subprotocols (which may carry
    # ``openai-insecure-api-key.<secret>``) when none overlaps.
    def filter(self, record: logging.LogRecord) -> bool:
        return "Client protocols" not in str(record.msg)


logging.getLogger("aiohttp.websocket").addFilter(_DropProtocolWarning())


class State:
    """Recorded requests and held streams. Thread-safe for reads/resets from
    other threads (the in-process API)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self._seq = 0
        self.held: set[asyncio.Event] = set()
        self.uploads = Uploads()
        self.realtime = Realtime()
        #: What each API key is answered (``POST /__mock/keys``).
        self.keys = KeyBehaviour()
        #: Plays an egress in a supported region: ``x-mock-geo: block`` is ignored.
        self.region_supported = False

    def add(self, record: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._seq += 1
            record["seq"] = self._seq
            self._records.append(record)
        return record

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return json.loads(json.dumps(self._records))

    def reset(self) -> None:
        with self._lock:
            self._records.clear()

    def release(self) -> int:
        n = len(self.held)
        for ev in list(self.held):
            ev.set()
        self.held.clear()
        return n


# ---------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------

_GEMINI_V1_MODEL = re.compile(r"^/v1/models/[^/]+:")
_GEMINI_MODEL_IN_PATH = re.compile(r"/models/([^/:]+)")


def classify(path: str, method: str, headers: Any) -> tuple[str, str]:
    """Return ``(provider, endpoint)``; provider is openai|anthropic|gemini."""
    if "/v1beta/openai/" in path:
        return "openai", _openai_endpoint(path, method)
    if (
        path.startswith("/v1beta/")
        or path.startswith("/v1alpha/")
        or _GEMINI_V1_MODEL.match(path)
        or ":generateContent" in path
        or ":streamGenerateContent" in path
    ):
        if ":streamGenerateContent" in path or ":generateContent" in path:
            return "gemini", "generate"
        if "/cachedContents" in path:
            return "gemini", "cached_content"
        if ":batchEmbedContents" in path:
            return "gemini", "batch_embed"
        if ":embedContent" in path:
            return "gemini", "embed"
        if ":countTokens" in path:
            return "gemini", "count_tokens"
        if method == "GET" and re.search(r"/models/?$", path):
            return "gemini", "models"
        if method == "GET" and re.search(r"/models/[^/:]+$", path):
            return "gemini", "model"
        return "gemini", "generate"
    if "/v1/messages" in path:
        if path.rstrip("/").endswith("/count_tokens"):
            return "anthropic", "count_tokens"
        return "anthropic", "messages"
    if method == "GET" and re.search(r"/v1/models(/[^/]+)?/?$", path) and "anthropic-version" in headers:
        return "anthropic", "models"
    return "openai", _openai_endpoint(path, method)


def _openai_endpoint(path: str, method: str) -> str:
    if re.search(r"/responses(/|$)", path):
        return "responses"
    if re.search(r"/embeddings/?$", path):
        return "embeddings"
    if method == "GET" and re.search(r"/models/?$", path):
        return "models"
    if method == "GET" and re.search(r"/models/[^/]+$", path):
        return "model"
    return "chat"


def _is_stream(path: str, query: Any, body: Any) -> bool:
    if "streamGenerateContent" in path:
        return True
    if "sse" in query.getall("alt", []):
        return True
    return isinstance(body, dict) and body.get("stream") is True


def _override_status(request: web.Request) -> int | None:
    raw = request.headers.get("x-mock-status") or request.query.get("mock_status")
    if not raw:
        return None
    try:
        status = int(raw.strip())
    except ValueError:
        return None
    return status if 400 <= status <= 599 else None


def _decode_header(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


def _record(state: State, request: web.Request, kind: str, body: bytes, received: float) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
        b64 = False
    except UnicodeDecodeError:
        text = base64.b64encode(body).decode("ascii")
        b64 = True
    return state.add(
        {
            "kind": kind,
            "method": request.method,
            "path": request.raw_path,
            "headers": [[_decode_header(k).lower(), _decode_header(v)] for k, v in request.raw_headers],
            "body": text,
            "body_base64": b64,
            "time": received,
        }
    )


# ---------------------------------------------------------------------------
# app
# ---------------------------------------------------------------------------


def make_app(state: State, log: bool = True) -> web.Application:
    app = web.Application(client_max_size=256 * 1024 * 1024)

    def log_line(method: str, status: int) -> None:
        if log:
            print(f"mock-upstream {method} {status}", file=sys.stderr, flush=True)

    async def control(request: web.Request) -> web.StreamResponse:
        name = request.path[len(CONTROL_PREFIX):].strip("/")
        if name == "requests" and request.method == "GET":
            return web.json_response(state.snapshot())
        if name == "last" and request.method == "GET":
            snap = state.snapshot()
            return web.json_response(snap[-1] if snap else None)
        if name == "reset" and request.method == "POST":
            state.reset()
            return web.json_response({"ok": True})
        if name == "uploads" and request.method == "GET":
            return web.json_response(state.uploads.summaries())
        if name == "client_secrets" and request.method == "GET":
            return web.json_response(state.realtime.summaries())
        if name == "release" and request.method == "POST":
            return web.json_response({"ok": True, "released": state.release()})
        if name == "keys" and request.method == "GET":
            return web.json_response(state.keys.table())
        if name == "keys" and request.method == "POST":
            try:
                ok = state.keys.set(await request.json())
            except ValueError:
                ok = False
            if not ok:
                return web.json_response({"error": "expected {\"<key>\": {...}}"}, status=400)
            return web.json_response({"ok": True})
        if name == "health" and request.method in ("GET", "HEAD"):
            return web.json_response({"ok": True})
        return web.json_response({"error": "unknown mock control endpoint"}, status=404)

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await control(request)
        received = time.time()
        if request.headers.get("Upgrade", "").lower() == "websocket":
            resp = await handle_ws(request, received)
            log_line(request.method, resp.status)
            return resp
        body = await request.read()
        _record(state, request, "http", body, received)
        resp = await handle_http(request, body)
        response_headers.maybe_gzip(request, resp)
        # A held non-streaming response: nothing is sent until release (SSE holds after the
        # first event, in _sse), like a completion the provider is still working on.
        if isinstance(resp, web.Response) and _held(request):
            await _wait_for_release()
        log_line(request.method, resp.status)
        return resp

    def _held(request: web.Request) -> bool:
        return request.headers.get("x-mock-hold", "").strip() == "1"

    async def _wait_for_release() -> None:
        hold = asyncio.Event()
        state.held.add(hold)
        try:
            await asyncio.wait_for(hold.wait(), HOLD_TIMEOUT_S)
        except asyncio.TimeoutError:
            pass
        finally:
            state.held.discard(hold)

    async def handle_http(request: web.Request, body: bytes) -> web.StreamResponse:
        path = request.path
        if is_upload_path(path):
            status = _override_status(request)
            if status is not None:
                return _json("gemini", fx.error_body("gemini", status), status)
            return state.uploads.handle(request, body)
        provider, endpoint = classify(path, request.method, request.headers)
        status = _override_status(request)
        if status is None and Realtime.handles(request.method, path):
            return state.realtime.handle(request, body)
        geo = geo_block.response(request, state.region_supported)
        if geo is not None:
            return _json(provider, geo, 403)
        key_error = key_errors.error(request, provider, status)
        if key_error is not None:
            return _json(provider, key_error[1], key_error[0])
        per_key = state.keys.response(request, provider)
        if per_key is not None:
            resp = _json(provider, per_key[1], per_key[0])
            resp.headers.update(per_key[2])
            return resp
        fixed = fixed_body.response(request, status)
        if fixed is not None:
            return fixed
        if status is not None:
            return _json(provider, fx.error_body(provider, status), status)
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = None
        req = parsed if isinstance(parsed, dict) else {}
        stream = _is_stream(path, request.query, parsed)

        if provider == "gemini" and endpoint == "cached_content":
            return _json(provider, fx.gemini_cached_content(path, request.method, req))
        if provider == "gemini":
            m = _GEMINI_MODEL_IN_PATH.search(path)
            model = m.group(1) if m else fx.DEFAULT_MODELS["gemini"]
            if endpoint == "generate":
                reply = fx.plan_reply("gemini", req)
                if stream:
                    return await _sse(request, fx.gemini_stream(model, reply))
                return _json(provider, fx.gemini_generate(model, reply))
            if endpoint == "embed":
                return _json(provider, fx.gemini_embed())
            if endpoint == "batch_embed":
                return _json(provider, fx.gemini_batch_embed(req))
            if endpoint == "count_tokens":
                return _json(provider, fx.gemini_count_tokens())
            if endpoint == "models":
                return _json(provider, fx.gemini_models())
            return _json(provider, fx.gemini_model(model))

        if provider == "anthropic":
            model = req.get("model") if isinstance(req.get("model"), str) else fx.DEFAULT_MODELS["anthropic"]
            if endpoint == "count_tokens":
                return _json(provider, fx.anthropic_count_tokens())
            if endpoint == "models":
                return _json(provider, fx.anthropic_models())
            reply = fx.plan_reply("anthropic", req)
            if stream:
                return await _sse(request, fx.anthropic_stream(model, reply))
            return _json(provider, fx.anthropic_message(model, reply))

        model = req.get("model") if isinstance(req.get("model"), str) else fx.DEFAULT_MODELS["openai"]
        if endpoint == "responses":
            reply = fx.plan_reply("openai_responses", req)
            if stream:
                return await _sse(request, fx.openai_responses_stream(model, req, reply))
            return _json(provider, fx.openai_response(model, req, reply))
        if endpoint == "embeddings":
            return _json(provider, fx.openai_embeddings(model, req))
        if endpoint == "models":
            return _json(provider, fx.openai_models())
        if endpoint == "model":
            return _json(provider, fx.openai_model(path.rstrip("/").rsplit("/", 1)[-1]))
        reply = fx.plan_reply("openai_chat", req)
        if stream:
            opts = req.get("stream_options")
            include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
            return await _sse(request, fx.openai_chat_stream(model, reply, include_usage))
        return _json(provider, fx.openai_chat_completion(model, reply))

    def _json(provider: str, data: Any, status: int = 200) -> web.Response:
        headers = {"x-request-id": fx._uid("req_")}
        if provider == "anthropic":
            headers["request-id"] = headers["x-request-id"]
        return web.json_response(data, status=status, headers=headers)

    async def _sse(request: web.Request, events: list[bytes]) -> web.StreamResponse:
        resp = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                "x-request-id": fx._uid("req_"),
            },
        )
        hold: asyncio.Event | None = None
        if _held(request):
            hold = asyncio.Event()
            state.held.add(hold)  # registered before the first write: no lost release
        try:
            await resp.prepare(request)
            for i, ev in enumerate(events):
                await resp.write(ev)
                if i == 0 and hold is not None:
                    try:
                        await asyncio.wait_for(hold.wait(), HOLD_TIMEOUT_S)
                    except asyncio.TimeoutError:
                        pass
            await resp.write_eof()
        finally:
            if hold is not None:
                state.held.discard(hold)
        return resp

    async def handle_ws(request: web.Request, received: float) -> web.StreamResponse:
        record = _record(state, request, "websocket", b"", received)
        # The session's text messages as they arrive (in the handshake's record).
        record["messages"] = messages = []
        geo = geo_block.response(request, state.region_supported)
        if geo is not None:
            return web.json_response(geo, status=403)
        status = _override_status(request)
        key_error = key_errors.error(request, "openai", status)
        if key_error is not None:
            return web.json_response(key_error[1], status=key_error[0])
        if status is not None:
            return web.json_response(
                {"error": {"code": status, "message": f"mock upstream refused websocket upgrade ({status})"}},
                status=status,
            )
        refused = state.realtime.refusal(request)
        if refused is not None:
            return refused
        offered: list[str] = []
        raw_protocols = request.headers.getall("Sec-WebSocket-Protocol", [])
        for value in raw_protocols:
            offered += [p.strip() for p in value.split(",") if p.strip()]
        if "realtime" in offered:
            chosen: str | None = "realtime"
        else:
            chosen = next((p for p in offered if not p.startswith("openai-insecure-api-key.")), None)
        if len(raw_protocols) > 1:  # aiohttp only reads the first header instance
            merged = request.headers.copy()
            merged.popall("Sec-WebSocket-Protocol")
            merged["Sec-WebSocket-Protocol"] = ", ".join(offered)
            request = request.clone(headers=merged)
        ws = web.WebSocketResponse(
            protocols=(chosen,) if chosen else (),
            autoclose=False,
            autoping=True,
            compress=False,
            max_msg_size=0,
        )
        await ws.prepare(request)
        event = key_errors.ws_event(request)
        if event is not None:
            await ws.send_str(event)
            await ws.close(code=key_errors.WS_CLOSE[0], message=key_errors.WS_CLOSE[1].encode())
            return ws
        async for msg in _iter_ws(ws):
            if msg.type == WSMsgType.TEXT:
                text = msg.data
                with state._lock:  # noqa: SLF001 - snapshot() copies under the same lock
                    messages.append(text)
                if text.startswith("__close:"):
                    _, code_s, reason = (text.split(":", 2) + ["", ""])[:3]
                    try:
                        code = int(code_s)
                    except ValueError:
                        code = 1000
                    await ws.close(code=code, message=reason.encode())
                    break
                usage = fx.ws_usage_replies(request.path, text, request.headers.get("x-mock-ws-usage"))
                for reply in usage or [fx.gemini_live_reply(request.path, text) or text]:
                    await ws.send_str(reply)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
            elif msg.type == WSMsgType.CLOSE:
                code = msg.data if isinstance(msg.data, int) and msg.data not in (0, 1005, 1006) else 1000
                await ws.close(code=code, message=(msg.extra or "").encode())
                break
            else:
                break
        if not ws.closed:
            await ws.close()
        return ws

    async def _iter_ws(ws: web.WebSocketResponse):  # includes CLOSE (autoclose=False)
        while not ws.closed:
            msg = await ws.receive()
            yield msg
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
                return

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        # Real providers' headers on every response (a successful upgrade excepted), and the
        # ones a test asks for with x-mock-headers.
        if request.path.startswith(CONTROL_PREFIX) or response.status == 101:
            return
        provider = key_errors.provider_of(
            request.path, classify(request.path, request.method, request.headers)[0])
        response_headers.apply(request, response, provider)

    app.on_response_prepare.append(on_prepare)
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


def make_runner(state: State, log: bool = True) -> web.AppRunner:
    return web.AppRunner(
        make_app(state, log=log),
        access_log=None,
        logger=_quiet_logger,
        max_line_size=256 * 1024,
        max_field_size=256 * 1024,
        max_headers=1024,
        handle_signals=False,
        shutdown_timeout=1.0,
    )


async def start_site(runner: web.AppRunner, host: str, port: int) -> int:
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    server = site._server  # noqa: SLF001 - the only way to read the bound port
    assert server is not None and server.sockets
    return int(server.sockets[0].getsockname()[1])


class MockUpstreamServer:
    """In-process mock upstream on a background thread with its own loop.

    >>> srv = MockUpstreamServer(port=0); port = srv.start(); ...; srv.stop()
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, log: bool = False) -> None:
        self.host = host
        self.requested_port = port
        self.log = log
        self.port: int | None = None
        self.state = State()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> int:
        ready = threading.Event()
        err: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._runner = make_runner(self.state, log=self.log)
                self.port = loop.run_until_complete(start_site(self._runner, self.host, self.requested_port))
            except BaseException as e:  # noqa: BLE001
                err.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._runner.cleanup())
                loop.close()

        self._thread = threading.Thread(target=run, name="mock-upstream", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("mock upstream did not start in time")
        if err:
            raise err[0]
        assert self.port is not None
        return self.port

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(self.state.release)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    # direct (non-HTTP) access to the same state the control endpoints use
    def requests(self) -> list[dict[str, Any]]:
        return self.state.snapshot()

    def reset(self) -> None:
        self.state.reset()

    def release(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.state.release)

    def __enter__(self) -> "MockUpstreamServer":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


_background: list[MockUpstreamServer] = []


def start_in_thread(host: str = "127.0.0.1", port: int = 0, log: bool = False) -> int:
    """Start a mock on a daemon thread (lives until process exit) and return
    the bound port. Use :class:`MockUpstreamServer` if you need ``stop()``."""
    srv = MockUpstreamServer(host, port, log=log)
    bound = srv.start()
    _background.append(srv)
    return bound


async def serve_forever(host: str, port: int, log: bool = True) -> None:
    import signal

    state = State()
    runner = make_runner(state, log=log)
    bound = await start_site(runner, host, port)
    print(f"mock-upstream listening on {host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        await stop.wait()
    finally:
        state.release()
        await runner.cleanup()
