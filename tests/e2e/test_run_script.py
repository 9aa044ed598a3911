"""`make run` (tools/run.sh) as a new user meets it: a taken port fails at once, naming the
port and the variable that moves it; the banner names the providers whose real keys came
from a keys file, not only from the environment."""

from __future__ import annotations

import socket

from tests.e2e.harness import wire_version
from tests.e2e.newcomer import script_env, start, stop, wait_for_line


def test_a_foreign_listener_on_the_envoy_admin_port_fails_clearly(tmp_path):
    env = script_env(tmp_path / "data")
    admin_port = int(env["PTK_ENVOY_ADMIN_PORT"])
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", admin_port))
        foreign.listen()
        log = tmp_path / "run.log"
        proc = start("tools/run.sh", env, log)
        try:
            code = proc.wait(timeout=30)
        finally:
            stop(proc)
    text = log.read_text()
    assert code != 0, text
    assert f"port {admin_port} (Envoy admin" in text, text
    assert "PTK_ENVOY_ADMIN_PORT" in text, text
    assert "ptk proxy is up" not in text, text


def test_a_taken_token_service_port_names_its_variable(tmp_path):
    env = script_env(tmp_path / "data")
    port = int(env["PTK_LISTEN"].rsplit(":", 1)[1])
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", port))
        foreign.listen()
        log = tmp_path / "run.log"
        proc = start("tools/run.sh", env, log)
        try:
            code = proc.wait(timeout=30)
        finally:
            stop(proc)
    text = log.read_text()
    assert code != 0 and f"port {port} (token-service check API" in text and "PTK_LISTEN" in text, text


def test_banner_names_providers_whose_keys_come_from_the_keys_file(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# the operator's keys\nOPENAI_API_KEY=sk-from-file-1\nGEMINI_API_KEY=AIza-from-file-2\n")
    env = script_env(tmp_path / "data", PTK_KEYS_FILE=str(keys))
    log = tmp_path / "run.log"
    proc = start("tools/run.sh", env, log)
    try:
        text = wait_for_line(proc, log, "Ctrl-C stops everything.")
    finally:
        stop(proc)
    assert "Real keys configured for: openai, gemini\n" in text, text
    assert "sk-from-file-1" not in text and "AIza-from-file-2" not in text


def test_banner_says_none_without_keys(tmp_path):
    env = script_env(tmp_path / "data")
    log = tmp_path / "run.log"
    proc = start("tools/run.sh", env, log)
    try:
        text = wait_for_line(proc, log, "Ctrl-C stops everything.")
    finally:
        stop(proc)
    assert "Real keys configured for: none (set OPENAI_API_KEY" in text, text
    # The filter says which release, config schema and wire version Envoy loaded.
    assert ("ptk filter 0.1.0 started (plugin configuration schema 1, wire protocol "
            f"{wire_version()})") in text
    # The store is not the CLI's default, so the printed CLI lines name it.
    assert f"--db {tmp_path / 'data'}/ptk.sqlite3 tokens create" in text, text


def test_an_envoy_admin_port_answered_by_someone_else_is_not_reported_as_up(tmp_path):
    """The second line of defence, for a listener the port check cannot see (it came up after
    the check, or shares the port): success is reported only when the Envoy on the admin port
    is the one this run started (its node id in /server_info). Here the port check is skipped
    by a PYTHON wrapper and a foreign server answers 200 to everything on the admin port."""
    import http.server
    import threading

    from tests.e2e.harness import ROOT

    wrapper = tmp_path / "python"
    wrapper.write_text("#!/bin/bash\n[ \"$1\" = tools/port_check.py ] && exit 0\n"
                       f"exec {ROOT / '.venv/bin/python'} \"$@\"\n")
    wrapper.chmod(0o755)

    class Always200(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"LIVE\n")

        def log_message(self, *args):
            pass

    foreign = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Always200)
    threading.Thread(target=foreign.serve_forever, daemon=True).start()
    try:
        env = script_env(tmp_path / "data", PYTHON=str(wrapper),
                         PTK_ENVOY_ADMIN_PORT=str(foreign.server_address[1]))
        log = tmp_path / "run.log"
        proc = start("tools/run.sh", env, log)
        try:
            code = proc.wait(timeout=60)
        finally:
            stop(proc)
    finally:
        foreign.shutdown()
        foreign.server_close()
    text = log.read_text()
    assert code != 0, text
    assert "is not the one this run started" in text and "PTK_ENVOY_ADMIN_PORT" in text, text
    assert "ptk proxy is up" not in text, text


def test_the_geo_fallback_egress_variable_renders_the_fallback(tmp_path):
    env = script_env(tmp_path / "data", PTK_GEO_FALLBACK_EGRESS="http://127.0.0.1:9")
    log = tmp_path / "run.log"
    proc = start("tools/run.sh", env, log)
    try:
        wait_for_line(proc, log, "Ctrl-C stops everything.")
    finally:
        stop(proc)
    rendered = (tmp_path / "data" / "envoy.yaml").read_text()
    assert "openai_egress" in rendered and "x-ptk-geo-hold" in rendered
    assert "geo_fallback" in rendered
