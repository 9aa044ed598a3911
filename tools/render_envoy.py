#!/usr/bin/env python3
"""Render envoy.yaml for a run: ports, the built .wasm, the token-service address, the
provider upstream overrides (OPENAI_UPSTREAM, ANTHROPIC_UPSTREAM, GEMINI_UPSTREAM) and the
provider routes' idle timeout.

Used by `make run` and by the end-to-end tests, so both run the committed config with only
these values changed. An override is a base URL such as `http://127.0.0.1:9100` or
`https://llm-gateway.internal:8443`: scheme, host and port only (the request path is kept
as the client sent it, like the original Worker).
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml

PROVIDERS = {
    "openai": "OPENAI_UPSTREAM",
    "anthropic": "ANTHROPIC_UPSTREAM",
    "gemini": "GEMINI_UPSTREAM",
}


class RenderError(Exception):
    """A bad input, reported with the name of the setting."""


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


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def find(items: list[dict], name: str) -> dict:
    for item in items:
        if item.get("name") == name:
            return item
    raise RenderError(f"envoy.yaml has no entry named {name!r}")


def override_cluster(cluster: dict, scheme: str, host: str, port: int) -> None:
    cluster["type"] = "STATIC" if is_ip(host) else "LOGICAL_DNS"
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    endpoint["address"]["socket_address"] = {"address": host, "port_value": port}
    if scheme == "http":
        cluster.pop("transport_socket", None)
    else:
        cluster["transport_socket"]["typed_config"]["sni"] = host


def render(config: dict, args: argparse.Namespace, env: dict[str, str]) -> dict:
    config["admin"]["address"]["socket_address"]["port_value"] = args.admin_port
    listener = find(config["static_resources"]["listeners"], "proxy")
    listener["address"]["socket_address"]["port_value"] = args.proxy_port
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]

    if args.access_log:
        log = hcm["access_log"][0]
        log["name"] = "envoy.access_loggers.file"
        log["typed_config"]["@type"] = (
            "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
        )
        log["typed_config"]["path"] = args.access_log

    wasm = find(hcm["http_filters"], "ptk")["typed_config"]["config"]
    wasm["vm_config"]["code"]["local"]["filename"] = args.wasm
    plugin = json.loads(wasm["configuration"]["value"])
    plugin["token_service"]["timeout_ms"] = args.timeout_ms
    if args.deny_ttl_ms is not None:
        plugin.setdefault("cache", {})["deny_ttl_ms"] = args.deny_ttl_ms
    if args.no_cache:
        plugin.setdefault("cache", {})["enabled"] = False
    if args.token_service_cluster:
        plugin["token_service"]["cluster"] = args.token_service_cluster
    wasm["configuration"]["value"] = json.dumps(plugin)

    ts_host, _, ts_port = args.token_service.rpartition(":")
    if not ts_host or not ts_port.isdigit():
        raise RenderError(f"--token-service: expected host:port, got {args.token_service!r}")
    token_service = find(config["static_resources"]["clusters"], "token_service")
    override_cluster(token_service, "http", ts_host, int(ts_port))
    if args.token_service_cluster:
        # Another name for the check cluster, e.g. Istio's `outbound|PORT||HOST` form.
        token_service["name"] = args.token_service_cluster
        token_service["load_assignment"]["cluster_name"] = args.token_service_cluster

    admin_host, _, admin_port = args.token_service_admin.rpartition(":")
    if not admin_host or not admin_port.isdigit():
        raise RenderError(
            f"--token-service-admin: expected host:port, got {args.token_service_admin!r}")
    admin = find(config["static_resources"]["clusters"], "token_service_admin")
    override_cluster(admin, "http", admin_host, int(admin_port))

    vhosts = hcm["route_config"]["virtual_hosts"]
    for provider, var in PROVIDERS.items():
        if args.provider_idle_timeout is not None:
            for route in find(vhosts, provider)["routes"]:
                route["route"]["idle_timeout"] = f"{args.provider_idle_timeout}s"
        url = env.get(var, "").strip()
        if not url:
            continue
        scheme, host, port = parse_upstream(var, url)
        override_cluster(find(config["static_resources"]["clusters"], provider), scheme, host, port)
        default_port = 443 if scheme == "https" else 80
        authority = host if port == default_port else f"{host}:{port}"
        # The upstream sees its own host name, not the real provider's.
        for route in find(vhosts, provider)["routes"]:
            route["route"]["host_rewrite_literal"] = authority
    if args.tls_port:
        add_tls_listener(config, listener, args)
    return config


def add_tls_listener(config: dict, plain: dict, args: argparse.Namespace) -> None:
    """A second listener with the same filter chain, terminating TLS: Python google-genai Live
    always dials wss://, even for an http:// base URL."""
    if not (args.tls_cert and args.tls_key):
        raise RenderError("--tls-port needs --tls-cert and --tls-key")
    tls = copy.deepcopy(plain)
    tls["name"] = "proxy_tls"
    tls["address"]["socket_address"]["port_value"] = args.tls_port
    tls["filter_chains"][0]["transport_socket"] = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": {
                # HTTP/1.1 only: WebSocket upgrades over HTTP/2 need extended CONNECT.
                "alpn_protocols": ["http/1.1"],
                "tls_certificates": [{
                    "certificate_chain": {"filename": args.tls_cert},
                    "private_key": {"filename": args.tls_key},
                }],
            },
        },
    }
    config["static_resources"]["listeners"].append(tls)


