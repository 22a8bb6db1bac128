"""Session handlers: create the parts, aggregate their phases, release what the Session owns.

A Session never writes a part's status (design §4.1); it creates owned parts from its templates
(with owner references, so a garbage collector also cleans up) and deletes them on cancel, on
failure and behind its finalizer (so release happens even where no garbage collector runs).
Child events wake the parent at once instead of waiting for its next requeue (handlers/cache.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from skaha_operator import GROUP, VERSION
from skaha_operator.domain.common import Condition, Connector
from skaha_operator.domain.session import Session
from skaha_operator.handlers.common import (
    RESYNC_INTERVAL,
    drive,
    post_events,
    reconciling,
    requeue,
)
from skaha_operator.handlers.state import OperatorState, state
from skaha_operator.reconcile.builders import PartRef, part_refs
from skaha_operator.reconcile.conditions import READY, STALLED, condition_status
from skaha_operator.reconcile.session import (
    PartState,
    SessionDecision,
    SessionObservation,
    decide_session,
    decide_session_deletion,
)

PLURAL = "sessions"
KIND = "Session"
PLURALS = {
    "DockerContainer": "dockercontainers",
    "JupyterNotebook": "jupyternotebooks",
    "Storage": "storages",
    "Data": "data",
    "Compute": "computes",
}


@kopf.on.resume(GROUP, VERSION, PLURAL, id="reconcile")
@kopf.on.create(GROUP, VERSION, PLURAL, id="reconcile")
async def on_session(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Drive one Session a step further; in-memory wake-ups until it is terminal."""
    await drive(KIND, PLURAL, step_session, body, state(memo))


@kopf.on.event(GROUP, VERSION, PLURAL, id="cancel", when=lambda spec, **_: bool(spec.get("cancel")))
async def on_session_cancel(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """React to `spec.cancel: true` at once, not at the next requeue."""
    if not body.get("metadata", {}).get("deletionTimestamp"):
        await drive(KIND, PLURAL, step_session, body, state(memo))


@kopf.timer(
    GROUP, VERSION, PLURAL, id="resync", interval=RESYNC_INTERVAL, initial_delay=RESYNC_INTERVAL / 2
)
async def resync_session(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Level-based resync for lost events (kopf#1178)."""
    await drive(KIND, PLURAL, step_session, body, state(memo))


@kopf.on.delete(GROUP, VERSION, PLURAL, id="release")
async def release_session(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Delete every owned part and wait until they are gone (their finalizers release them)."""
    async with reconciling(KIND):
        st = state(memo)
        session = Session.model_validate(dict(body))
        obs = await observe_session(session, st)
        decision = decide_session_deletion(session, obs)
        await _delete(session, decision.delete, st)
        requeue(decision.requeue_after, "waiting for owned parts to be released")


async def step_session(body: dict[str, Any], st: OperatorState) -> SessionDecision:
    """Observe the parts, decide, create/delete parts, write the status."""
    session = Session.model_validate(body)
    obs = await observe_session(session, st)
    decision = decide_session(session, obs, st.config.timing)
    ns = str(session.metadata["namespace"])
    for child in decision.create:
        # Created with our finalizer, so kopf need not add it with a PATCH of its own.
        meta = {**child["metadata"], "finalizers": [st.config.finalizer]}
        await st.kube.create(PLURALS[child["kind"]], ns, {**child, "metadata": meta})
    await _delete(session, decision.delete, st)
    new = decision.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    await st.kube.write_status(PLURAL, body, new)
    s = decision.status
    post_events(body, KIND, decision.events, str(s.phase), s.reason or "")
    return decision


async def observe_session(session: Session, st: OperatorState) -> SessionObservation:
    """The state of every part the Session uses."""
    ns = str(session.metadata["namespace"])
    parts: dict[tuple[str, str], PartState | None] = {}
    for ref in part_refs(session):
        body = await st.cache.get(PLURALS[ref.kind], ns, ref.name)
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
    return PartState(
        phase=status.get("phase"),
        ready=condition_status(conditions, READY) is True,
        stalled=condition_status(conditions, STALLED) is True,
        reason=status.get("reason"),
        message=status.get("message"),
        connectors=connectors,
    )


async def _delete(session: Session, refs: tuple[PartRef, ...], st: OperatorState) -> None:
    ns = str(session.metadata["namespace"])
    for ref in refs:
        await st.kube.delete(PLURALS[ref.kind], ns, ref.name)
