"""``gce-plugin bootstrap``: an Envoy bootstrap that gets clusters and endpoints over ADS from this
control plane, with an admin address and one HTTP listener routing path prefixes to upstreams."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from gce_plugin.hostport import address, parse_host_port

HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
UPSTREAM_TLS = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
PREVIOUS_HOSTS = "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"

# Every route's retry policy (docs/managed-instance-groups.md, "Rollout-safe routes"). A VM that is
# gone between two discovery polls refuses the connection or resets it: the request is retried on
# another host (previous_hosts), at most twice, after a short back-off. Only failures where the
# backend produced no answer are retried; its own 5xx answers reach the client as they are.
RETRY_ON = "connect-failure,reset,refused-stream"
NUM_RETRIES = 2


def retry_policy() -> dict[str, Any]:
    return {
        "retry_on": RETRY_ON,
        "num_retries": NUM_RETRIES,
        "retry_host_predicate": [
            {
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {"@type": f"type.googleapis.com/{PREVIOUS_HOSTS}"},
            }
        ],
        # Picking a host the request already failed on is retried this many times.
        "host_selection_retry_max_attempts": 5,
        "retry_back_off": {"base_interval": "0.01s", "max_interval": "0.1s"},
    }


def cluster_for(upstream: str) -> str:
    """``name`` or ``namespace.name`` -> Gloo's cluster name (``name_namespace``)."""
    namespace, _, name = upstream.rpartition(".")
    return f"{name}_{namespace}" if namespace else name


def parse_route(value: str) -> tuple[str, str]:
    prefix, sep, upstream = value.partition("=")
    if not sep or not prefix.startswith("/") or not upstream:
        raise argparse.ArgumentTypeError(f"route {value!r}: want PREFIX=UPSTREAM, e.g. /web=default.web")
    return prefix, upstream


@dataclass(frozen=True)
class XdsClientTls:
    """How Envoy connects to an xDS server that uses TLS: the CA that signed the server's certificate,
    and for mutual TLS Envoy's own certificate and key. ``server_name``: SNI, and the DNS name the
    server's certificate must carry (unset: any certificate the CA signed)."""

    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None

    def transport_socket(self) -> dict[str, Any]:
        validation: dict[str, Any] = {"trusted_ca": {"filename": self.ca_file}}
        if self.server_name:
            validation["match_typed_subject_alt_names"] = [
                {"san_type": "DNS", "matcher": {"exact": self.server_name}}
            ]
        common: dict[str, Any] = {"validation_context": validation}
        if self.cert_file and self.key_file:
            common["tls_certificates"] = [
                {
                    "certificate_chain": {"filename": self.cert_file},
                    "private_key": {"filename": self.key_file},
                }
            ]
        context: dict[str, Any] = {
            "@type": f"type.googleapis.com/{UPSTREAM_TLS}",
            "common_tls_context": common,
        }
        if self.server_name:
            context["sni"] = self.server_name
        return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def with_tls(config: dict[str, Any], tls: XdsClientTls) -> dict[str, Any]:
    """``config`` (from ``build``) connecting to xDS over ``tls``."""
    config["static_resources"]["clusters"][0]["transport_socket"] = tls.transport_socket()
    return config


def build(
    xds_address: str | Sequence[str],
    routes: list[tuple[str, str]],
    listen: str = "127.0.0.1:10000",
    admin: str = "127.0.0.1:9901",
    node_id: str = "envoy-1",
    node_cluster: str = "gateway",
) -> dict[str, Any]:
    """The bootstrap. ``xds_address``: one control plane, or every replica of a replicated one (the
    ADS stream goes to one of them; when it breaks, Envoy reconnects to another)."""
    xds_addresses = [xds_address] if isinstance(xds_address, str) else list(xds_address)
    if not xds_addresses:
        raise ValueError("at least one xDS address")
    ads = {"ads": {}, "resource_api_version": "V3"}
    return {
        "node": {"id": node_id, "cluster": node_cluster},
        "admin": {"address": _address(admin)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds_cluster"}}],
            },
            "cds_config": ads,
        },
        "static_resources": {
            "clusters": [
                {
                    "name": "xds_cluster",
                    "type": "STRICT_DNS",
                    "connect_timeout": "1s",
                    "typed_extension_protocol_options": {
                        HTTP_PROTOCOL_OPTIONS: {
                            "@type": f"type.googleapis.com/{HTTP_PROTOCOL_OPTIONS}",
                            "explicit_http_config": {"http2_protocol_options": {}},
                        }
                    },
                    "load_assignment": {
                        "cluster_name": "xds_cluster",
                        "endpoints": [
                            {"lb_endpoints": [{"endpoint": {"address": _address(a)}} for a in xds_addresses]}
                        ],
                    },
                }
            ],
            "listeners": [
                {
                    "name": "http",
                    "address": _address(listen),
                    "filter_chains": [{"filters": [_http_connection_manager(routes)]}],
                }
            ],
        },
    }


