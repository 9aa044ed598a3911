"""tools/port_check.py, which make run and make demo call before starting anything: a listener
makes a port taken; connections an earlier run left in TIME_WAIT do not (Envoy and the
token-service bind with SO_REUSEADDR, so they would start fine)."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.e2e.harness import ROOT

SCRIPT = str(ROOT / "tools/port_check.py")


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          timeout=30)


def test_a_listener_is_taken_and_named():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        out = check(f"Envoy admin=PTK_ENVOY_ADMIN_PORT=127.0.0.1:{port}")
        as_address = check(f"token-service check API=PTK_LISTEN=127.0.0.1:{port}")
    assert out.returncode == 1
    assert f"port {port} (Envoy admin, 127.0.0.1:{port}) is taken" in out.stderr
    assert "set PTK_ENVOY_ADMIN_PORT to a free port number" in out.stderr
    # An address setting says which form it takes (a bare port is not an address).
    assert "set PTK_LISTEN to a free host:port, e.g. 127.0.0.1:11080" in as_address.stderr


def test_a_malformed_setting_is_named_before_anything_starts():
    """The new-user trial: `PTK_LISTEN=11080 make run` passed the check and failed later in
    render_envoy without naming the setting (after generating the admin secret, whose banner
    was then never shown)."""
    for arg, want in [
        ("token-service check API=PTK_LISTEN=11080",
         "PTK_LISTEN='11080' (token-service check API): expected a host:port"),
        ("token-service admin=PTK_ADMIN_LISTEN=127.0.0.1:http",
         "PTK_ADMIN_LISTEN='127.0.0.1:http' (token-service admin): expected a host:port"),
        ("Envoy proxy=PTK_PROXY_PORT=127.0.0.1:ten",
         "PTK_PROXY_PORT='ten' (Envoy proxy): expected a port number"),
        ("Envoy proxy=PTK_PROXY_PORT=127.0.0.1:70000",
         "PTK_PROXY_PORT='70000' (Envoy proxy): expected a port number"),
    ]:
        out = check(arg)
        assert out.returncode == 1, arg
        assert want in out.stderr, out.stderr


def test_time_wait_leftovers_of_an_earlier_run_are_not_taken():
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    server_side, _ = listener.accept()
    server_side.close()  # the server closes first: its end (our port) goes to TIME_WAIT
    client.close()
    listener.close()
    out = check(f"token-service check API=PTK_LISTEN=127.0.0.1:{port}")
    assert out.returncode == 0, out.stderr
