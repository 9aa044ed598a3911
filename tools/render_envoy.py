#!/usr/bin/env python3
"""Render envoy.yaml for a run: ports, the built .wasm, the token-service address, the
provider upstream overrides (OPENAI_UPSTREAM, ANTHROPIC_UPSTREAM, GEMINI_UPSTREAM), the CA
bundle provider certificates are verified against, the provider routes' idle timeout, and how
many proxies in front of Envoy are trusted for the client's address.

Used by `make run` and by the end-to-end tests, so both run the committed config with only
these values changed. An override is a base URL such as `http://127.0.0.1:9100` or
`https://llm-gateway.internal:8443`: scheme, host and port only (the request path is kept
as the client sent it, like the original Worker). An https upstream is always verified:
chain and host name.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

import yaml

from envoy_upstreams import (
    RenderError,
    ca_file,
    connect_to,
    is_ip,
    is_loopback,
    parse_upstream,
    point_cluster,
    provider_names,
    refuse_plaintext_off_loopback,
    system_ca_bundle,
    verified_tls,
)

def find(items: list[dict], name: str) -> dict:
    for item in items:
        if item.get("name") == name:
            return item
    raise RenderError(f"envoy.yaml has no entry named {name!r}")


def host_port(flag: str, value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise RenderError(f"{flag}: expected host:port, got {value!r}")
    return host, int(port)


def deep_merge(base: dict, overrides: dict) -> None:
    """Merges `overrides` into `base` in place: objects recursively, anything else replaced."""
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = value


def render(config: dict, args: argparse.Namespace, env: dict[str, str]) -> dict:
    config["admin"]["address"]["socket_address"]["port_value"] = args.admin_port
    listener = find(config["static_resources"]["listeners"], "proxy")
    listener["address"]["socket_address"]["port_value"] = args.proxy_port
    # In a container the published port reaches the container's own interface, not loopback.
    listener["address"]["socket_address"]["address"] = args.listen_address
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    clusters = config["static_resources"]["clusters"]

    if args.access_log:
        log = hcm["access_log"][0]
        log["name"] = "envoy.access_loggers.file"
        log["typed_config"]["@type"] = (
            "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
        )
        log["typed_config"]["path"] = args.access_log

    render_client_address(hcm, args)
    render_plugin(find(hcm["http_filters"], "ptk")["typed_config"]["config"], args)
    render_token_service(clusters, args)
    if args.token_service_cluster:
        rename_route_cluster(hcm, "token_service", args.token_service_cluster)
    render_providers(clusters, hcm["route_config"]["virtual_hosts"], args, env)
    for value in args.configured_provider:
        add_configured_provider(clusters, hcm["route_config"]["virtual_hosts"], value)
    if args.geo_fallback_egress:
        add_geo_fallback(clusters, hcm, args.geo_fallback_egress)
    if args.provider_idle_timeout is not None:
        # What a provider call without a body gets (see envoy.yaml's stream_idle_timeout).
        hcm["stream_idle_timeout"] = f"{args.provider_idle_timeout}s"
    for pin in args.connect_to:
        connect_to(clusters, pin)
    # The loopback-or-TLS rule again on the final addresses: a pin may have moved them.
    for name, flag in ((args.token_service_cluster or "token_service", "--token-service"),
                       ("token_service_admin", "--token-service-admin")):
        refuse_plaintext_off_loopback(find(clusters, name), flag, args.token_service_plaintext)
    if args.tls_port:
        add_tls_listener(config, listener, args)
    return config


def render_client_address(hcm: dict, args: argparse.Namespace) -> None:
    """How Envoy finds the client's address (the guess throttle's and the admin login
    throttle's key): the TCP peer (`use_remote_address`, committed), or with
    --xff-num-trusted-hops N the address N entries from the right of x-forwarded-for, which
    the proxies in front of Envoy wrote. The TLS listener is a copy, so it gets the same."""
    if not hcm.get("use_remote_address"):
        raise RenderError("the connection manager must set use_remote_address: true")
    hops = args.xff_num_trusted_hops
    if not hops:
        return
    hcm["xff_num_trusted_hops"] = hops
    # The admin routes tell the login throttle the client Envoy derived through those
    # proxies, not the proxy next to Envoy (else every client behind it shares one bucket).
    for vhost in hcm["route_config"]["virtual_hosts"]:
        for route in vhost["routes"]:
            for added in route.get("request_headers_to_add", []):
                if added["header"]["key"] == "x-forwarded-for":
                    added["header"]["value"] = "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"


def render_plugin(wasm: dict, args: argparse.Namespace) -> None:
    """The .wasm path and the plugin configuration (serialised once)."""
    wasm["vm_config"]["code"]["local"]["filename"] = args.wasm
    plugin = json.loads(wasm["configuration"]["value"])
    plugin["token_service"]["timeout_ms"] = args.timeout_ms
    if args.deny_ttl_ms is not None:
        plugin.setdefault("cache", {})["deny_ttl_ms"] = args.deny_ttl_ms
    if args.no_cache:
        plugin.setdefault("cache", {})["enabled"] = False
    if args.token_service_cluster:
        plugin["token_service"]["cluster"] = args.token_service_cluster
    if args.plugin_config:
        try:
            overrides = json.loads(args.plugin_config)
        except json.JSONDecodeError as err:
            raise RenderError(f"--plugin-config: not JSON: {err}") from err
        if not isinstance(overrides, dict):
            raise RenderError("--plugin-config: expected a JSON object")
        deep_merge(plugin, overrides)
    wasm["configuration"]["value"] = json.dumps(plugin)


def render_token_service(clusters: list[dict], args: argparse.Namespace) -> None:
    """The check and admin clusters: plain HTTP on loopback; verified TLS (or an explicit
    --token-service-plaintext, e.g. behind a mesh's mTLS) anywhere else, because the check
    API answers with real keys and the admin routes carry the check secret."""
    tls_ca = ca_file("--token-service-tls-ca", args.token_service_tls_ca) \
        if args.token_service_tls_ca else None
    if args.token_service_tls_name and not tls_ca:
        raise RenderError("--token-service-tls-name needs --token-service-tls-ca")
    for name, flag, value in (
        ("token_service", "--token-service", args.token_service),
        ("token_service_admin", "--token-service-admin", args.token_service_admin),
    ):
        # The check cluster may list several replicas (comma-separated), the admin one not.
        values = value.split(",") if name == "token_service" else [value]
        addresses = [host_port(flag, v.strip()) for v in values]
        if tls_ca and len(addresses) > 1 and not args.token_service_tls_name:
            raise RenderError(f"{flag} {value}: several replicas over TLS share one cluster, "
                              "so name their certificate with --token-service-tls-name")
        cluster = find(clusters, name)
        point_cluster(cluster, *addresses[0])
        if len(addresses) > 1:
            point_replicas(cluster, flag, addresses)
        for host, _ in addresses:
            if tls_ca:
                cluster["transport_socket"] = verified_tls(
                    args.token_service_tls_name or host, tls_ca)
            elif not is_loopback(host) and not args.token_service_plaintext:
                raise RenderError(
                    f"{flag} {value}: not loopback, so the check API's real keys would cross "
                    "the network in plaintext; use --token-service-tls-ca (and "
                    "--token-service-tls-name), or --token-service-plaintext if a mesh's mTLS "
                    "protects the hop")
    if args.token_service_cluster:
        # Another name for the check cluster, e.g. Istio's `outbound|PORT||HOST` form.
        token_service = find(clusters, "token_service")
        token_service["name"] = args.token_service_cluster
        token_service["load_assignment"]["cluster_name"] = args.token_service_cluster


def rename_route_cluster(hcm: dict, old: str, new: str) -> None:
    """Routes to the check cluster (the /ptk/healthz health path) follow its new name."""
    for vhost in hcm["route_config"]["virtual_hosts"]:
        for route in vhost["routes"]:
            if route.get("route", {}).get("cluster") == old:
                route["route"]["cluster"] = new


def point_replicas(cluster: dict, flag: str, addresses: list[tuple[str, int]]) -> None:
    """Several token-service replicas as endpoints of one cluster (its load balancer, outlier
    detection and health check spread checks over them): IP literals (STATIC) or names
    (STRICT_DNS, every address each name resolves to)."""
    named = [host for host, _ in addresses if not is_ip(host)]
    if named and len(named) != len(addresses):
        raise RenderError(f"{flag}: list either IP addresses or host names, not both")
    cluster["type"] = "STRICT_DNS" if named else "STATIC"
    cluster["load_assignment"]["endpoints"][0]["lb_endpoints"] = [
        {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
        for host, port in addresses
    ]


def render_providers(clusters: list[dict], vhosts: list[dict], args: argparse.Namespace,
                     env: dict[str, str]) -> None:
    """Each provider's cluster (its real host, or the *_UPSTREAM override) with verified TLS
    against the chosen CA bundle, and the idle timeout of its routes."""
    if args.provider_ca_path:
        bundle = args.provider_ca_path  # where Envoy will read it (e.g. inside its image)
    elif args.provider_ca_file:
        bundle = ca_file("--provider-ca-file", args.provider_ca_file)
    else:
        bundle = system_ca_bundle()
    for provider in provider_names(vhosts):
        var = f"{provider.upper()}_UPSTREAM"
        cluster = find(clusters, provider)
        routes = find(vhosts, provider)["routes"]
        if args.provider_idle_timeout is not None:
            for route in routes:
                route["route"]["idle_timeout"] = f"{args.provider_idle_timeout}s"
        url = env.get(var, "").strip()
        if not url:
            sni = cluster["transport_socket"]["typed_config"]["sni"]
            cluster["transport_socket"] = verified_tls(sni, bundle)
            continue
        scheme, host, port = parse_upstream(var, url)
        point_cluster(cluster, host, port)
        if scheme == "http":
            cluster.pop("transport_socket", None)
        else:
            cluster["transport_socket"] = verified_tls(host, bundle)
        default_port = 443 if scheme == "https" else 80
        authority = host if port == default_port else f"{host}:{port}"
        # The upstream sees its own host name, not the real provider's.
        for route in routes:
            route["route"]["host_rewrite_literal"] = authority


def add_configured_provider(clusters: list[dict], vhosts: list[dict], value: str) -> None:
    """`--configured-provider NAME=AUTHORITY=URL`: a cluster NAME at URL and a virtual host
    for AUTHORITY (the `authority` of the plugin config's `providers.NAME`) routing to it,
    shaped like the OpenAI ones (configured providers speak OpenAI's dialect)."""
    name, _, rest = value.partition("=")
    authority, _, url = rest.partition("=")
    if not name or not authority or not url:
        raise RenderError(f"--configured-provider: expected NAME=AUTHORITY=URL, got {value!r}")
    scheme, host, port = parse_upstream("--configured-provider", url)
    # Envoy would refuse a duplicate cluster or host name only with its own message, and a
    # duplicate domain would leave the key's route to whichever host Envoy picks.
    taken = {c["name"] for c in clusters} | {v["name"] for v in vhosts}
    if name in taken:
        raise RenderError(f"--configured-provider: the name {name!r} is taken by the config")
    if any(authority.lower() in (d.lower() for d in v["domains"]) for v in vhosts):
        raise RenderError(f"--configured-provider: {authority!r} is another route's host")
    clusters.append(openai_cluster_at(clusters, name, scheme, host, port))
    vhost = copy.deepcopy(find(vhosts, "openai"))
    vhost.update(name=name, domains=[authority])
    for route in vhost["routes"]:
        route["name"] = name
        route["route"]["cluster"] = name
        route["route"].pop("host_rewrite_literal", None)
    # Before the catch-all `unrouted` host, which never forwards.
    vhosts.insert(vhosts.index(find(vhosts, "unrouted")), vhost)


#: The native filter in front of ptk that keeps a 403's headers from the client until its body
#: has passed ptk (a wasm filter that pauses its headers is not shown the body): ptk reads it
#: for OpenAI's geo-block marker, then replays the request or lets the 403 go on.
GEO_HOLD_LUA = """\
function envoy_on_request(request)
  request:headers():replace("x-ptk-geo-hold", "1")
end

function envoy_on_response(response)
  if response:headers():get(":status") == "403" then
    response:body()
  end
end
"""


def openai_cluster_at(clusters: list[dict], name: str, scheme: str, host: str,
                      port: int) -> dict:
    """A copy of the OpenAI cluster named `name`, pointed at host:port: plain for `http`,
    verified TLS (chain and name) for `https` (a configured provider, the geo egress)."""
    cluster = copy.deepcopy(find(clusters, "openai"))
    cluster["name"] = cluster["load_assignment"]["cluster_name"] = name
    point_cluster(cluster, host, port)
    if scheme == "http":
        cluster.pop("transport_socket", None)
    else:
        cluster["transport_socket"] = verified_tls(host, system_ca_bundle())
    return cluster


def add_geo_fallback(clusters: list[dict], hcm: dict, url: str) -> None:
    """`--geo-fallback-egress URL`: OpenAI's geo-403 egress fallback on, replaying through a
    cluster `openai_egress` at URL (http:// plain, https:// verified), with the hold filter
    in front of ptk and `providers.openai.geo_fallback` set (unless the plugin config sets it)."""
    scheme, host, port = parse_upstream("--geo-fallback-egress", url)
    if any(c["name"] == "openai_egress" for c in clusters):
        raise RenderError("--geo-fallback-egress: the name 'openai_egress' is taken by the config")
    clusters.append(openai_cluster_at(clusters, "openai_egress", scheme, host, port))
    filters = hcm["http_filters"]
    filters.insert(filters.index(find(filters, "ptk")), {
        "name": "ptk_geo_hold",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": GEO_HOLD_LUA},
        },
    })
    # OpenAI WebSocket handshakes the filter marks after a geo-block (a callout cannot replay
    # an upgrade) take the egress from the start; the mark never goes upstream.
    openai = find(hcm["route_config"]["virtual_hosts"], "openai")
    direct = find(openai["routes"], "openai")
    egress = copy.deepcopy(direct)
    egress["name"] = "openai_egress"
    egress["match"] = {**direct["match"], "headers": [
        {"name": "x-ptk-egress", "string_match": {"exact": "geo-fallback"}}]}
    egress["route"]["cluster"] = "openai_egress"
    egress["request_headers_to_remove"] = ["x-ptk-egress"]
    openai["routes"].insert(openai["routes"].index(direct), egress)
    wasm = find(filters, "ptk")["typed_config"]["config"]
    plugin = json.loads(wasm["configuration"]["value"])
    openai = plugin.setdefault("providers", {}).setdefault("openai", {})
    openai.setdefault("geo_fallback", {"cluster": "openai_egress"})
    wasm["configuration"]["value"] = json.dumps(plugin)


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
    parser.add_argument(
        "--listen-address", default="127.0.0.1",
        help="address the proxy listeners bind (e.g. 0.0.0.0 in a container); Envoy's admin "
             "interface stays on 127.0.0.1")
    parser.add_argument(
        "--token-service", default="127.0.0.1:10080", metavar="HOST:PORT[,HOST:PORT...]",
        help="the check API; several replicas comma-separated (one cluster, load balanced, "
             "with outlier detection and a /healthz health check)")
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
        "--plugin-config",
        help="JSON object merged into the filter's plugin configuration, e.g. "
             '\'{"guess_throttle": {"max_refusals": 50}}\'')
    parser.add_argument(
        "--token-service-tls-ca",
        help="reach the token-service (check and admin clusters) over TLS, verifying its "
             "certificate chain against this PEM CA bundle")
    parser.add_argument(
        "--token-service-tls-name",
        help="name the token-service certificate must carry (SNI and SAN; an IP literal is "
             "checked as an IP SAN); default: the host of --token-service / --token-service-admin")
    parser.add_argument(
        "--token-service-plaintext", action="store_true",
        help="allow plain HTTP to a token-service that is not on loopback (only when something "
             "else, e.g. a mesh's mTLS, protects the hop)")
    parser.add_argument(
        "--provider-ca-file",
        help="PEM CA bundle provider (and https *_UPSTREAM) certificates are verified against, "
             "instead of the system trust store (make run: PTK_PROVIDER_CA_FILE)")
    parser.add_argument(
        "--provider-ca-path", metavar="PATH",
        help="like --provider-ca-file, for a bundle Envoy reads somewhere else (a path inside "
             "its container image): not looked for here")
    parser.add_argument(
        "--provider-idle-timeout", type=non_negative_int, metavar="SECONDS",
        help="cut a provider call after this long without a byte either way; 0 = never "
             "(default: envoy.yaml's 900; make run: PTK_PROVIDER_IDLE_TIMEOUT)")
    parser.add_argument(
        "--xff-num-trusted-hops", type=non_negative_int, default=0, metavar="N",
        help="trust the last N x-forwarded-for entries (the load balancers or proxies in front "
             "of Envoy, which must overwrite or append to that header): the client is the "
             "address N entries from the right; 0 = the TCP peer (make run: "
             "PTK_XFF_NUM_TRUSTED_HOPS)")
    parser.add_argument(
        "--connect-to", action="append", default=[], metavar="HOST:PORT:ADDRESS:PORT",
        help="connect to ADDRESS:PORT whenever a cluster would connect to HOST:PORT, keeping "
             "SNI, the certificate name check and Host (like curl --connect-to); repeatable")
    parser.add_argument(
        "--configured-provider", action="append", default=[], metavar="NAME=AUTHORITY=URL",
        help="route AUTHORITY (a configured provider's providers.NAME.authority) to a cluster "
             "NAME at URL (http:// plain, https:// verified); repeatable")
    parser.add_argument(
        "--geo-fallback-egress", metavar="URL",
        help="turn OpenAI's geo-403 fallback on: a request OpenAI refuses for its region "
             "(403 unsupported_country_region_territory) is replayed once through a cluster "
             "openai_egress at URL (an egress in another region; http:// plain, https:// "
             "verified)")
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
