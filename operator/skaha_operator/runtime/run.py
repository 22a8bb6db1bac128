"""Run the operator: kopf's operator loop with our start-up, probe and clean-up handlers."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

import kopf

from skaha_operator.controllers.context import OperatorConfig

# Importing it registers the start-up, probe and clean-up handlers with kopf's default registry.
from skaha_operator.runtime import startup  # noqa: F401
from skaha_operator.runtime.driver import RetryIsNotAnError
from skaha_operator.runtime.shards import LeaseConfig


def run_operator(
    config: OperatorConfig,
    *,
    namespaces: Sequence[str] = (),
    leases: LeaseConfig | None = None,
    liveness: str | None = None,
    json_logs: bool = False,
    verbose: bool = False,
    stop_flag: threading.Event | None = None,
    standalone: bool = True,
) -> None:
    """Run until stopped (SIGINT/SIGTERM, or `stop_flag`); `leases` None: election off."""
    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if json_logs else kopf.LogFormat.FULL,
        log_refkey="object" if json_logs else None,
    )
    for handler in logging.getLogger().handlers:  # kopf.configure's stream handler
        handler.addFilter(RetryIsNotAnError())
    # httpx logs every request at INFO: a line per Skaha look at every running job, 33 a second
    # with 1,000 headless jobs at the 30 s poll cap. skaha_requests_total counts them; a failed
    # one is logged by our client (platform/base.py). --verbose shows them again.
    logging.getLogger("httpx").setLevel(logging.INFO if verbose else logging.WARNING)
    asyncio.run(
        kopf.operator(
            memo=kopf.Memo(config=config, namespaces=list(namespaces), leases=leases),
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            liveness_endpoint=liveness,
            standalone=standalone,
            stop_flag=stop_flag,
        )
    )
