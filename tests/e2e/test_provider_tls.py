"""The real key goes only to a provider whose certificate chain and host name verify.

The stacks run the committed provider clusters (no *_UPSTREAM override: SNI, SAN and Host are
the real providers' names) with render_envoy.py --connect-to pinning each provider host to a
TLS peer on loopback (tls_peer.py), which relays to the mock once a handshake completes. An
impostor's certificate (self-signed, or from a trusted CA for another name) ends the handshake
before a byte of HTTP is sent: the client gets a 502 in the provider's shape and nobody got
the request, let alone the key. A certificate from the CA the operator configured passes.
The token-service's optional TLS mode is checked the same way."""

from __future__ import annotations

from typing import Callable

import pytest
import requests

from .harness import REAL_KEYS, Stack
from .provider_calls import assert_error_shape, call_all
from .tls_peer import PROVIDER_HOSTS, TestPki, TlsPeer

#: No override: every provider uses its committed cluster and route.
COMMITTED_UPSTREAMS = {"OPENAI_UPSTREAM": "", "ANTHROPIC_UPSTREAM": "", "GEMINI_UPSTREAM": ""}
TOKEN_SERVICE_NAME = "token-service.ptk.test"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def peers():
    made: list[TlsPeer] = []
    yield made
    for peer in made:
        peer.close()


def pinned_to(peer: TlsPeer, *more: str) -> Callable[[Stack], list[str]]:
    """render_envoy.py arguments: every provider host:443 connects to the peer instead."""
    def args(_: Stack) -> list[str]:
        pins = [f"{host}:443:127.0.0.1:{peer.port}" for host in PROVIDER_HOSTS]
        return [*(a for pin in pins for a in ("--connect-to", pin)), *more]
    return args


def relay_to_mock(peer: TlsPeer, stack: Stack) -> None:
    host, port = stack.mock_url.removeprefix("http://").rsplit(":", 1)
    peer.target = (host, int(port))


def assert_nothing_reached(peer: TlsPeer, stack: Stack) -> None:
    peer.settle()
    assert peer.connections >= 1, "Envoy never dialled the pinned address"
    assert peer.plaintext_connections == 0, "Envoy spoke plaintext to a TLS port"
    assert peer.handshakes == 0 and peer.failed_handshakes == peer.connections
    assert peer.bytes_from_client == 0
    assert stack.upstream_requests() == []


def test_an_untrusted_impostor_gets_nothing_and_the_client_a_502_in_its_shape(
        make_stack, pki, peers):
    impostor = TlsPeer(pki.self_signed("impostor", PROVIDER_HOSTS))
    peers.append(impostor)
    # Default trust: the system store, where no self-signed certificate is.
    s = make_stack(upstreams=COMMITTED_UPSTREAMS, render_extra=pinned_to(impostor))
    relay_to_mock(impostor, s)  # were a handshake to complete, the mock would see the key
    for route, resp in call_all(s.url, s.mint()["token"]).items():
        assert_error_shape(resp, route, 502, "upstream request failed")
    assert_nothing_reached(impostor, s)


def test_a_certificate_from_the_operators_ca_passes(make_stack, pki, peers):
    # One certificate for the three hosts; Gemini's by wildcard, as Google's own is.
    names = ("api.openai.com", "api.anthropic.com", "*.googleapis.com")
    front = TlsPeer(pki.issue("providers", names))
    peers.append(front)
    s = make_stack(upstreams=COMMITTED_UPSTREAMS,
                   render_extra=pinned_to(front, "--provider-ca-file", str(pki.ca)))
    relay_to_mock(front, s)
    replies = call_all(s.url, s.mint()["token"])
    assert {r: resp.status_code for r, resp in replies.items()} == dict.fromkeys(replies, 200)
    recorded = s.upstream_requests()
    assert len(recorded) == 4 and front.handshakes >= 1
    hosts = sorted(dict(rec["headers"])["host"] for rec in recorded)
    assert hosts == sorted(["api.openai.com", "api.anthropic.com",
                            "generativelanguage.googleapis.com",
                            "generativelanguage.googleapis.com"])
    sent = "\n".join(str(rec["headers"]) for rec in recorded)
    delivered = [key in sent for key in REAL_KEYS.values()]
    assert delivered == [True, True, True], "each verified provider gets its real key"


def test_a_trusted_certificate_for_another_name_is_refused(make_stack, pki, peers):
    wrong = TlsPeer(pki.issue("wrong-name", ("llm-gateway.example",)))
    peers.append(wrong)
    s = make_stack(upstreams=COMMITTED_UPSTREAMS,
                   render_extra=pinned_to(wrong, "--provider-ca-file", str(pki.ca)))
    relay_to_mock(wrong, s)
    for route, resp in call_all(s.url, s.mint()["token"]).items():
        assert_error_shape(resp, route, 502, "upstream request failed")
    assert_nothing_reached(wrong, s)


def test_token_service_over_verified_tls(make_stack, pki, peers):
    """Check cluster behind a TLS front with the right name: checks pass. Admin cluster behind
    one with another name: refused, nothing sent (the admin routes carry the check secret)."""
    check_front = TlsPeer(pki.issue("ts", (TOKEN_SERVICE_NAME,)))
    admin_front = TlsPeer(pki.issue("ts-wrong", ("elsewhere.ptk.test",)))
    peers.extend([check_front, admin_front])

    def args(_: Stack) -> list[str]:
        return ["--token-service", f"{TOKEN_SERVICE_NAME}:10080",
                "--token-service-admin", f"{TOKEN_SERVICE_NAME}:10081",
                "--token-service-tls-ca", str(pki.ca),
                "--connect-to", f"{TOKEN_SERVICE_NAME}:10080:127.0.0.1:{check_front.port}",
                "--connect-to", f"{TOKEN_SERVICE_NAME}:10081:127.0.0.1:{admin_front.port}"]

    s = make_stack(cache_ttl_ms=0, render_extra=args)
    check_front.target = ("127.0.0.1", s.service_port)
    admin_front.target = ("127.0.0.1", s.service_admin_port)
    token = s.mint()["token"]
    r = requests.get(f"{s.url}/v1/models", headers={"authorization": f"Bearer {token}"},
                     timeout=10)
    assert r.status_code == 200, r.text
    assert check_front.handshakes >= 1 and check_front.bytes_from_client > 0

    r = requests.get(f"{s.url}/admin", timeout=10)
    assert r.status_code == 502
    admin_front.settle()
    assert admin_front.connections >= 1 and admin_front.handshakes == 0
    assert admin_front.bytes_from_client == 0

