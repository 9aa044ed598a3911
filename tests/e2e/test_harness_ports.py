"""The harness's own start-up: test servers get ports the kernel cannot hand out meanwhile, and
a server that still loses its port (CI once saw Envoy exit 1 with "Address already in use")
starts again on fresh ports instead of failing a test that has nothing to do with ports."""

from __future__ import annotations

import socket

import pytest
import requests

from tests import ports
from tests.e2e import harness


def test_ports_sit_below_the_ephemeral_range_and_are_never_given_twice():
    given = [ports.free_port() for _ in range(200)]
    assert len(set(given)) == len(given)
    assert all(ports.FLOOR <= port < ports.ephemeral_floor() for port in given), given


def test_a_server_that_loses_its_port_starts_again_on_fresh_ports(monkeypatch):
    """Envoy's admin port is taken after the pick (a foreign listener holds the first port the
    harness picks for Envoy): the stack still comes up, on other ports, and answers."""
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        taken = foreign.getsockname()[1]
        picks = iter([taken])
        real = harness.free_port
        stack = harness.Stack()

        def pick() -> int:
            # Only Envoy's ports come through here once the token-service is up.
            if "token-service" in stack.procs:
                return next(picks, None) or real()
            return real()

        monkeypatch.setattr(harness, "free_port", pick)
        try:
            stack.start()
            assert taken not in (stack.proxy_port, stack.admin_port, stack.tls_port)
            assert requests.get(f"http://127.0.0.1:{stack.admin_port}/ready", timeout=5).ok
            token = stack.mint()["token"]
            reply = requests.get(f"{stack.url}/v1/models", timeout=10,
                                 headers={"Authorization": f"Bearer {token}"})
            assert reply.status_code == 200, reply.text
        finally:
            stack.stop()
            stack.cleanup()


def test_any_other_early_exit_fails_at_once_with_the_end_of_the_log(tmp_path):
    """A server that dies for another reason is not restarted: the error names it and quotes
    the end of its log (here Envoy refusing a config that is not YAML)."""
    stack = harness.Stack()

    def broken_envoy() -> None:
        config = stack.dir / "broken.yaml"
        config.write_text("this: [is not: valid")
        proc = stack._spawn("envoy", [harness.ENVOY, "-c", str(config),
                                      "--disable-hot-restart"], {})
        harness.wait_http("http://127.0.0.1:1/ready", proc, "envoy", timeout=30,
                          log=stack.dir / "envoy.log")

    attempts = []

    def counted() -> None:
        attempts.append(1)
        broken_envoy()

    stack.dir = tmp_path
    try:
        with pytest.raises(harness.ProcessExited) as exited:
            stack.with_fresh_ports(counted)
        assert len(attempts) == 1
        assert not exited.value.port_clash
        assert "envoy exited with 1" in str(exited.value)
        assert "broken.yaml" in str(exited.value) or "yaml" in str(exited.value).lower()
    finally:
        stack.stop()
