"""The Session controller: create the parts, aggregate their phases, release what it owns.

A Session never writes a part's status (docs/design.md §4.1); it creates owned parts from its
templates (with owner references, so a garbage collector also cleans up) and deletes them on
cancel, on failure and when it is deleted (so release happens even where no garbage collector
runs). Deletion is the same step: the decision deletes the parts and says released once they are
gone (their own controllers release what they launched first).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from skaha_operator.controllers.base import Outcome, tell, write
from skaha_operator.controllers.context import Context
from skaha_operator.domain.common import Condition, Connector
from skaha_operator.domain.kinds import plural_of
from skaha_operator.domain.session import Session
from skaha_operator.reconcile.builders import PartRef, part_refs
from skaha_operator.reconcile.conditions import READY, STALLED, condition_status
from skaha_operator.reconcile.session import (
    PartState,
    SessionObservation,
    decide_session,
    decide_session_deletion,
)


class SessionController:
    """Drives Sessions."""

    kind = "Session"
    plural = "sessions"

    async def step(self, body: dict[str, Any], ctx: Context) -> Outcome:
        """Observe the parts, decide, create/delete parts, write the status."""
        session = Session.model_validate(body)
        obs = await observe_session(session, ctx)
        ns = str(session.metadata["namespace"])
        if obs.deleting:
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
        # The status goes first, then the deletions it announces: a refused (stale) write
        # re-decides from parts that are all still there.
        await write(ctx, self.plural, body, decision.status)
        await _delete(ns, decision.delete, ctx)
        tell(ctx, body, self.kind, decision.status, decision.events)
        return Outcome(decision.requeue_after)


async def observe_session(session: Session, ctx: Context) -> SessionObservation:
    """The state of every part the Session uses."""
    ns = str(session.metadata["namespace"])
    parts: dict[tuple[str, str], PartState | None] = {}
    for ref in part_refs(session):
        body = await ctx.cache.get(plural_of(ref.kind), ns, ref.name)
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
