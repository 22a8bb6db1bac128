"""Handler plumbing shared by every kind: requeue, events, metrics, error mapping.

Maps our typed errors to kopf's outer loop at the boundary (style.md §6): a conflict or an
unavailable platform is a TemporaryError with a delay; nothing here sleeps.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import kopf

from skaha_operator import metrics
from skaha_operator.handlers.state import OperatorState
from skaha_operator.k8s.api import ConflictError
from skaha_operator.platform.errors import Unavailable

CONFLICT_DELAY = 0.5
FRESH_ATTEMPTS = 3
# Timers are registered at import time, so their interval comes from the environment
# (the CLI's --resync sets it before importing the handlers).
RESYNC_INTERVAL = float(os.environ.get("SKAHA_OPERATOR_RESYNC", "60"))

D = TypeVar("D")


async def fresh_retries(
    step: Callable[[dict[str, Any], OperatorState], Awaitable[D]],
    body: dict[str, Any],
    st: OperatorState,
    plural: str,
) -> D:
    """Run `step`; on a conflict re-read the object and decide again (a few times, in-process).

    Going back to kopf for every conflict would make kopf write its retry annotations, which
    moves the resourceVersion again; two operators can then keep invalidating each other.
    """
    for attempt in range(FRESH_ATTEMPTS):
        try:
            return await step(body, st)
        except ConflictError:
            if attempt == FRESH_ATTEMPTS - 1:
                raise
            meta = body["metadata"]
            fresh = await st.kube.get(plural, meta["namespace"], meta["name"])
            if fresh is None:
                raise
            body = fresh
    raise AssertionError("unreachable")


REQUEUE_MARK = "requeue in "


def requeue(delay: float | None, why: str) -> None:
    """Ask kopf to run the handler again after `delay` seconds (None: nothing to wait for)."""
    if delay is not None:
        delay = max(0.0, delay)
        raise kopf.TemporaryError(f"{REQUEUE_MARK}{delay:.1f}s: {why}", delay=delay)


class RequeueIsNotAnError(logging.Filter):
    """kopf logs every TemporaryError at ERROR; a planned requeue is routine, so log it at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and f"failed temporarily: {REQUEUE_MARK}" in str(
            record.msg
        ):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def post_events(body: Any, kind: str, events: tuple[str, ...], phase: str, reason: str) -> None:
    """One Kubernetes Event per transition, carrying the reason (design §3)."""
    for text in events:
        metrics.TRANSITIONS.labels(kind, phase).inc()
        kopf.info(body, reason=reason, message=text)


@asynccontextmanager
async def reconciling(controller: str) -> AsyncIterator[None]:
    """Time one reconciliation and map conflicts and outages to requeues."""
    started = time.perf_counter()
    result = "success"
    try:
        yield
    except kopf.TemporaryError:
        result = "requeue_after"
        raise
    except ConflictError as exc:
        # Someone moved first: re-read (kopf hands us a fresh body) and decide again.
        result = "requeue"
        raise kopf.TemporaryError(str(exc), delay=CONFLICT_DELAY) from None
    except Unavailable as exc:
        result = "requeue_after"
        delay = exc.retry_after if exc.retry_after is not None else 5.0
        raise kopf.TemporaryError(f"platform unavailable: {exc}", delay=delay) from None
    except Exception:
        result = "error"
        metrics.RECONCILE_ERRORS.labels(controller).inc()
        raise
    finally:
        metrics.RECONCILE_TOTAL.labels(controller, result).inc()
        metrics.RECONCILE_TIME.labels(controller).observe(time.perf_counter() - started)
