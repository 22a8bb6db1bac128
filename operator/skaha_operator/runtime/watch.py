"""Our objects as the operator's own watches deliver them: the cache, the steps and the wake-ups.

Per kind and watched namespace (or once for every namespace), one LIST and then a WATCH from the
list's resourceVersion (k8s/watching.py): nothing is missed between the two and nothing is
delivered twice. At start-up every kind is listed before anything is stepped, so every step, the
first ones after a restart included, reads the objects it observes from this cache: a miss (an
object not seen yet) falls back to a GET. Then every listed object is stepped once (the resume),
and from the watches on, an object is stepped when it appears and when its spec changes (a
Session edited), and at once when its deletion begins (its release is the same step,
runtime/driver.py). Nothing else calls a step: the rest are wake-ups and the resync.

Steps observe other objects (the platform, a Compute's dependencies, a Session's parts) on every
run; reading them from this cache instead of a GET each time removes most API reads
(docs/performance.md). The cache may lag the API server by one watch event; that is safe because
observations only gate decisions and every transition is a guarded write on the object itself.

Wake-ups replace waiting for the next requeue: a part whose state a Session shows (phase, reason,
message, Ready/Stalled, connectors) wakes its Session; a DockerContainer, JupyterNotebook,
Storage or Data whose phase changed wakes the Computes that use it. Wake-ups are scheduled a
moment later so that a burst of events coalesces into one step (runtime/requeue.py).

Every replica caches every object, the shards it does not hold included (runtime/shards.py): a
wake-up of an object another replica holds is dropped by the step.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from skaha_operator import GROUP, VERSION
from skaha_operator.controllers.skaha_platform import DEPENDENT_PLURALS
from skaha_operator.domain.common import TERMINAL_PHASES, Phase
from skaha_operator.domain.kinds import DEPENDENCY_KIND_NAMES, KINDS, PART_KINDS, plural_of
from skaha_operator.k8s.objects import part_view
from skaha_operator.k8s.watching import OnEvent, OnList, Scope, Streams, backoff, follow
from skaha_operator.reconcile.compute import QUEUE_REASON
from skaha_operator.runtime.requeue import Key
from skaha_operator.runtime.resync import spread_first_looks
from skaha_operator.runtime.state import OperatorState

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
    if not changed:
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
        return True, old
    old = cache.put(plural, body)
    if _deleting(body) and (old is None or not _deleting(old)):
        # Release is the same step; nothing else calls it.
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


def scopes(namespaces: list[str]) -> list[Scope]:
    """What to list and watch: every kind in each namespace, or in every namespace."""
    where: list[str | None] = list(dict.fromkeys(namespaces)) or [None]
    return [Scope(plural, ns) for plural in PLURALS for ns in where]


async def start_watches(st: OperatorState, streams: Streams, namespaces: list[str]) -> int:
    """List every kind, step every object once, then follow each kind's watch; how many listed.

    A LIST that fails (the CRDs not installed yet, the API server restarting) is retried with
    the watch's backoff: nothing is stepped before every kind is listed, since a step reads what
    it observes from the cache.
    """
    listed: list[tuple[Scope, str]] = []
    for scope in scopes(namespaces):
        items, version = await _list_until_done(streams, scope)
        for body in items:
            st.ctx.cache.put(scope.plural, body)
        listed.append((scope, version))
    count = 0
    for scope, _ in listed:
        bodies = _cached(st, scope)
        if scope.plural == "computes":
            spread_first_looks(
                st, (b for b in bodies if st.shards.holds(b["metadata"]["namespace"], b))
            )
        for body in bodies:
            meta = body["metadata"]
            key = (scope.plural, meta["namespace"], meta["name"])
            st.generations[key] = int(meta.get("generation") or 0)
            st.requeuer.schedule(key, 0.0)
            count += 1
    loop = asyncio.get_running_loop()
    for scope, version in listed:
        on_event, on_list = _handlers(scope, st)
        st.background.append(loop.create_task(
            follow(streams, scope, version, on_event, on_list),
            name=f"watch-{scope.plural}-{scope.namespace or 'all'}"))  # fmt: skip
    return count


def _handlers(scope: Scope, st: OperatorState) -> tuple[OnEvent, OnList]:
    def on_event(kind: str, body: dict[str, Any]) -> None:
        on_watch_event(scope.plural, kind, body, st)

    def on_list(items: list[dict[str, Any]]) -> None:
        on_relist(scope, items, st)

    return on_event, on_list


async def _list_until_done(streams: Streams, scope: Scope) -> tuple[list[dict[str, Any]], str]:
    failures = 0
    while True:
        try:
            return await streams.list(scope)
        except Exception as exc:  # retried: nothing starts without it
            failures += 1
            delay = backoff(failures)
            logger.warning("listing %s failed (%s); again in %.1fs", scope, _why(exc), delay)
            await asyncio.sleep(delay)


def _why(exc: Exception) -> str:
    """Why a LIST failed, in the words of what a person does about it (docs/install.md)."""
    status = getattr(exc, "status", None)
    if status == 404:
        return (
            f"404: the API server does not serve {GROUP}/{VERSION}: our CRDs are not installed; "
            "install them with the chart or kubectl apply -f crds/"
        )
    if status == 403:
        return "403: not allowed; the operator's ServiceAccount lacks the chart's RBAC"
    return f"{type(exc).__name__}: {exc}"


def _cached(st: OperatorState, scope: Scope) -> list[dict[str, Any]]:
    bodies = st.ctx.cache.each(scope.plural)
    if scope.namespace is None:
        return bodies
    return [b for b in bodies if b["metadata"].get("namespace") == scope.namespace]


def on_watch_event(plural: str, kind: str, body: dict[str, Any], st: OperatorState) -> None:
    """One watch event: the cache and wake-ups, and a step when the object is new to the watch
    or its spec changed (an edit is applied or refused by the step, docs/design.md)."""
    if st.tracer is not None:
        meta, status = body.get("metadata") or {}, body.get("status") or {}
        st.tracer.record("event", p=plural, ns=meta.get("namespace"), n=meta.get("name"),
                         rv=meta.get("resourceVersion"), type=kind,
                         phase=status.get("phase"), reason=status.get("reason"))  # fmt: skip
    meta = body.get("metadata") or {}
    ns, name = meta.get("namespace"), meta.get("name")
    if not ns or not name:
        return
    observe_event(plural, kind, body, st)
    key = (plural, str(ns), str(name))
    if kind == "DELETED":
        st.generations.pop(key, None)
        st.ctx.first_looks.pop(str(meta.get("uid") or ""), None)
        return
    if _spec_news(key, body, st) and not _deleting(body):
        st.requeuer.schedule(key, 0.0)


def _spec_news(key: Key, body: dict[str, Any], st: OperatorState) -> bool:
    """Whether the watch shows this object for the first time, or a spec generation it has not
    shown before (the API server counts spec changes in `metadata.generation`).

    Not the cache: what our own writes stored is cached before its watch event arrives (a part
    a Session created, say), and a later status write of ours carries a user's spec edit into
    the cache before the edit's own event.
    """
    generation = int((body.get("metadata") or {}).get("generation") or 0)
    before = st.generations.get(key)
    st.generations[key] = generation
    return before is None or generation != before


def on_relist(scope: Scope, items: list[dict[str, Any]], st: OperatorState) -> None:
    """The watch lost its place and listed again: what changed meanwhile is handed over as
    events, and what is no longer listed as deleted."""
    present = {(b["metadata"]["namespace"], b["metadata"]["name"]) for b in items}
    for body in _cached(st, scope):
        meta = body["metadata"]
        if (meta["namespace"], meta["name"]) not in present:
            on_watch_event(scope.plural, "DELETED", body, st)
    for body in items:
        on_watch_event(scope.plural, "MODIFIED", body, st)
