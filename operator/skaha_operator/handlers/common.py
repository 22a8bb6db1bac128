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
from typing import Any, Protocol, TypeVar

import kopf

from skaha_operator import metrics
from skaha_operator.handlers.requeue import Key
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


class Outcome:
    """The result label of one reconciliation; a step that asks to be run again sets it."""

    result = "success"


@asynccontextmanager
async def reconciling(controller: str) -> AsyncIterator[Outcome]:
    """Time one reconciliation and map conflicts and outages to requeues."""
    started = time.perf_counter()
    outcome = Outcome()
    result = "success"
    try:
        yield outcome
        result = outcome.result
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


class Stepped(Protocol):
    """A decision that says when to look again (None: nothing to wait for)."""

    @property
    def requeue_after(self) -> float | None: ...


Step = Callable[[dict[str, Any], OperatorState], Awaitable[Stepped]]


def key_of(plural: str, body: Any) -> Key:
    """The requeue key of an object."""
    meta = body["metadata"]
    return (plural, str(meta["namespace"]), str(meta["name"]))


async def step_once(
    kind: str, plural: str, step: Step, st: OperatorState, key: Key, body: Any = None
) -> float | None:
    """One step of one object, never two at once for the same object in this process.

    Without a body (an in-memory wake-up) the object comes from the watch-fed cache, which also
    holds what our own last write stored (a GET when it is not cached); a stale view only costs a
    refused guarded write and a re-read. A deleted or deleting object is left to kopf's delete
    handler. Returns when to step again: the decision's delay,
    or the delay of a conflict or outage (mapped by `reconciling`).
    """
    async with st.requeuer.lock(key):
        if body is None:
            body = await st.cache.get(plural, key[1], key[2])
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            return None
        try:
            async with reconciling(kind) as outcome:
                decision = await fresh_retries(step, dict(body), st, plural)
                if decision.requeue_after is not None:
                    outcome.result = "requeue_after"
        except kopf.TemporaryError as exc:
            return exc.delay
        return decision.requeue_after


async def drive(kind: str, plural: str, step: Step, body: Any, st: OperatorState) -> None:
    """Step now (from a kopf handler), then keep the object going with in-memory wake-ups.

    This replaces `requeue()` in the create/resume handlers: kopf's handler finishes at once, so
    kopf writes nothing for the wait (handlers/requeue.py).
    """
    key = key_of(plural, body)
    st.requeuer.schedule(key, await step_once(kind, plural, step, st, key, body))
