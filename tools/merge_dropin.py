#!/usr/bin/env python3
"""Merge ptk's drop-in pieces (deploy/envoy/ptk-dropin.yaml) into an existing Envoy config.

    merge_dropin.py --config yours.yaml --listener NAME --domain llm.example.com --out new.yaml

What it does, on the named listener's HTTP connection manager(s) (deploy/envoy/README.md is
the same list as a checklist):
- the ptk filter and the request-body hold filter after it go right before the router
  (default-disabled: only ptk's hosts run them);
- ptk's virtual hosts go in front of yours (the providers' hosts, and `ptk_entry` answering
  on --domain), in an inline route_config (RDS is refused: add the hosts to your RDS source);
- ptk's local-reply mappers go before yours; a websocket upgrade is added if missing;
- the other settings (use_remote_address, early header mutation, idle/request timeouts,
  access log) are set where you have none, kept (with a note) where yours differ, except
  `use_remote_address: false`: it makes the client address (the guess throttle's key) a
  client-chosen x-forwarded-for, so it is refused unless --xff-num-trusted-hops N says how
  many proxies in front of Envoy write that header (the tool then sets use_remote_address:
  true and xff_num_trusted_hops: N);
- ptk's clusters are appended, with the addresses given here (--no-admin: without the
  /admin routes and their cluster).
The named listener is copied before it is edited, so nothing it shares with the rest of your
config (a YAML anchor on its route_config, say) changes anywhere else. Nothing of yours is
removed or renamed; a name or domain that ptk's pieces also use is an error, as are a second
ptk filter, a listener without a router and a plaintext token-service off loopback (after
--connect-to pins). Notes go to stderr.
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
    provider_names,
    refuse_plaintext_off_loopback,
    verified_tls,
)
from render_envoy import NoAliasDumper, find, host_port, non_negative_int, point_replicas

ROOT = Path(__file__).resolve().parent.parent
HCM = "envoy.filters.network.http_connection_manager"
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


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


def own_listener(listeners: list[dict], name: str) -> dict:
    """The named listener, replaced in the list by a copy of its own: YAML anchors make one
    object of what several places name, so an edit of a route_config or connection manager
    the listener shares would also land on listeners that do not run the filter (provider
    hosts without it: proxy tokens upstream, an open relay, /admin with the check secret).
    Each filter chain is copied separately, so chains sharing one connection manager each
    get ptk's pieces once."""
    listener = find(listeners, name)
    own = copy.deepcopy(listener)
    own["filter_chains"] = [copy.deepcopy(chain) for chain in own.get("filter_chains", [])]
    listeners[next(i for i, item in enumerate(listeners) if item is listener)] = own
    return own


def client_address(hcm: dict, hops: int | None, notes: list[str]) -> None:
    """The guess throttle (and the admin login throttle) key on the client address Envoy
    derives: the TCP peer (use_remote_address: true) or, behind N trusted proxies, the address
    N entries from the right of x-forwarded-for. use_remote_address: false takes it from an
    x-forwarded-for a client writes itself (a new address per guess: no throttle)."""
    if hops is None:
        if "use_remote_address" in hcm and hcm["use_remote_address"] is not True:
            raise RenderError(
                "your connection manager sets use_remote_address: false, so the client address "
                "(the guess throttle's key) would be an x-forwarded-for the client chooses: set "
                "it true, or pass --xff-num-trusted-hops N if N proxies in front of Envoy "
                "append to x-forwarded-for (the tool then sets use_remote_address: true and "
                "xff_num_trusted_hops: N)")
        return
    theirs = hcm.get("xff_num_trusted_hops", 0)
    if theirs != hops and "xff_num_trusted_hops" in hcm:
        raise RenderError(f"your connection manager sets xff_num_trusted_hops: {theirs}, "
                          f"--xff-num-trusted-hops says {hops}")
    if hcm.get("use_remote_address") is not True:
        notes.append(f"set use_remote_address: true (was {hcm.get('use_remote_address')}; "
                     f"--xff-num-trusted-hops {hops})")
    hcm["use_remote_address"] = True
    if hops:
        hcm["xff_num_trusted_hops"] = hops
        notes.append(f"set xff_num_trusted_hops: {hops}")


