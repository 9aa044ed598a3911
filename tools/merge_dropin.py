#!/usr/bin/env python3
"""Merge ptk's drop-in pieces (deploy/envoy/ptk-dropin.yaml) into an existing Envoy config.

    merge_dropin.py --config yours.yaml --listener NAME --domain llm.example.com --out new.yaml

What it does, on the named listener's HTTP connection manager(s) (deploy/envoy/README.md is
the same list as a checklist):
- the ptk filter goes right before the router (default-disabled: only ptk's hosts run it);
- ptk's virtual hosts go in front of yours (the providers' hosts, and `ptk_entry` answering
  on --domain), in an inline route_config (RDS is refused: add the hosts to your RDS source);
- ptk's local-reply mappers go before yours; a websocket upgrade is added if missing;
- the other settings (use_remote_address, early header mutation, idle/request timeouts,
  access log) are set where you have none, kept (with a note) where yours differ;
- ptk's clusters are appended, with the addresses given here.
Nothing of yours is removed or renamed; a name or domain that ptk's pieces also use is an
error, as are a second ptk filter and a listener without a router. Notes go to stderr.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import yaml

from envoy_upstreams import (
    RenderError,
    ca_file,
    connect_to,
    is_loopback,
    point_cluster,
    verified_tls,
)
from render_envoy import NoAliasDumper, find, host_port, point_replicas

ROOT = Path(__file__).resolve().parent.parent
HCM = "envoy.filters.network.http_connection_manager"
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
PROVIDER_CLUSTERS = ("openai", "anthropic", "gemini")


def managers(listener: dict) -> list[dict]:
    """The HTTP connection managers of every filter chain of the listener."""
    found = [f["typed_config"] for chain in listener.get("filter_chains", [])
             for f in chain.get("filters", []) if f.get("name") == HCM]
    if not found:
        raise RenderError(f"listener {listener.get('name')!r} has no {HCM}")
    return found


def add_filter(hcm: dict, entry: dict) -> None:
    filters = hcm.setdefault("http_filters", [])
    if any(f.get("name") == entry["name"] for f in filters):
        raise RenderError(f"the listener already has an http filter named {entry['name']!r}")
    for i, f in enumerate(filters):
        if (f.get("name") == "envoy.filters.http.router"
                or f.get("typed_config", {}).get("@type") == ROUTER_TYPE):
            filters.insert(i, copy.deepcopy(entry))
            return
    raise RenderError("the listener's http_filters have no envoy.filters.http.router")


def merge_settings(hcm: dict, settings: dict, notes: list[str]) -> None:
    for key, value in settings.items():
        mine = copy.deepcopy(value)
        if key not in hcm:
            hcm[key] = mine
            notes.append(f"set {key}")
        elif key == "local_reply_config":
            hcm[key]["mappers"] = mine["mappers"] + hcm[key].get("mappers", [])
        elif key == "upgrade_configs":
            if not any(u.get("upgrade_type") == "websocket" for u in hcm[key]):
                hcm[key] += mine
        elif key == "early_header_mutation_extensions":
            hcm[key] += [m for m in mine if m not in hcm[key]]
        elif hcm[key] != value:
            notes.append(f"kept your {key}; ptk's is in deploy/envoy/ptk-dropin.yaml "
                         "(README checklist says why)")


def add_hosts(hcm: dict, hosts: list[dict], domain: str) -> None:
    if "route_config" not in hcm:
        raise RenderError("the connection manager uses RDS: add ptk's virtual_hosts to its "
                          "route configuration source instead")
    theirs = hcm["route_config"].setdefault("virtual_hosts", [])
    names = {v["name"] for v in theirs}
    domains = {d for v in theirs for d in v.get("domains", [])}
    mine = copy.deepcopy(hosts)
    entry = find(mine, "ptk_entry")
    entry["domains"] = [domain, f"{domain}:*"]
    for host in mine:
        if host["name"] in names:
            raise RenderError(f"a virtual host named {host['name']!r} already exists")
        taken = domains.intersection(host["domains"])
        if taken:
            raise RenderError(f"domains {sorted(taken)} are already served by your config")
    hcm["route_config"]["virtual_hosts"] = mine + theirs


def secure_token_service(clusters: list[dict], addresses: list[tuple[str, int]],
                         args: argparse.Namespace) -> None:
    """The check API answers with real keys and the admin routes carry the check secret:
    plain HTTP only on loopback (or with --token-service-plaintext behind a mesh's mTLS),
    else verified TLS (--token-service-tls-ca, and --token-service-tls-name for the name)."""
    if args.token_service_tls_ca:
        bundle = ca_file("--token-service-tls-ca", args.token_service_tls_ca)
        name = args.token_service_tls_name or addresses[0][0]
        if not args.token_service_tls_name and len({h for h, _ in addresses}) > 1:
            raise RenderError("the token-service addresses differ: name their certificate "
                              "with --token-service-tls-name")
        for cluster in ("token_service", "token_service_admin"):
            find(clusters, cluster)["transport_socket"] = verified_tls(name, bundle)
        return
    remote = [h for h, _ in addresses if not is_loopback(h)]
    if remote and not args.token_service_plaintext:
        raise RenderError(
            f"token-service at {remote[0]} is not loopback, so real keys would cross the network "
            "in plaintext: use --token-service-tls-ca (and --token-service-tls-name), or "
            "--token-service-plaintext if a mesh's mTLS protects the hop")


def add_clusters(config: dict, clusters: list[dict], args: argparse.Namespace) -> None:
    mine = copy.deepcopy(clusters)
    check = find(mine, "token_service")
    addresses = [host_port("--token-service", v.strip()) for v in args.token_service.split(",")]
    point_cluster(check, *addresses[0])
    if len(addresses) > 1:
        point_replicas(check, "--token-service", addresses)
    admin = host_port("--token-service-admin", args.token_service_admin)
    point_cluster(find(mine, "token_service_admin"), *admin)
    secure_token_service(mine, addresses + [admin], args)
    if args.provider_ca_file:
        bundle = ca_file("--provider-ca-file", args.provider_ca_file)
        for name in PROVIDER_CLUSTERS:
            tls = find(mine, name)["transport_socket"]["typed_config"]
            tls["common_tls_context"]["validation_context"]["trusted_ca"] = {"filename": bundle}
    for pin in args.connect_to:
        connect_to(mine, pin)
    resources = config.setdefault("static_resources", {})
    theirs = resources.setdefault("clusters", [])
    taken = {c["name"] for c in theirs}.intersection(c["name"] for c in mine)
    if taken:
        raise RenderError(f"clusters {sorted(taken)} already exist in your config")
    theirs += mine


def merge(config: dict, snippet: dict, args: argparse.Namespace) -> list[str]:
    """Merges in place; returns the notes (settings set, yours kept)."""
    notes: list[str] = []
    listener = find(config.get("static_resources", {}).get("listeners", []), args.listener)
    http_filter = copy.deepcopy(snippet["http_filter"])
    if args.wasm:
        http_filter["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = args.wasm
    for hcm in managers(listener):
        add_filter(hcm, http_filter)
        merge_settings(hcm, snippet["connection_manager"], notes)
        add_hosts(hcm, snippet["virtual_hosts"], args.domain)
    add_clusters(config, snippet["clusters"], args)
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--config", required=True, help="your Envoy config (YAML)")
    parser.add_argument("--out", required=True, help="where the merged config goes")
    parser.add_argument("--listener", required=True, help="the listener that gets ptk")
    parser.add_argument("--domain", required=True,
                        help="host name clients use as their base URL (ptk_entry's domain)")
    parser.add_argument("--snippet", default=str(ROOT / "deploy/envoy/ptk-dropin.yaml"))
    parser.add_argument("--wasm", help="path of ptk_filter.wasm as Envoy will see it")
    parser.add_argument("--token-service", default="127.0.0.1:10080",
                        metavar="HOST:PORT[,HOST:PORT...]", help="check API replica(s)")
    parser.add_argument("--token-service-admin", default="127.0.0.1:10081", metavar="HOST:PORT",
                        help="the token-service's admin listener (behind /admin)")
    parser.add_argument("--token-service-tls-ca",
                        help="reach both token-service clusters over TLS verified against this "
                             "PEM CA bundle (needed unless they are on loopback)")
    parser.add_argument("--token-service-tls-name",
                        help="name the token-service certificate carries (default: the host)")
    parser.add_argument("--token-service-plaintext", action="store_true",
                        help="allow plain HTTP to a non-loopback token-service (a mesh's mTLS "
                             "protects the hop)")
    parser.add_argument("--provider-ca-file",
                        help="PEM bundle provider certificates are verified against "
                             "(default: the snippet's, Debian's system bundle)")
    parser.add_argument("--connect-to", action="append", default=[],
                        metavar="HOST:PORT:ADDRESS:PORT",
                        help="connect to ADDRESS:PORT whenever a ptk cluster would connect to "
                             "HOST:PORT, keeping SNI and the certificate name check")
    args = parser.parse_args(argv)
    try:
        with open(args.config, encoding="utf-8") as fh:
            config = yaml.safe_load(fh)
        with open(args.snippet, encoding="utf-8") as fh:
            snippet = yaml.safe_load(fh)
        notes = merge(config, snippet, args)
    except (RenderError, OSError) as err:
        print(f"merge_dropin: {err}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"merge_dropin: {note}", file=sys.stderr)
    with open(args.out, "w", encoding="utf-8") as fh:
        yaml.dump(config, fh, Dumper=NoAliasDumper, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
