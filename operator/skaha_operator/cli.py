"""Command line: `skaha-operator <command>`.

Owns argument parsing only; each command lives in its own module and is imported lazily so
that `skaha-operator simulator` does not pay for kopf, nor `controlplane` for the simulator.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading


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


def _simulator(argv: list[str]) -> int:
    from skaha_operator.platform.simulator import main as simulator_main

    code: int = simulator_main(argv)
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `skaha-operator` command."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="skaha-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    cp = sub.add_parser("controlplane", help="run a local etcd + kube-apiserver until Ctrl-C")
    cp.add_argument(
        "--controller-manager", action="store_true", help="also run kube-controller-manager"
    )
    sub.add_parser("simulator", help="run the Skaha/Cavern/Rucio simulator", add_help=False)
    if argv[:1] == ["simulator"]:
        return _simulator(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "controlplane":
        return _controlplane(args)
    parser.error(f"unknown command {args.command}")
    return 2
