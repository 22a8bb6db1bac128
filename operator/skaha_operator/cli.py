"""Command line: `skaha-operator <command>`.

Owns argument parsing only; each command lives in its own module and is imported lazily so
that `skaha-operator simulator` does not pay for kopf, nor `controlplane` for the simulator.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from skaha_operator.platform.hosts import HostPolicy


def _controlplane(args: argparse.Namespace) -> int:
    from skaha_operator.controlplane import ControlPlane

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with ControlPlane(controller_manager=args.controller_manager) as cp:
        sys.stdout.write(
            f"kube-apiserver {cp.version()['gitVersion']} at {cp.server}\n"
            f"export KUBECONFIG={cp.kubeconfig}\n"
            "Ctrl-C stops it and removes its data.\n"
        )
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


def _run(args: argparse.Namespace, hosts: HostPolicy) -> int:
    from skaha_operator.controllers.context import OperatorConfig
    from skaha_operator.metrics_server import serve_metrics
    from skaha_operator.reconcile.timing import Timing
    from skaha_operator.runtime.run import run_operator
    from skaha_operator.runtime.shards import (
        LeaseConfig,
        default_group,
        default_identity,
        default_lease_namespace,
    )

    leases = None
    if args.election:
        if args.shards < 1 or args.lease_renew <= 0 or args.lease_duration < 2 * args.lease_renew:
            sys.stderr.write("need --shards >= 1 and --lease-duration >= 2 x --lease-renew > 0\n")
            return 2
        leases = LeaseConfig(
            namespace=args.lease_namespace or default_lease_namespace(args.namespace),
            group=args.lease_name or default_group(args.namespace),
            identity=args.identity or default_identity(),
            shards=args.shards,
            duration=args.lease_duration,
            renew=args.lease_renew,
        )
    if args.metrics_port:
        serve_metrics(
            args.metrics_port,
            args.metrics_address,
            insecure=args.metrics_insecure,
            cert_dir=args.metrics_cert_dir,
        )
    timing = Timing(
        poll_base=args.poll_base,
        poll_cap=args.poll_cap,
        resync=args.resync,
        adopt_grace=args.adopt_grace,
        renew_before=args.renew_before,
        max_launch_attempts=args.max_launch_attempts,
    )
    config = OperatorConfig(
        timing=timing,
        resync_interval=args.resync,
        http_timeout=args.http_timeout,
        ca_bundle=args.ca_bundle,
        allowed_hosts=hosts,
    )
    if args.downloader_image:
        config.downloader_image = args.downloader_image
    if args.ca_bundle:
        # Fail at start, not at the first platform call, when the bundle is unreadable.
        from skaha_operator.platform.base import trust_context

        trust_context(args.ca_bundle)
    run_operator(
        config,
        namespaces=args.namespace,
        leases=leases,
        liveness=args.liveness,
        json_logs=args.log_format == "json",
        verbose=args.verbose,
    )
    return 0


def _simulator(argv: list[str]) -> int:
    from skaha_operator.simulator import main as simulator_main

    code: int = simulator_main(argv)
    return code


def _demo(argv: list[str]) -> int:
    from skaha_operator.demo import main as demo_main

    return demo_main(argv)


def _election_args(run: argparse.ArgumentParser) -> None:
    env = os.environ.get
    run.add_argument(
        "--election",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="split the objects among replicas by shard Leases (default); --no-election: step "
        "every object, with no Lease (the guarded writes still keep replicas apart)",
    )
    run.add_argument(
        "--shards",
        type=int,
        default=int(env("SKAHA_OPERATOR_SHARDS", "16")),
        help="shards the objects are split into; every replica must use the same number",
    )
    run.add_argument(
        "--lease-namespace",
        default=env("SKAHA_OPERATOR_LEASE_NAMESPACE"),
        help="namespace of the Leases (default: $POD_NAMESPACE, else the first -n, else default)",
    )
    run.add_argument(
        "--lease-name",
        default=env("SKAHA_OPERATOR_LEASE_NAME"),
        help="name prefix (group) of the Leases; replicas with the same one split the shards "
        "(default: skaha-operator, plus a hash of the -n namespaces when given)",
    )
    run.add_argument(
        "--identity",
        default=env("SKAHA_OPERATOR_IDENTITY"),
        help="this replica's name in the Leases and Events (default: $POD_NAME, else host-pid)",
    )
    run.add_argument(
        "--lease-duration",
        type=float,
        default=10.0,
        help="a Lease not renewed this long expires (s)",
    )
    run.add_argument("--lease-renew", type=float, default=3.0, help="Lease renewal period (s)")


NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # an RFC 1123 label


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `skaha-operator` command."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="skaha-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    cp = sub.add_parser("controlplane", help="run a local etcd + kube-apiserver until Ctrl-C")
    cp.add_argument(
        "--controller-manager", action="store_true", help="also run kube-controller-manager"
    )
    run = sub.add_parser("run", help="run the operator against the current kubeconfig/cluster")
    run.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: all namespaces",
    )
    run.add_argument(
        "--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz"
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="Prometheus port (0: off); HTTPS with TokenReview + SubjectAccessReview "
        "(get /metrics) unless --metrics-insecure",
    )
    run.add_argument("--metrics-address", default="0.0.0.0", help="Prometheus bind address")
    run.add_argument(
        "--metrics-insecure",
        action="store_true",
        help="serve /metrics over plain HTTP without authentication (local use only)",
    )
    run.add_argument(
        "--metrics-cert-dir",
        type=Path,
        default=None,
        help="directory with tls.crt and tls.key for /metrics (default: self-signed at start)",
    )
    run.add_argument(
        "--allowed-hosts",
        action="append",
        default=[],
        metavar="HOSTS",
        help="hosts a SkahaPlatform's URLs may name (repeatable or comma-separated): names, "
        "*.wildcards, IP addresses, CIDR ranges; default none listed = public hosts only. "
        "Loopback, link-local, private and cluster-internal hosts need an explicit entry",
    )
    run.add_argument("--log-format", choices=("text", "json"), default="text")
    run.add_argument("--verbose", action="store_true")
    run.add_argument("--poll-base", type=float, default=1.0, help="first poll delay (s)")
    run.add_argument("--poll-cap", type=float, default=30.0, help="longest poll delay (s)")
    run.add_argument("--resync", type=float, default=60.0, help="resync interval (s)")
    run.add_argument(
        "--http-timeout", type=float, default=30.0, help="read timeout of platform calls (s)"
    )
    run.add_argument(
        "--adopt-grace",
        type=float,
        default=90.0,
        help="how long a launch with an unknown outcome is looked for by name (s)",
    )
    run.add_argument(
        "--renew-before",
        type=float,
        default=3600.0,
        help="renew an interactive session when less than this much (s) of its expiry is left "
        "(at most half the site's session lifetime)",
    )
    run.add_argument(
        "--max-launch-attempts",
        type=int,
        default=6,
        help="requests sent for one launch before a Compute stalls LaunchLost",
    )
    run.add_argument(
        "--downloader-image",
        default=None,
        help="image of HTTP(S) download jobs (needs sh, curl or wget, sha256sum); default: "
        "$SKAHA_OPERATOR_DOWNLOADER_IMAGE, else images.canfar.net/skaha/terminal:1.1.2",
    )
    run.add_argument(
        "--ca-bundle",
        default=None,
        metavar="FILE",
        help="PEM file of extra CAs trusted for Skaha, Cavern and Rucio (on top of the public "
        "CAs); a platform may add its own with spec.caBundleSecretRef",
    )
    _election_args(run)
    sub.add_parser("simulator", help="run the Skaha/Cavern/Rucio simulator", add_help=False)
    sub.add_parser("demo", help="the one-command demo (see `demo --help`)", add_help=False)
    if argv[:1] == ["simulator"]:
        return _simulator(argv[1:])
    if argv[:1] == ["demo"]:
        return _demo(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "controlplane":
        return _controlplane(args)
    if args.command == "run":
        from skaha_operator.platform.hosts import HostPolicy

        try:
            hosts = HostPolicy.parse(args.allowed_hosts)
        except ValueError as exc:
            parser.error(f"--allowed-hosts: {exc}")
        for ns in args.namespace:
            if not NAMESPACE.fullmatch(ns):
                # The operator lists and watches each namespace by name (runtime/watch.py).
                parser.error(f"--namespace {ns!r}: a namespace name (patterns are not supported)")
        return _run(args, hosts)
    parser.error(f"unknown command {args.command}")
    return 2
