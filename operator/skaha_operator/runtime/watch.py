"""Our objects as kopf's watches deliver them, and the wake-ups their changes cause.

Steps observe other objects (the platform, a Compute's dependencies, a Session's parts) on every
run; reading them from this watch-fed cache instead of a GET each time removes most API reads
(docs/performance.md). The cache may lag the API server by one watch event; that is safe because
observations only gate decisions and every transition is a guarded write on the object itself (a
step's own object is always read fresh). At start-up one LIST per kind primes it (`prime`); a
miss (not seen yet) falls back to a GET.

Wake-ups replace waiting for the next requeue (once the cache is primed): a part whose state a
Session shows (phase, reason, message, Ready/Stalled, connectors) wakes its Session; a
DockerContainer, JupyterNotebook, Storage or Data whose phase changed wakes the Computes that use
it. Wake-ups are
scheduled a moment later so that a burst of events coalesces into one step (runtime/requeue.py).
An object whose deletion has begun is stepped at once: its release is the same step
(runtime/driver.py).

Every replica caches every object, the shards it does not hold included (runtime/shards.py): a
wake-up of an object another replica holds is dropped by the step.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

import kopf

from skaha_operator import GROUP, VERSION
from skaha_operator.controllers.skaha_platform import DEPENDENT_PLURALS
from skaha_operator.domain.common import TERMINAL_PHASES, Phase
from skaha_operator.domain.kinds import DEPENDENCY_KIND_NAMES, KINDS, PART_KINDS, plural_of
from skaha_operator.k8s.objects import part_view
from skaha_operator.reconcile.compute import QUEUE_REASON
from skaha_operator.runtime.state import OperatorState, state

logger = logging.getLogger(__name__)
PLURALS = tuple(k.crd.plural for k in KINDS)
# Kinds a Session owns (their events wake it) and kinds a Compute waits for (theirs wake it).
PART_PLURALS = frozenset(plural_of(k) for k in PART_KINDS)
DEPENDENCY_KINDS = {plural_of(k): k for k in DEPENDENCY_KIND_NAMES}
WAKE_DELAY = 0.1  # coalesce a burst of part events into one Session step


def observe_event(
    plural: str, event_type: str | None, body: dict[str, Any], st: OperatorState
) -> None:
    """Update the cache from one watch event and schedule the wake-ups it causes."""
    meta = body.get("metadata") or {}
    ns, name = meta.get("namespace"), meta.get("name")
    if not ns or not name:
        return
    gone = event_type == "DELETED" or (_deleting(body) and not meta.get("finalizers"))
    changed, old = _update_cache(plural, ns, name, body, gone, st)
    if not changed or not st.listed:
        # Before the cache is primed (start-up) nobody is woken: every object gets its own
        # first step anyway, and a wake-up now would read what is not cached yet (`prime`).
        return
    if plural in PART_PLURALS:
        # The controlling owner reference names the Session (the label may be shortened).
        for owner in meta.get("ownerReferences") or []:
            if owner.get("kind") == "Session":
                st.requeuer.schedule(("sessions", ns, owner["name"]), WAKE_DELAY)
    if plural == "computes":
        _wake_queue(ns, old, None if gone else body, st)
    if plural == "skahaplatforms":
        _wake_dependents(ns, name, st)
    kind = DEPENDENCY_KINDS.get(plural)
    old_phase = ((old or {}).get("status") or {}).get("phase")
    new_phase = None if gone else (body.get("status") or {}).get("phase")
    if kind is not None and old_phase != new_phase:
        for compute in st.ctx.cache.users(ns, kind, name):
            st.requeuer.schedule(("computes", ns, compute), WAKE_DELAY)


def _update_cache(
    plural: str, ns: str, name: str, body: dict[str, Any], gone: bool, st: OperatorState
) -> tuple[bool, dict[str, Any] | None]:
    """Store or drop the body; (whether what a Session shows changed, the previous body).

    `gone` also covers the body our own finalizer removal stored: the object no longer exists
    (its DELETED event may already have been handled; caching it would bring back a ghost).
    """
    cache = st.ctx.cache
    if gone:
        old = cache.peek(plural, ns, name)
        cache.drop(plural, ns, name)
        st.requeuer.forget((plural, ns, name))
        st.forget(str(body["metadata"].get("uid", "")))
        return True, old
    old = cache.put(plural, body)
    if _deleting(body) and (old is None or not _deleting(old)):
        # Release is the same step; nothing else calls it (runtime/register.py).
        st.requeuer.schedule((plural, ns, name), 0.0)
    return old is None or part_view(old) != part_view(body), old


def _deleting(body: dict[str, Any]) -> bool:
    return bool((body.get("metadata") or {}).get("deletionTimestamp"))


def _wake_dependents(ns: str, platform: str, st: OperatorState) -> None:
    """A platform's state changed (Ready, Unauthorized, ...): the objects using it look again."""
    for plural in DEPENDENT_PLURALS:
        for body in st.ctx.cache.each(plural):
            meta = body["metadata"]
            if (
                meta.get("namespace") == ns
                and (body.get("spec") or {}).get("platformRef") == platform
            ):
                st.requeuer.schedule((plural, ns, meta["name"]), WAKE_DELAY)


