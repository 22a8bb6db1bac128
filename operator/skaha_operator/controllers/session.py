"""The Session controller: create the parts, aggregate their phases, release what it owns.

A Session never writes a part's status (docs/design.md §4.1); it creates owned parts from its
templates (with owner references, so a garbage collector also cleans up) and deletes them on
cancel, on failure and when it is deleted (so release happens even where no garbage collector
runs). Deletion is the same step: the decision deletes the parts and says released once they are
gone (their own controllers release what they launched first).

While a Session prepares it mirrors its parts' progress (their phases and reasons in
`status.parts`, the waiting part's message); that progress is written at most once per
PROGRESS_INTERVAL, folded into the next write, while a change of phase, of the Session's own
Ready/Reconciling/Stalled, of its observedGeneration or of its connectors is written at once: a
happy-path Session writes its status two or three times instead of once per part event
(docs/performance.md).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from skaha_operator.controllers.base import Outcome, tell, write
from skaha_operator.controllers.context import Context
from skaha_operator.domain.common import Condition, Connector
from skaha_operator.domain.kinds import plural_of
from skaha_operator.domain.session import Session, SessionStatus
from skaha_operator.reconcile.builders import PartRef, part_refs
from skaha_operator.reconcile.conditions import READY, RECONCILING, STALLED, condition_status
from skaha_operator.reconcile.session import (
    PartState,
    SessionDecision,
    SessionObservation,
    decide_session,
    decide_session_deletion,
)

PROGRESS_INTERVAL = 5.0  # seconds between two writes that only mirror the parts' progress


class SessionController:
    """Drives Sessions."""

    kind = "Session"
    plural = "sessions"

    def __init__(self) -> None:
        # Session UID -> when this process last wrote its status (monotonic): paces progress.
        self._written: dict[str, float] = {}

    async def step(self, body: dict[str, Any], ctx: Context) -> Outcome:
        """Observe the parts, decide, create/delete parts, write the status."""
        session = Session.model_validate(body)
        obs = await observe_session(session, ctx)
        ns = str(session.metadata["namespace"])
        uid = str(session.metadata.get("uid", ""))
        if obs.deleting:
            self._written.pop(uid, None)
            decision = decide_session_deletion(session, obs, ctx.config.timing)
            await _delete(ns, decision.delete, ctx)
            return Outcome(decision.requeue_after, released=decision.requeue_after is None)
        decision = decide_session(session, obs, ctx.config.timing)
        for child in decision.create:
            # Created with our finalizer, so kopf need not add it with a PATCH of its own.
            meta = {**child["metadata"], "finalizers": [ctx.config.finalizer]}
            await ctx.kube.create(plural_of(child["kind"]), ns, {**child, "metadata": meta})
        for kind, name, patch in decision.update:
            refused = await ctx.kube.patch_spec(plural_of(kind), ns, name, patch)
            if refused is not None:
                ctx.post(
                    body, "Warning", "EditRefused", f"{kind} {name} refused {patch}: {refused}"
                )
        wait = self._progress_wait(uid, session, decision)
        if wait is not None:
            # Only progress changed, and it was written moments ago: fold it into the next write.
            later = decision.requeue_after
            return Outcome(wait if later is None else min(wait, later))
        # The status goes first, then the deletions it announces: a refused (stale) write
        # re-decides from parts that are all still there.
        await write(ctx, self.plural, body, decision.status)
        self._written[uid] = time.monotonic()
        await _delete(ns, decision.delete, ctx)
        tell(ctx, body, self.kind, decision.status, decision.events)
        return Outcome(decision.requeue_after)

    def _progress_wait(self, uid: str, session: Session, decision: SessionDecision) -> float | None:
        """Seconds to hold this status back (it only mirrors progress), or None: write now."""
        old = session.status
        if old is None or decision.delete or decision.events or decision.create:
            return None
        if _headline(old) != _headline(decision.status):
            return None
        last = self._written.get(uid)
        left = None if last is None else PROGRESS_INTERVAL - (time.monotonic() - last)
        return left if left is not None and left > 0 else None


def _headline(status: SessionStatus) -> tuple[Any, ...]:
    """What is written at once: phase, generation, the Session's own conditions, connectors."""
    own = tuple(
        (c.type, c.status)
        for c in status.conditions or []
        if c.type in {READY, RECONCILING, STALLED}
    )
    return (status.phase, status.observed_generation, own, bool(status.connectors))


async def observe_session(session: Session, ctx: Context) -> SessionObservation:
    """The state of every part the Session uses."""
    ns = str(session.metadata["namespace"])
    parts: dict[tuple[str, str], PartState | None] = {}
    # Before its first status write a Session has created nothing: a part missing from the cache
    # is then not worth a GET (a part a crash left behind answers the create with 409, and its
    # watch event wakes the Session). Later a miss is a GET: the watch may lag a create.
    fresh = session.status is None
    for ref in part_refs(session):
        plural = plural_of(ref.kind)
        if fresh and not ref.shared:
            body = ctx.cache.peek(plural, ns, ref.name)
        else:
            body = await ctx.cache.get(plural, ns, ref.name)
        parts[(ref.kind, ref.name)] = None if body is None else _part_state(body)
    return SessionObservation(
        now=datetime.now(UTC),
        parts=parts,
        deleting=bool(session.metadata.get("deletionTimestamp")),
    )


def _part_state(body: dict[str, Any]) -> PartState:
    status = body.get("status") or {}
    conditions = [Condition.model_validate(c) for c in status.get("conditions") or []]
    connectors = tuple(Connector.model_validate(c) for c in status.get("connectors") or [])
    schedule = (body.get("spec") or {}).get("schedule")
    return PartState(
        schedule=schedule if body.get("kind") == "Compute" else None,
        phase=status.get("phase"),
        ready=condition_status(conditions, READY) is True,
        stalled=condition_status(conditions, STALLED) is True,
        reason=status.get("reason"),
        message=status.get("message"),
        connectors=connectors,
    )


async def _delete(ns: str, refs: tuple[PartRef, ...], ctx: Context) -> None:
    for ref in refs:
        await ctx.kube.delete(plural_of(ref.kind), ns, ref.name)