def _address(host_port: str) -> dict[str, Any]:
    """``HOST:PORT`` as an Envoy ``Address``."""
    host, port = parse_host_port(host_port)
    return {"socket_address": {"address": host, "port_value": port}}


def _http_connection_manager(routes: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
            ".HttpConnectionManager",
            "stat_prefix": "ingress_http",
            "route_config": {
                "name": "local_route",
                # The clusters arrive later over CDS; a static route table must not insist they exist.
                "validate_clusters": False,
                "virtual_hosts": [
                    {
                        "name": "upstreams",
                        "domains": ["*"],
                        # Longest prefix first, so /api/v2 wins over /api.
                        "routes": [
                            {
                                "match": {"prefix": prefix},
                                "route": {"cluster": cluster_for(upstream), "retry_policy": retry_policy()},
                            }
                            for prefix, upstream in sorted(routes, key=lambda r: -len(r[0]))
                        ],
                    }
                ],
            },
            "http_filters": [
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                    },
                }
            ],
        },
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--xds-address",
        type=address,
        action="append",
        metavar="HOST:PORT",
        help="the control plane's xDS address (default 127.0.0.1:18000); repeat it for every replica "
        "of a replicated control plane",
    )
    parser.add_argument(
        "--route",
        action="append",
        type=parse_route,
        default=[],
        metavar="PREFIX=UPSTREAM",
        help="route a path prefix to an upstream (`name` or `namespace.name`); repeatable",
    )
    parser.add_argument(
        "--listen", type=address, default="127.0.0.1:10000", metavar="HOST:PORT", help="Envoy's HTTP listener"
    )
    parser.add_argument(
        "--admin", type=address, default="127.0.0.1:9901", metavar="HOST:PORT", help="Envoy's admin address"
    )
    parser.add_argument("--node-id", default="envoy-1", help="Envoy's node id (shown by proxy-status)")
    parser.add_argument("--node-cluster", default="gateway", help="Envoy's node cluster")
    parser.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml", help="output format")
    # xDS over TLS (run --xds-tls-cert/--xds-tls-key), and mutual TLS (run --xds-client-ca).
    tls = parser.add_argument_group("xDS TLS (paths as Envoy sees them)")
    tls.add_argument("--xds-ca", metavar="FILE", help="CA that signed the control plane's certificate")
    tls.add_argument("--xds-client-cert", metavar="FILE", help="Envoy's client certificate (mutual TLS)")
    tls.add_argument("--xds-client-key", metavar="FILE", help="Envoy's client key (mutual TLS)")
    tls.add_argument("--xds-server-name", metavar="NAME", help="SNI, and the DNS name to verify")


def client_tls(args: argparse.Namespace) -> XdsClientTls | None:
    """The TLS flags as an ``XdsClientTls``. Raises ValueError for an incomplete set."""
    if bool(args.xds_client_cert) != bool(args.xds_client_key):
        raise ValueError("give both --xds-client-cert and --xds-client-key, or neither")
    if not args.xds_ca:
        if args.xds_client_cert or args.xds_server_name:
            raise ValueError("xDS TLS needs --xds-ca (the CA that signed the control plane's certificate)")
        return None
    return XdsClientTls(args.xds_ca, args.xds_client_cert, args.xds_client_key, args.xds_server_name)


def main(args: argparse.Namespace) -> int:
    try:
        tls = client_tls(args)
    except ValueError as err:
        print(f"gce-plugin bootstrap: {err}", file=sys.stderr)
        return 2
    config = build(
        args.xds_address or ["127.0.0.1:18000"],
        args.route,
        args.listen,
        args.admin,
        args.node_id,
        args.node_cluster,
    )
    if tls is not None:
        config = with_tls(config, tls)
    if args.output == "json":
        json.dump(config, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        yaml.safe_dump(config, sys.stdout, sort_keys=False)
    return 0