FREEING = frozenset({Phase.RELEASING, *TERMINAL_PHASES})


def _wake_queue(
    ns: str, old: dict[str, Any] | None, new: dict[str, Any] | None, st: OperatorState
) -> None:
    """A Compute that ended or went frees a slot: wake the Computes queued on its platform."""
    before = ((old or {}).get("status") or {}).get("phase")
    after = ((new or {}).get("status") or {}).get("phase") if new is not None else None
    if new is not None and (after not in FREEING or before in FREEING):
        return
    platform = ((old or new or {}).get("spec") or {}).get("platformRef")
    st.ctx.slots.forget_listing(ns, str(platform))
    for body in st.ctx.cache.each("computes"):
        meta = body["metadata"]
        if (
            meta.get("namespace") == ns
            and (body.get("spec") or {}).get("platformRef") == platform
            and (body.get("status") or {}).get("reason") == QUEUE_REASON
        ):
            st.requeuer.schedule(("computes", ns, meta["name"]), WAKE_DELAY)


class QuietCacheHandler(logging.Filter):
    """kopf logs every handler call; the cache handlers run on every watch event, so drop theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Handler 'cache")


def register_watch(plural: str) -> None:
    """Feed the cache from every watch event of `plural`."""

    @kopf.on.event(GROUP, VERSION, plural, id="cache")
    async def on_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        """Keep the cache current and wake whoever waits for this object."""
        kind = event.get("type") if isinstance(event, dict) else None
        _observe(plural, kind, body, state(memo))


async def prime(st: OperatorState, namespaces: list[str]) -> int:
    """Fill the cache with one paged LIST per kind before kopf hands over the first object.

    kopf lists each kind on its own and steps each object as it arrives: a Session that came
    before its parts read each of them with a GET, and the wake-ups its parts' events caused
    read more (2 GETs per Session after a restart). Primed, every step after a restart reads
    from the cache. An object deleted between this LIST and kopf's own is never delivered by
    kopf: its entry is dropped at the first resync (`ObjectCache.drop_unconfirmed`). Until the
    cache is primed, events wake no one (every object gets its own first step anyway). An
    object being deleted is left out: kopf calls no handler for it, and its first watch event,
    finding it new to the cache, is what steps its release at once (`_update_cache`).
    Namespace patterns are not listed here (kopf resolves them): their objects are read as
    before.
    """
    count = 0
    try:
        if any(ch in ns for ns in namespaces for ch in "*?[!"):
            return 0
        for plural in PLURALS:
            scopes: list[str | None] = list(namespaces) or [None]  # None: every namespace
            for ns in scopes:
                for body in await st.ctx.kube.list_all(plural, ns):
                    if _deleting(body):
                        continue  # its watch event (never seen before) steps its release at once
                    st.ctx.cache.prime(plural, body)
                    count += 1
    except Exception as exc:  # only a saving: steps read what is missing
        logger.warning("the cache was not primed (%s); steps read what it lacks", exc)
    finally:
        st.listed = True
    return count


def _observe(plural: str, kind: str | None, body: kopf.Body, st: OperatorState) -> None:
    if st.event_context is None:
        st.event_context = contextvars.copy_context()  # where kopf's Event queue is known
    if st.tracer is not None:
        meta, status = body.get("metadata") or {}, body.get("status") or {}
        st.tracer.record("event", p=plural, ns=meta.get("namespace"), n=meta.get("name"),
                         rv=meta.get("resourceVersion"), type=kind,
                         phase=status.get("phase"), reason=status.get("reason"))  # fmt: skip
    observe_event(plural, kind, dict(body), st)
