"""Command line for the simulator: `skaha-operator simulator` (wired by the CLI) or `python -m`.

Config comes from `--config` (JSON or YAML), then `SKAHA_SIM_<FIELD>` environment variables,
then the flags. Logs the listening URL; never logs tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from skaha_operator.simulator.config import SimulatorConfig, load_config
from skaha_operator.simulator.server import Simulator

log = logging.getLogger("skaha_operator.simulator")
DEFAULT_PORT = 8765


async def serve_forever(config: SimulatorConfig, host: str, port: int) -> None:
    """Serve the simulator until cancelled."""
    sim = Simulator(config)
    runner = sim.job_runner
    log.info(
        "headless sessions: %s (%s)",
        "containers on " + str(runner.engine) if runner.mode == "container" else "emulated",
        runner.reason,
    )
    try:
        async with sim.serve(host=host, port=port) as running:
            log.info(
                "simulator listening: skaha %s/skaha/v1, cavern %s/arc, rucio %s/rucio, "
                "control %s/_sim",
                running.base_url,
                running.base_url,
                running.base_url,
                running.base_url,
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            # SIGTERM (kill, process managers) stops cleanly so the Cavern temp dir is removed;
            # outside the main thread signal handlers cannot be installed, and cancel still works.
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, stop.set)
            await stop.wait()
    finally:
        sim.close()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by the lead's CLI wiring)."""
    parser = argparse.ArgumentParser(
        prog="skaha-operator simulator",
        description="Serve a faithful local Skaha v1 + Cavern + Rucio simulator.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--config", type=Path, help="JSON or YAML file of SimulatorConfig fields")
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--frozen-clock", action="store_true", help="time moves only via /_sim/clock"
    )
    parser.add_argument(
        "--jobs",
        choices=("auto", "container", "emulate"),
        default=None,
        help="headless sessions as containers (container), emulated (emulate), or containers "
        "where podman and the stand-in image exist (auto, the default here)",
    )
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="TOKEN=USER",
        help="add a bearer token for a user (repeatable)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """Merge file, environment and flags into one config."""
    config = load_config(args.config)
    updates: dict[str, object] = {}
    if args.jobs is not None:
        updates["job_mode"] = args.jobs
    elif "job_mode" not in config.model_fields_set:
        updates["job_mode"] = "auto"  # the served simulator runs jobs for real where it can
    if args.seed is not None:
        updates["seed"] = args.seed
    if args.frozen_clock:
        updates["frozen_clock"] = True
    if args.token:
        tokens = dict(config.tokens)
        for item in args.token:
            token, sep, user = item.partition("=")
            if not sep or not token or not user:
                raise SystemExit("--token expects TOKEN=USER, got a value without '='")
            tokens[token] = user
        updates["tokens"] = tokens
    return config.model_copy(update=updates)


def main(argv: list[str] | None = None) -> int:
    """Run the simulator in the foreground; returns the exit status."""
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(serve_forever(config, args.host, args.port))
    except KeyboardInterrupt:
        return 0
    return 0
