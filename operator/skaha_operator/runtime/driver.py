"""The step driver: one step of one object at a time, conflicts and outages mapped to delays.

Every kopf handler, timer and in-memory wake-up ends here (runtime/register.py). A step runs under
the object's lock (runtime/requeue.py), so a release never overlaps a launch in flight in this
process. A conflict re-reads the object and decides again in-process (a deletion that landed
meanwhile is then seen by the same decision); an unavailable platform becomes a delay. For an
object being deleted the step's answer is "released" (kopf removes the finalizer) or a delay, which
is the only place `kopf.TemporaryError` is raised (docs/design.md §4.4, §4.6).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import kopf

from skaha_operator import metrics
from skaha_operator.controllers.base import Controller, Outcome
from skaha_operator.k8s.api import ConflictError
from skaha_operator.platform.errors import AuthError, Unavailable
from skaha_operator.runtime.requeue import Key
from skaha_operator.runtime.state import OperatorState

logger = logging.getLogger(__name__)

CONFLICT_DELAY = 0.5
FRESH_ATTEMPTS = 3
UNAVAILABLE_DELAY = 5.0
AUTH_DELAY = 10.0
REQUEUE_MARK = "requeue in "


def key_of(plural: str, body: Any) -> Key:
    """The requeue key of an object."""
    meta = body["metadata"]
    return (plural, str(meta["namespace"]), str(meta["name"]))


async def _fresh_retries(
    controller: Controller, body: dict[str, Any], st: OperatorState
) -> Outcome:
    """Step; on a conflict re-read the object and decide again (a few times, in-process).

    Going back to kopf for every conflict would make kopf write its retry annotations, which
    moves the resourceVersion again; two operators can then keep invalidating each other.
    """
    for attempt in range(FRESH_ATTEMPTS):
        try:
            return await controller.step(body, st.ctx)
        except ConflictError:
            if attempt == FRESH_ATTEMPTS - 1:
                raise
            meta = body["metadata"]
            fresh = await st.ctx.kube.get(controller.plural, meta["namespace"], meta["name"])
            if fresh is None:
                return Outcome(None, released=True)
            body = fresh
    raise AssertionError("unreachable")


@asynccontextmanager
async def _timed(kind: str) -> AsyncIterator[list[str]]:
    started = time.perf_counter()
    result = ["success"]
    try:
        yield result
    except Exception:
        result[0] = "error"
        metrics.RECONCILE_ERRORS.labels(kind).inc()
        raise
    finally:
        metrics.RECONCILE_TOTAL.labels(kind, result[0]).inc()
        metrics.RECONCILE_TIME.labels(kind).observe(time.perf_counter() - started)


async def step_once(
    controller: Controller, st: OperatorState, key: Key, body: Any = None
) -> Outcome:
    """One step of one object, never two at once for the same object in this process.

    Without a body (an in-memory wake-up) the object comes from the watch-fed cache, which also
    holds what our own last write stored (a GET when it is not cached); a stale view only costs a
    refused guarded write and a re-read. Returns when to step again.
    """
    async with st.requeuer.lock(key):
        if body is None:
            body = await st.ctx.cache.get(*key)
        if body is None:
            return Outcome(None, released=True)
        async with _timed(controller.kind) as result:
            try:
                outcome = await _fresh_retries(controller, dict(body), st)
            except ConflictError:
                result[0] = "requeue"
                return Outcome(CONFLICT_DELAY)
            except AuthError as exc:
                # A state of the platform, not of this object: have the platform probed now
                # (it reads its Secret afresh); its new status wakes this object again.
                result[0] = "requeue_after"
                ref = str((body.get("spec") or {}).get("platformRef") or "")
                logger.info("%s %s/%s: platform %s refused our credentials: %s",
                            controller.kind, key[1], key[2], ref, exc)  # fmt: skip
                if ref:
                    st.ctx.platforms.forget(key[1], ref)
                    st.requeuer.schedule(("skahaplatforms", key[1], ref), 0.0)
                return Outcome(AUTH_DELAY)
            except Unavailable as exc:
                result[0] = "requeue_after"
                delay = exc.retry_after if exc.retry_after is not None else UNAVAILABLE_DELAY
                return Outcome(delay)
            if outcome.requeue_after is not None:
                result[0] = "requeue_after"
            return outcome


async def drive(controller: Controller, body: Any, st: OperatorState) -> None:
    """Step a live object now (from a kopf handler), then keep it going with in-memory wake-ups.

    An object being deleted is left to the delete handler (`release`), which kopf retries.
    """
    if body.get("metadata", {}).get("deletionTimestamp"):
        return
    key = key_of(controller.plural, body)
    st.requeuer.schedule(key, (await step_once(controller, st, key, body)).requeue_after)


async def release(controller: Controller, body: Any, st: OperatorState) -> None:
    """The delete handler: step until released; kopf then removes the finalizer."""
    key = key_of(controller.plural, body)
    st.requeuer.cancel(key)
    outcome = await step_once(controller, st, key, body)
    if not outcome.released:
        delay = outcome.requeue_after if outcome.requeue_after is not None else 5.0
        raise kopf.TemporaryError(f"{REQUEUE_MARK}{delay:.1f}s: releasing", delay=delay)


class RequeueIsNotAnError(logging.Filter):
    """kopf logs every TemporaryError at ERROR; a planned wait in a release is routine: INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and f"failed temporarily: {REQUEUE_MARK}" in str(
            record.msg
        ):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class RetryIsNotAnError(logging.Filter):
    """kopf logs every retried API request at ERROR ("Request attempt #1/9 failed; will retry"),
    e.g. while a just-created CRD's storage initialises or the API server restarts. A retry
    that may still succeed is a routine wait: INFO. The last attempt ("escalating") stays ERROR.

    Installed on the root logger's handlers: kopf logs these on its module loggers, whose
    records a filter on a parent logger would never see."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and "failed; will retry" in str(record.msg):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True
