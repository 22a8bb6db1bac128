"""The step driver: one step of one object at a time, conflicts and outages mapped to delays.

Every first sighting, spec edit, deletion, wake-up and resync ends here (runtime/watch.py). A
step runs under the object's lock (runtime/requeue.py), so a release never overlaps a launch in
flight in this process. A conflict re-reads the object and decides again in-process (a deletion
that landed meanwhile is then seen by the same decision); an unavailable platform becomes a
delay.

The finalizer is ours, not kopf's (docs/design.md §4.6): the first step of an object that lacks it
puts it on before anything is launched, and the step that finds a deleting object released takes
it off. A release that is not finished yet is an ordinary wake-up, as for a live object, so
releasing costs no bookkeeping write, and whichever operator holds the object's shard
(runtime/shards.py) carries the release on, including one that takes the shard over mid-release.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from kubernetes import client

from skaha_operator import metrics
from skaha_operator.controllers.base import Controller, Outcome
from skaha_operator.k8s.api import ConflictError, NamespaceTerminating
from skaha_operator.platform.base import retry_after_seconds
from skaha_operator.platform.errors import AuthError, Unavailable
from skaha_operator.runtime import trace
from skaha_operator.runtime.requeue import Key
from skaha_operator.runtime.state import OperatorState

logger = logging.getLogger(__name__)

CONFLICT_DELAY = 0.5
FRESH_ATTEMPTS = 3
UNAVAILABLE_DELAY = 5.0
TERMINATING_DELAY = 30.0  # a namespace being deleted: its deletion event wakes the object sooner
AUTH_DELAY = 10.0
RELEASE_RETRY = 5.0  # a release that names no delay of its own looks again this soon
# Answers of an API server that is busy or not ready, each a routine wait (docs/kubernetes-notes.md
# §11): 429 from priority and fairness, 503 while a just-created CRD's schema is not yet known to
# admission or the server shuts down, 504 when storage is slow. Stepped again after the server's
# Retry-After, else BUSY_DELAY; creates are idempotent and status writes guarded, so a 504 whose
# request did commit costs one refused write at most.
BUSY = frozenset({429, 503, 504})
BUSY_DELAY = 1.0


def deleting(body: dict[str, Any]) -> bool:
    """Whether the object is being deleted (it stays until our finalizer goes)."""
    return bool((body.get("metadata") or {}).get("deletionTimestamp"))


async def _fresh_retries(
    controller: Controller, body: dict[str, Any], st: OperatorState
) -> tuple[Outcome, dict[str, Any] | None]:
    """Step; on a conflict re-read the object and decide again (a few times, in-process).

    Returns the outcome and the body it was decided from (None: the object is gone).
    """
    finalizer = st.ctx.config.finalizer
    for attempt in range(FRESH_ATTEMPTS):
        try:
            if not deleting(body):
                # Ours before anything is launched for it; the parts a Session creates carry
                # it from their create, so this costs a write only for what people create.
                body = await st.ctx.kube.add_finalizer(controller.plural, body, finalizer)
            return await controller.step(body, st.ctx), body
        except ConflictError:
            if attempt == FRESH_ATTEMPTS - 1:
                raise
            meta = body["metadata"]
            fresh = await st.ctx.kube.get(controller.plural, meta["namespace"], meta["name"])
            if fresh is None:
                return Outcome(None, released=True), None
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


async def step_once(controller: Controller, st: OperatorState, key: Key) -> float | None:
    """One step of one object, live or being deleted; returns when to step it again.

    Never two at once for the same object in this process. The object comes from the watch-fed
    cache, which also holds what our own last write stored (a GET when it is not cached); a stale
    view only costs a refused guarded write and a re-read. An object in a shard this operator
    does not hold is not stepped: its holder steps it.
    """
    if st.tracer is None:
        return await _step_once(controller, st, key)
    started = time.time()
    token = trace.current.set(key)
    try:
        delay = await _step_once(controller, st, key)
    finally:
        trace.current.reset(token)
    st.tracer.record("step", p=key[0], ns=key[1], n=key[2], t0=started, next=delay)
    return delay


async def _step_once(controller: Controller, st: OperatorState, key: Key) -> float | None:
    async with st.requeuer.lock(key):
        body = await st.ctx.cache.get(*key)
        if body is None or not st.shards.holds(key[1], body, key):
            return None
        async with _timed(controller.kind) as result:
            try:
                outcome, seen = await _fresh_retries(controller, dict(body), st)
                if seen is not None and deleting(seen):
                    if outcome.released:
                        await st.ctx.kube.remove_finalizer(
                            controller.plural, seen, st.ctx.config.finalizer
                        )
                        return None
                    result[0] = "requeue_after"
                    return outcome.requeue_after or RELEASE_RETRY
            except ConflictError:
                result[0] = "requeue"
                return CONFLICT_DELAY
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
                return AUTH_DELAY
            except Unavailable as exc:
                result[0] = "requeue_after"
                return exc.retry_after if exc.retry_after is not None else UNAVAILABLE_DELAY
            except client.ApiException as exc:
                if exc.status not in BUSY:
                    raise
                # The API server is busy or not ready: a routine wait, the step is idempotent.
                result[0] = "requeue_after"
                delay = _retry_after(exc)
                logger.info("%s %s/%s: the API server answered %s %s; again in %g s",
                            controller.kind, *key[1:], exc.status, exc.reason, delay)  # fmt: skip
                return delay
            except NamespaceTerminating:
                # Nothing can be created there any more; the namespace's deletion deletes this
                # object next, and that event steps it again (its release needs no create).
                result[0] = "requeue_after"
                logger.info("%s %s/%s: its namespace is being deleted; nothing is created",
                            controller.kind, key[1], key[2])  # fmt: skip
                return TERMINATING_DELAY
            if outcome.requeue_after is not None:
                result[0] = "requeue_after"
            return outcome.requeue_after


def _retry_after(exc: client.ApiException) -> float:
    """The server's Retry-After in seconds (kept within 1-30 s), else BUSY_DELAY."""
    seconds = retry_after_seconds((exc.headers or {}).get("Retry-After"))
    return BUSY_DELAY if seconds is None else min(max(seconds, 1.0), 30.0)


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