def add_hosts(hcm: dict, hosts: list[dict], domain: str, admin: bool = True) -> None:
    if "route_config" not in hcm:
        raise RenderError("the connection manager uses RDS: add ptk's virtual_hosts to its "
                          "route configuration source instead")
    theirs = hcm["route_config"].setdefault("virtual_hosts", [])
    names = {v["name"] for v in theirs}
    domains = {d for v in theirs for d in v.get("domains", [])}
    mine = copy.deepcopy(hosts)
    entry = find(mine, "ptk_entry")
    entry["domains"] = [domain, f"{domain}:*"]
    if not admin:
        # --no-admin: the dashboard's sign-in page stays off the client-facing domain.
        entry["routes"] = [r for r in entry["routes"]
                           if r.get("route", {}).get("cluster") != "token_service_admin"]
    if hcm.get("xff_num_trusted_hops"):
        # The admin login throttle gets the client Envoy derived through the trusted proxies,
        # not the proxy next to Envoy (as render_envoy.py --xff-num-trusted-hops does).
        for route in entry["routes"]:
            for added in route.get("request_headers_to_add", []):
                if added["header"]["key"] == "x-forwarded-for":
                    added["header"]["value"] = "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"
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
        for cluster in clusters:
            if cluster["name"] in ("token_service", "token_service_admin"):
                cluster["transport_socket"] = verified_tls(name, bundle)
        return
    remote = [h for h, _ in addresses if not is_loopback(h)]
    if remote and not args.token_service_plaintext:
        raise RenderError(
            f"token-service at {remote[0]} is not loopback, so real keys would cross the network "
            "in plaintext: use --token-service-tls-ca (and --token-service-tls-name), or "
            "--token-service-plaintext if a mesh's mTLS protects the hop")


def add_clusters(config: dict, clusters: list[dict], providers: list[str],
                 args: argparse.Namespace) -> None:
    mine = copy.deepcopy(clusters)
    check = find(mine, "token_service")
    addresses = [host_port("--token-service", v.strip()) for v in args.token_service.split(",")]
    point_cluster(check, *addresses[0])
    if len(addresses) > 1:
        point_replicas(check, "--token-service", addresses)
    if args.no_admin:
        mine.remove(find(mine, "token_service_admin"))
        admin = []
    else:
        admin = [host_port("--token-service-admin", args.token_service_admin)]
        point_cluster(find(mine, "token_service_admin"), *admin[0])
    secure_token_service(mine, addresses + admin, args)
    if args.provider_ca_file:
        bundle = ca_file("--provider-ca-file", args.provider_ca_file)
        for name in providers:
            tls = find(mine, name)["transport_socket"]["typed_config"]
            tls["common_tls_context"]["validation_context"]["trusted_ca"] = {"filename": bundle}
    for pin in args.connect_to:
        connect_to(mine, pin)
    # Again on the final addresses: a pin may have moved a loopback cluster off the machine.
    for cluster, flag in (("token_service", "--token-service"),
                          ("token_service_admin", "--token-service-admin")):
        if not (args.no_admin and cluster == "token_service_admin"):
            refuse_plaintext_off_loopback(find(mine, cluster), flag, args.token_service_plaintext)
    resources = config.setdefault("static_resources", {})
    theirs = resources.setdefault("clusters", [])
    taken = {c["name"] for c in theirs}.intersection(c["name"] for c in mine)
    if taken:
        raise RenderError(f"clusters {sorted(taken)} already exist in your config")
    theirs += mine


def merge(config: dict, snippet: dict, args: argparse.Namespace) -> list[str]:
    """Merges in place; returns the notes (settings set, yours kept)."""
    notes: list[str] = []
    listener = own_listener(config.get("static_resources", {}).get("listeners", []),
                            args.listener)
    http_filter = copy.deepcopy(snippet["http_filter"])
    if args.wasm:
        http_filter["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = args.wasm
    for hcm in managers(listener):
        add_filter(hcm, http_filter)
        add_filter(hcm, snippet["hold_filter"])
        client_address(hcm, args.xff_num_trusted_hops, notes)
        merge_settings(hcm, snippet["connection_manager"], notes)
        add_hosts(hcm, snippet["virtual_hosts"], args.domain, admin=not args.no_admin)
    add_clusters(config, snippet["clusters"], provider_names(snippet["virtual_hosts"]), args)
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
    parser.add_argument("--xff-num-trusted-hops", type=non_negative_int, metavar="N",
                        help="N load balancers or proxies in front of Envoy append to "
                             "x-forwarded-for: the client is the address N entries from the "
                             "right (sets use_remote_address: true and xff_num_trusted_hops: "
                             "N; 0 = the TCP peer); needed if your connection manager sets "
                             "use_remote_address: false")
    parser.add_argument("--no-admin", action="store_true",
                        help="leave the /admin routes (dashboard and admin API) and the "
                             "token_service_admin cluster out: the dashboard's sign-in page is "
                             "then not shown to every client of --domain")
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