class NoAliasDumper(yaml.SafeDumper):
    """Writes shared values in full (envoy.yaml's YAML anchors), so the output reads plainly."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--template", default=str(root / "envoy.yaml"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--proxy-port", type=int, default=10000)
    parser.add_argument("--admin-port", type=int, default=9901)
    parser.add_argument("--token-service", default="127.0.0.1:10080")
    parser.add_argument(
        "--token-service-admin", default="127.0.0.1:10081",
        help="the token-service's admin listener, behind Envoy's /admin routes")
    parser.add_argument(
        "--wasm", default=str(root / "target/wasm32-wasip1/release/ptk_filter.wasm")
    )
    parser.add_argument("--timeout-ms", type=int, default=2000)
    parser.add_argument(
        "--deny-ttl-ms", type=int,
        help="how long each worker remembers a refusal (plugin cache.deny_ttl_ms)")
    parser.add_argument(
        "--token-service-cluster",
        help="name of the check cluster (plugin token_service.cluster), e.g. Istio's "
             "outbound|10080||token-service.ptk.svc.cluster.local")
    parser.add_argument(
        "--no-cache", action="store_true",
        help="turn the filter's verdict cache off (plugin cache.enabled = false): a check "
             "per request, no shared-data reads")
    parser.add_argument(
        "--provider-idle-timeout", type=non_negative_int, metavar="SECONDS",
        help="cut a provider call after this long without a byte either way; 0 = never "
             "(default: envoy.yaml's 900; make run: PTK_PROVIDER_IDLE_TIMEOUT)")
    parser.add_argument("--access-log", help="write the access log to this file, not stdout")
    parser.add_argument("--tls-port", type=int, help="also serve the proxy over TLS on this port")
    parser.add_argument("--tls-cert", help="PEM certificate chain for --tls-port")
    parser.add_argument("--tls-key", help="PEM private key for --tls-port")
    args = parser.parse_args(argv)
    try:
        with open(args.template, encoding="utf-8") as fh:
            config = yaml.safe_load(fh)
        rendered = render(config, args, dict(os.environ))
    except RenderError as err:
        print(f"render_envoy: {err}", file=sys.stderr)
        return 2
    with open(args.out, "w", encoding="utf-8") as fh:
        yaml.dump(rendered, fh, Dumper=NoAliasDumper, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
