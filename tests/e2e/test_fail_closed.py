"""Fail closed: a hanging token-service, a bad plugin config and a missing check secret never
let a request through."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time

import requests
import yaml

from .harness import ENVOY, free_port

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


class HangingServer:
    """Accepts TCP connections and reads forever without ever answering."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def test_hanging_token_service_is_503_within_the_timeout(make_stack):
    hang = HangingServer()
    try:
        s = make_stack(timeout_ms=400, token_service_addr=hang.addr)
        token = s.mint()["token"]
        for _ in range(2):
            start = time.monotonic()
            r = requests.post(f"{s.url}/v1/chat/completions", json=CHAT,
                              headers={"authorization": f"Bearer {token}"}, timeout=10)
            elapsed = time.monotonic() - start
            assert r.status_code == 503
            assert r.json()["error"]["message"] == "token store unavailable"
            # The configured 400 ms, plus generous slack for a noisy 2-core machine.
            assert 0.35 <= elapsed < 2.5, elapsed
        assert hang.accepted >= 1, "the filter never called the token-service"
        assert s.upstream_requests() == []
    finally:
        hang.close()


def envoy_with_plugin_config(stack_dir, rendered, plugin_value: str | None, env: dict) -> subprocess.CompletedProcess:
    config = yaml.safe_load(rendered.read_text())
    listener = config["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    wasm = hcm["http_filters"][0]["typed_config"]["config"]
    if plugin_value is not None:
        wasm["configuration"]["value"] = plugin_value
    path = stack_dir / "envoy-bad.yaml"
    config["admin"]["address"]["socket_address"]["port_value"] = free_port()
    listener["address"]["socket_address"]["port_value"] = free_port()
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([ENVOY, "-c", str(path), "--disable-hot-restart", "--concurrency", "1"],
                          env=env, capture_output=True, text=True, timeout=60)


def test_bad_plugin_config_is_refused_at_start_naming_the_field(stack):
    rendered = stack.dir / "envoy.yaml"
    env = dict(os.environ, PTK_CHECK_SECRET=stack.secret)
    cases = [
        (json.dumps({"token_service": {"timeout_mss": 5}}), "timeout_mss"),
        (json.dumps({"token_service": {"timeout_ms": 0}}), "token_service.timeout_ms"),
        (json.dumps({"providers": {"openai": {"authority": "https://api.openai.com/v1"}}}),
         "providers.openai.authority"),
        # A config written for another schema (docs/wire-protocol.md, Versions).
        (json.dumps({"version": 2}), "version: this filter"),
    ]
    for value, field in cases:
        out = envoy_with_plugin_config(stack.dir, rendered, value, env)
        assert out.returncode != 0, f"envoy accepted {value}"
        log = out.stdout + out.stderr
        assert "bad config" in log and field in log, log[-2000:]


def test_missing_check_secret_is_refused_at_start(stack):
    env = {k: v for k, v in os.environ.items() if k != "PTK_CHECK_SECRET"}
    out = envoy_with_plugin_config(stack.dir, stack.dir / "envoy.yaml", None, env)
    assert out.returncode != 0
    assert "PTK_CHECK_SECRET" in out.stdout + out.stderr


def test_wrong_check_secret_is_refused_by_the_token_service(stack):
    r = requests.post(f"http://127.0.0.1:{stack.service_port}/v1/check",
                      json={"hash": "0" * 64, "provider": "openai"},
                      headers={"x-ptk-check-secret": "not-the-secret-0000"})
    assert r.status_code == 401
    assert "sk-" not in r.text
