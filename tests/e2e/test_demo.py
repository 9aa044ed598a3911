"""`make demo` (tools/demo.sh) end to end, as a new user runs it: no real key, no internet,
the real Envoy, filter, token-service, CLI and the mock providers; every narrated step must
answer as narrated and the script must stop its stack when it is done (no terminal)."""

from __future__ import annotations

import re
import time

from tests.e2e.harness import wire_version
from tests.e2e.newcomer import script_env, start, stop


def test_make_demo_runs_every_step(tmp_path):
    data = tmp_path / "demo"
    env = script_env(data, OPENAI_API_KEY="sk-must-not-be-used", PTK_DEMO_KEEP="0")
    log = tmp_path / "demo.log"
    started = time.monotonic()
    proc = start("tools/demo.sh", env, log)
    try:
        code = proc.wait(timeout=60)
    finally:
        stop(proc)
    text = log.read_text(errors="replace")
    assert code == 0, text
    assert time.monotonic() - started < 60
    assert "Real keys configured for: openai, anthropic, gemini\n" in text, text
    assert ("ptk filter 0.1.0 started (plugin configuration schema 1, wire protocol "
            f"{wire_version()})") in text
    assert "token-service 0.1.0\n" in text, text
    steps = [m.group(1) for m in re.finditer(r"== (\d)\. ", text)]
    assert steps == ["0", "1", "2", "3", "4", "5", "6"], text
    # Request, stream, the other providers, then the refusal after the disable.
    assert text.count("HTTP 200") == 3, text
    assert "data: [DONE]" in text, text
    assert re.search(r"disabled token [0-9a-f]{12}", text), text
    assert "HTTP 401" in text and "invalid or revoked token" in text, text
    assert "Demo passed" in text and "Stopping the demo stack." in text, text
    # The user's own key never reaches the demo; the token is shown only truncated.
    assert "sk-must-not-be-used" not in (data / "token-service.log").read_text()
    assert not re.search(r"ptk_[A-Za-z0-9_-]{32}", text), text
    # Everything it started is gone: the proxy port is free again.
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", int(env["PTK_PROXY_PORT"])))
