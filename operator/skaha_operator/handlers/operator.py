"""Operator start-up and clean-up: kopf settings under our API group, shared state in memo.

Finalizer and kopf's bookkeeping annotations live under `skaha.broker.dev` so they are
recognisably ours (issue 5 §7); progress stays in annotations, never in our status schema.
"""

from __future__ import annotations

from typing import Any

import kopf

from skaha_operator import GROUP, metrics
from skaha_operator.handlers.platforms import PlatformCache
from skaha_operator.handlers.state import OperatorConfig, OperatorState
from skaha_operator.k8s.api import Kube, make_api_client
from skaha_operator.platform.base import CallRecord


def _record_call(call: CallRecord) -> None:
    metrics.SKAHA_REQUESTS.labels(call.service, call.method, call.route, call.code).inc()


@kopf.on.startup()
async def on_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Configure kopf and build the shared clients."""
    config = getattr(memo, "config", None) or OperatorConfig()
    settings.persistence.finalizer = config.finalizer
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.reporting_component = "skaha-operator"
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # Our own CAS retries are short; kopf's default 60 s backoff for unexpected errors is too slow.
    settings.execution.default_backoff = 5
    kube = Kube(
        make_api_client(), on_conflict=lambda kind: metrics.CAS_CONFLICTS.labels(kind).inc()
    )
    memo.state = OperatorState(
        config=config,
        kube=kube,
        platforms=PlatformCache(kube, on_call=_record_call, http_timeout=config.http_timeout),
    )


@kopf.on.cleanup()
async def on_cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Close the platform clients."""
    st = getattr(memo, "state", None)
    if isinstance(st, OperatorState):
        await st.platforms.aclose()
        st.kube.api.close()
