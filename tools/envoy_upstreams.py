"""Upstream clusters for tools/render_envoy.py: where a cluster connects (base-URL overrides,
`--connect-to` pins) and the verified TLS it connects with.

Every TLS context this module writes verifies the peer: the chain against a CA bundle file
and the certificate's name (SAN) against the host the cluster is meant to reach. Envoy 1.40
offers no working "system roots" switch on Linux (`system_root_certs` is accepted and verifies
nothing), so the system trust store is a bundle file found per distribution.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Callable
from urllib.parse import urlsplit

#: The system trust store as one PEM file, per distribution family; the first that exists is
#: used. envoy.yaml names the first (Debian, Ubuntu, Alpine, Arch).
SYSTEM_CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine, Arch, Gentoo
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  # Fedora, RHEL, CentOS, Amazon Linux
    "/etc/pki/tls/certs/ca-bundle.crt",  # older RHEL / CentOS
    "/etc/ssl/ca-bundle.pem",  # openSUSE, SLES
    "/etc/ssl/cert.pem",  # macOS, FreeBSD, OpenBSD
)

#: The catch-all virtual host of envoy.yaml's route table (`unrouted`) and its copy in the
#: drop-in snippet (`ptk_entry`): every other virtual host is a provider's, served by the
#: cluster of the same name.
CATCH_ALL_HOSTS = ("unrouted", "ptk_entry")


def provider_names(virtual_hosts: list[dict]) -> list[str]:
    """The providers a route table serves, in its order: read from envoy.yaml (or the snippet
    made from it), so a provider added there needs no list here."""
    return [v["name"] for v in virtual_hosts if v["name"] not in CATCH_ALL_HOSTS]


TLS_SOCKET = "envoy.transport_sockets.tls"
UPSTREAM_TLS_CONTEXT = (
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext")

_CONNECT_TO = re.compile(r"^(\[[^\]]+\]|[^:\[\]]+):(\d+):(\[[^\]]+\]|[^:\[\]]+):(\d+)$")


class RenderError(Exception):
    """A bad input, reported with the name of the setting."""


def is_ip(host: str) -> bool:
    """True for an IPv4 or IPv6 literal (without brackets)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback IP literals: traffic that never leaves the machine."""
    if host == "localhost":
        return True
    return is_ip(host) and ipaddress.ip_address(host).is_loopback


def parse_upstream(name: str, url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an upstream base URL, or RenderError naming the variable."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RenderError(f"{name}: expected http(s)://host[:port], got {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise RenderError(f"{name}: only scheme, host and port are used; drop the path in {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as err:
        raise RenderError(f"{name}: bad port in {url!r}") from err
    return parts.scheme, parts.hostname, port


def parse_connect_to(value: str) -> tuple[str, int, str, int]:
    """`HOST:PORT:ADDRESS:PORT2` (curl's --connect-to; IPv6 in brackets) as
    (host, port, address, port2)."""
    match = _CONNECT_TO.match(value)
    if not match:
        raise RenderError(f"--connect-to: expected HOST:PORT:ADDRESS:PORT, got {value!r}")
    host, port, address, port2 = match.groups()
    return host.strip("[]"), int(port), address.strip("[]"), int(port2)


def endpoint_of(cluster: dict) -> dict:
    """The socket address of a single-endpoint cluster (every cluster in envoy.yaml is one)."""
    lb = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    return lb["endpoint"]["address"]["socket_address"]


def addresses_of(cluster: dict) -> list[tuple[str, int]]:
    """Every (host, port) the cluster connects to, after any --connect-to pin."""
    return [(lb["endpoint"]["address"]["socket_address"]["address"],
             lb["endpoint"]["address"]["socket_address"]["port_value"])
            for group in cluster["load_assignment"]["endpoints"]
            for lb in group.get("lb_endpoints", [])]


def refuse_plaintext_off_loopback(cluster: dict, flag: str, plaintext_allowed: bool) -> None:
    """A token-service cluster (the check API answers with real keys, the admin routes carry
    the check secret) without TLS may only connect to loopback, unless the operator said a
    mesh's mTLS protects the hop. Checked on the final addresses, so a --connect-to pin cannot
    re-point a loopback-declared cluster across the network."""
    if "transport_socket" in cluster or plaintext_allowed:
        return
    remote = [f"{h}:{p}" for h, p in addresses_of(cluster) if not is_loopback(h)]
    if remote:
        raise RenderError(
            f"{flag}: cluster {cluster['name']} would connect to {remote[0]}, not loopback, so "
            "the check API's real keys and the check secret would cross the network in "
            "plaintext (--connect-to included); use --token-service-tls-ca (and "
            "--token-service-tls-name), or --token-service-plaintext if a mesh's mTLS "
            "protects the hop")


def point_cluster(cluster: dict, host: str, port: int) -> None:
    """Connect the cluster to host:port (an IP literal is STATIC, a name is resolved)."""
    cluster["type"] = "STATIC" if is_ip(host) else "LOGICAL_DNS"
    cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] = {
        "socket_address": {"address": host, "port_value": port}}


def connect_to(clusters: list[dict], value: str) -> None:
    """`--connect-to HOST:PORT:ADDRESS:PORT2`: every cluster that would connect to HOST:PORT
    connects to ADDRESS:PORT2 instead, keeping its SNI, its SAN check and the Host it sends,
    like curl's --connect-to (a test impostor, a split-horizon address, an egress relay)."""
    host, port, address, port2 = parse_connect_to(value)
    pinned = 0
    for cluster in clusters:
        endpoint = endpoint_of(cluster)
        if endpoint["address"] == host and endpoint["port_value"] == port:
            point_cluster(cluster, address, port2)
            pinned += 1
    if not pinned:
        raise RenderError(f"--connect-to {value}: no cluster connects to {host}:{port}")


def system_ca_bundle(exists: Callable[[str], bool] = os.path.isfile) -> str:
    """The first system trust store bundle that exists here, or RenderError."""
    for path in SYSTEM_CA_BUNDLES:
        if exists(path):
            return path
    raise RenderError(
        "no system CA bundle found (looked for " + ", ".join(SYSTEM_CA_BUNDLES)
        + "); name one with --provider-ca-file / PTK_PROVIDER_CA_FILE")


def ca_file(flag: str, path: str) -> str:
    """An operator-supplied CA bundle, checked to exist now rather than when Envoy starts."""
    if not os.path.isfile(path):
        raise RenderError(f"{flag}: no such file {path!r}")
    return os.path.abspath(path)


def verified_tls(name: str, ca_bundle: str) -> dict:
    """A TLS transport socket that verifies the peer's chain against ca_bundle and its
    certificate's name against `name` (a DNS SAN, wildcards as RFC 6125 allows, or an IP SAN
    for an IP literal). SNI is the name, unless it is an IP literal (SNI cannot carry one)."""
    san_type = "IP_ADDRESS" if is_ip(name) else "DNS"
    context: dict = {"@type": UPSTREAM_TLS_CONTEXT}
    if san_type == "DNS":
        context["sni"] = name
    context["common_tls_context"] = {
        "validation_context": {
            "trusted_ca": {"filename": ca_bundle},
            "match_typed_subject_alt_names": [{"san_type": san_type, "matcher": {"exact": name}}],
        },
    }
    return {"name": TLS_SOCKET, "typed_config": context}
