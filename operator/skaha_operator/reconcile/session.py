"""The Session decision: (spec, status, the parts' states, now) -> next status, creates, deletes.

A Session creates its owned parts from templates, reads the state of every part (owned or shared)
and never writes theirs (docs/design.md §4.1). Its phase follows the design's fixed precedence
(docs/design.md §3), plus Waiting before the start and Expired when the prepare deadline passes
before it was ever usable. Ending (cancel, Failed, Expired, Completed) deletes the OWNED parts in
dependency order and shows Releasing until they are gone; shared parts are never deleted
(docs/design.md §2).
Pure: imports neither kopf, kubernetes nor httpx.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from skaha_operator.domain.common import (
    TERMINAL_SESSION_PHASES,
    Connector,
    Phase,
    SessionPhase,
)
from skaha_operator.domain.session import PartKind, PartSummary, Session, SessionStatus
from skaha_operator.reconcile.builders import PartRef, make_children, part_refs
from skaha_operator.reconcile.conditions import summary_conditions
from skaha_operator.reconcile.timing import Timing, schedule_bounds
from skaha_operator.reconcile.transitions import SESSION_TRANSITIONS, check_transition

_USABLE = frozenset({Phase.AVAILABLE, Phase.RUNNING})
_USABLE_SESSION = frozenset({SessionPhase.AVAILABLE, SessionPhase.RUNNING})
_SETTLED = _USABLE | {Phase.RELEASING, Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED}

# Release order: the Skaha session first, then what was placed into storage, then the storage.
_RELEASE_STAGES: tuple[frozenset[str], ...] = (
    frozenset({PartKind.COMPUTE}),
    frozenset({PartKind.DOCKER_CONTAINER, PartKind.JUPYTER_NOTEBOOK, PartKind.DATA}),
    frozenset({PartKind.STORAGE}),
)

# Reasons a Session is ending with, and the terminal phase each one ends in. A Session in
# Releasing with one of these reasons is ending; another reason means a part is releasing.
CANCELLED = "Cancelled"
PART_CANCELLED = "PartCancelled"
DEADLINE = "PrepareDeadlineExceeded"
SHARED_MISSING = "SharedPartMissing"
PART_ENDED = "PartEnded"
COMPLETED = "SessionCompleted"
DELETING = "Deleting"
_FAILED_REASONS = frozenset({f"{k}Failed" for k in PartKind} | {SHARED_MISSING, PART_ENDED})
ENDING_REASONS = _FAILED_REASONS | {CANCELLED, PART_CANCELLED, DEADLINE, COMPLETED}


def final_phase(reason: str) -> SessionPhase:
    """The terminal phase a Session ending with `reason` reaches once its parts are released."""
    if reason in {CANCELLED, PART_CANCELLED}:
        return SessionPhase.CANCELLED
    if reason == DEADLINE:
        return SessionPhase.EXPIRED
    if reason == COMPLETED:
        return SessionPhase.COMPLETED
    return SessionPhase.FAILED


@dataclass(frozen=True)
class PartState:
    """The observed state of one part (read from its status; None in a map: it does not exist)."""

    phase: str | None
    ready: bool
    reason: str | None
    message: str | None
    connectors: tuple[Connector, ...] = ()
    stalled: bool = False  # the part's Stalled condition is True (it needs a human)
    schedule: dict[str, Any] | None = None  # a Compute's spec.schedule as stored


@dataclass(frozen=True)
class SessionObservation:
    """Everything observed for one decision: the parts keyed by (kind, name)."""

    now: datetime
    parts: dict[tuple[str, str], PartState | None]
    deleting: bool = False


@dataclass(frozen=True)
class SessionDecision:
    """The next status, the children to create or delete, and when to look again."""

    status: SessionStatus
    create: tuple[dict[str, Any], ...] = ()
    delete: tuple[PartRef, ...] = ()
    requeue_after: float | None = None
    events: tuple[str, ...] = ()
    # Spec changes for existing parts (kind, name, merge patch): an edited schedule follows.
    update: tuple[tuple[str, str, dict[str, Any]], ...] = ()


@dataclass(frozen=True)
class Verdict:
    """A derived phase with the reason and message that explain it."""

    phase: SessionPhase
    reason: str
    message: str


Parts = Sequence[tuple[PartRef, PartState | None]]


def derive_session_phase(parts: Parts) -> SessionPhase:
    """The phase of a Session from its parts, by the design's fixed precedence
    (docs/design.md §3)."""
    return derive_session_verdict(parts).phase


def derive_session_verdict(parts: Parts) -> Verdict:
    """The derived phase with its reason; missing or unsettled parts count as Preparing."""
    by_phase: dict[str, list[tuple[PartRef, PartState | None]]] = {}
    for ref, st in parts:
        phase = st.phase if st is not None and st.phase in _SETTLED else Phase.PREPARING
        by_phase.setdefault(phase, []).append((ref, st))
    if failed := by_phase.get(Phase.FAILED):
        ref, st = failed[0]
        return Verdict(SessionPhase.FAILED, f"{ref.kind}Failed", _failure(ref, st, failed))
    if cancelled := by_phase.get(Phase.CANCELLED):
        return Verdict(SessionPhase.CANCELLED, PART_CANCELLED, f"{_list(cancelled)} cancelled")
    if preparing := by_phase.get(Phase.PREPARING):
        return _preparing(preparing)
    if releasing := by_phase.get(Phase.RELEASING):
        return Verdict(SessionPhase.RELEASING, "PartReleasing", f"{_list(releasing)} releasing")
    compute = next((st for ref, st in parts if ref.kind == PartKind.COMPUTE), None)
    compute_phase = compute.phase if compute is not None else None
    completed = by_phase.get(Phase.COMPLETED, [])
    if not completed:
        if compute_phase == Phase.RUNNING:
            return Verdict(SessionPhase.RUNNING, "SessionRunning", "the session is running")
        return Verdict(SessionPhase.AVAILABLE, "SessionAvailable", "the session is usable")
    if compute_phase == Phase.COMPLETED:
        # All Completed, or the Compute finished while the other parts (often shared, never
        # released by us) stay Available: the work is done either way.
        # The Compute's message already names its Skaha session ("Skaha session x completed").
        why = compute.message if compute is not None and compute.message else None
        return Verdict(SessionPhase.COMPLETED, COMPLETED, why or "the Skaha session completed")
    # A part ended (was released under us) while the session still needed it.
    return Verdict(
        SessionPhase.FAILED, PART_ENDED, f"{_list(completed)} ended while the session used it"
    )


def _failure(
    ref: PartRef, st: PartState | None, failed: list[tuple[PartRef, PartState | None]]
) -> str:
    text = f"{ref.kind} {ref.name} failed"
    if st is not None and st.reason:
        text += f": {st.reason}"
    if st is not None and st.message:
        text += f": {st.message}"
    if len(failed) > 1:
        text += f" (and {_list(failed[1:])})"
    return text


def _preparing(parts: list[tuple[PartRef, PartState | None]]) -> Verdict:
    missing_shared = [(r, s) for r, s in parts if s is None and r.shared]
    if missing_shared:
        return Verdict(
            SessionPhase.PREPARING,
            "WaitingForSharedPart",
            f"waiting for shared {_list(missing_shared)}: not found",
        )
    creating = [(r, s) for r, s in parts if s is None]
    if creating:
        return Verdict(SessionPhase.PREPARING, "CreatingParts", f"creating {_list(creating)}")
    detail = ", ".join(
        f"{r.kind} {r.name} ({(s.phase if s else None) or 'new'}"
        + (f": {s.reason}" if s and s.reason else "")
        # The Compute's message names what it waits for (platform and its reason, parts).
        + (
            f": {s.message}"
            if s and s.message and (s.stalled or r.kind == PartKind.COMPUTE)
            else ""
        )
        + ")"
        for r, s in parts
    )
    return Verdict(SessionPhase.PREPARING, "PreparingParts", f"waiting for {detail}")


def _unusable(parts: Parts) -> tuple[str, str] | None:
    """The reason and message of the first part that is in a usable phase but cannot be used
    now (Ready=False, Stalled=True: its platform refuses our credentials), or None."""
    for ref, st in parts:
        if st is not None and st.phase in _USABLE and st.stalled and not st.ready:
            return st.reason or "PartNotReady", f"{ref.kind} {ref.name}: {st.message or st.reason}"
    return None


def _list(parts: Sequence[tuple[PartRef, PartState | None]]) -> str:
    return ", ".join(f"{r.kind} {r.name}" for r, _ in parts)


def release_step(
    refs: Sequence[PartRef], parts: dict[tuple[str, str], PartState | None]
) -> tuple[PartRef, ...]:
    """The OWNED parts to delete now: the earliest release stage that still has any."""
    for stage in _RELEASE_STAGES:
        present = tuple(
            r
            for r in refs
            if not r.shared and r.kind in stage and parts.get((r.kind, r.name)) is not None
        )
        if present:
            return present
    return ()


def decide_session(session: Session, obs: SessionObservation, timing: Timing) -> SessionDecision:
    """The next step for one Session."""
    if obs.deleting:
        return decide_session_deletion(session, obs, timing)
    return _Step(session, obs, timing).decide()


def decide_session_deletion(
    session: Session, obs: SessionObservation, timing: Timing | None = None
) -> SessionDecision:
    """Delete the owned parts (in release order); requeue_after None once all of them are gone."""
    return _Step(session, obs, timing or Timing()).deletion()


# The rungs of a live Session: its phase moves up this ladder (or to a terminal phase), never down.
LADDER = {
    SessionPhase.INITIALIZING: 0,
    SessionPhase.WAITING: 1,
    SessionPhase.PREPARING: 2,
    SessionPhase.AVAILABLE: 3,
    SessionPhase.RUNNING: 3,
    SessionPhase.RELEASING: 4,
}


@dataclass
class _Step:
    """One decision's working state."""

    session: Session
    obs: SessionObservation
    timing: Timing

    def __post_init__(self) -> None:
        self.status = self.session.status or SessionStatus()
        self.old = self.status.phase or SessionPhase.INITIALIZING
        self.refs = part_refs(self.session)
        self.states = [(r, self.obs.parts.get((r.kind, r.name))) for r in self.refs]
        self.now = self.obs.now

    def decide(self) -> SessionDecision:
        if self.old in TERMINAL_SESSION_PHASES:
            return SessionDecision(self.status)  # terminal phases never change
        reason = self.status.reason
        if self.old == SessionPhase.RELEASING and reason == DELETING:
            return self.deletion()  # deletion is irreversible: never recreate parts after it
        if self.old == SessionPhase.RELEASING and reason in ENDING_REASONS:
            return self._end(reason, self.status.message or reason)
        verdict = derive_session_verdict(self.states)
        ending = self._ending(verdict)
        if ending is not None:
            return self._end(*ending)
        return self._live(verdict)

    def deletion(self) -> SessionDecision:
        delete = release_step(self.refs, self.obs.parts)
        requeue = self.timing.poll_base if delete else None
        if self.old in TERMINAL_SESSION_PHASES:
            return SessionDecision(self.status, delete=delete, requeue_after=requeue)
        message = (
            f"deleting: releasing {', '.join(f'{r.kind} {r.name}' for r in delete)}"
            if delete
            else "deleting: every part the session owned is released"
        )
        return self._result(
            SessionPhase.RELEASING, DELETING, message, delete=delete, requeue=requeue
        )

    # -- ending -------------------------------------------------------------------------------

    def _ending(self, verdict: Verdict) -> tuple[str, str] | None:
        """Why the Session ends now (reason, message), or None while it lives on."""
        if self.session.spec.cancel:
            return CANCELLED, "cancelled: releasing every part the session owns"
        _, _, deadline = schedule_bounds(self.session.spec.schedule, self._created())
        times = self.status.phase_times or {}
        was_usable = SessionPhase.AVAILABLE in times or SessionPhase.RUNNING in times
        if (
            deadline is not None
            and self.now >= deadline
            and not was_usable
            # A job that completed between two looks was usable, only briefly.
            and verdict.phase
            not in {SessionPhase.AVAILABLE, SessionPhase.RUNNING, SessionPhase.COMPLETED}
        ):
            missing = [r for r, s in self.states if s is None and r.shared]
            if missing:
                names = ", ".join(f"{r.kind} {r.name}" for r in missing)
                return SHARED_MISSING, f"shared {names} not found by the prepare deadline"
            # The Compute fails at the same deadline; that failure is this expiry, not another.
            if verdict.phase != SessionPhase.FAILED or self._compute_reason() == DEADLINE:
                return DEADLINE, (
                    f"not usable by the prepare deadline {deadline.isoformat()}: {verdict.message}"
                )
        if verdict.phase in {SessionPhase.FAILED, SessionPhase.CANCELLED, SessionPhase.COMPLETED}:
            return verdict.reason, verdict.message
        return None

    def _end(self, reason: str, message: str) -> SessionDecision:
        delete = release_step(self.refs, self.obs.parts)
        if delete:
            # Ask again soon: the deleted parts' finalizers release what they hold.
            return self._result(
                SessionPhase.RELEASING,
                reason,
                message,
                delete=delete,
                requeue=self.timing.poll_base,
            )
        return self._result(final_phase(reason), reason, message)

    # -- living -------------------------------------------------------------------------------

    def _live(self, verdict: Verdict) -> SessionDecision:
        children = make_children(self.session)
        create = tuple(
            body
            for body in children
            if self.obs.parts.get((body["kind"], body["metadata"]["name"])) is None
        )
        update = tuple(self._schedule_updates(children))
        start, _, deadline = schedule_bounds(self.session.spec.schedule, self._created())
        phase, reason, message = verdict.phase, verdict.reason, verdict.message
        if phase == SessionPhase.PREPARING and self.now < start:
            # Parts prepare ahead of the start, so the session is usable when it comes.
            phase, reason = SessionPhase.WAITING, "WaitingForStart"
            message = f"starts at {start.isoformat()}; {verdict.message}"
        if LADDER.get(phase, 0) < LADDER.get(self.old, 0):
            # A live Session never steps down its ladder: a lower phase here comes from a stale
            # view of a part (another operator, a lagging cache). Keep the phase; look again.
            return self._result(
                self.old,
                self.status.reason or reason,
                self.status.message or message,
                create=create,
                requeue=self.timing.poll_base,
            )
        until_start = (start - self.now).total_seconds()
        match phase:
            case SessionPhase.WAITING:
                requeue = until_start  # parts wake us by their events before that
            case SessionPhase.PREPARING:
                requeue = self.timing.dependency_recheck
                if deadline is not None:
                    requeue = max(0.0, min(requeue, (deadline - self.now).total_seconds()))
            case SessionPhase.RELEASING:
                requeue = self.timing.poll_base
            case _:
                requeue = self.timing.resync
        if create:
            requeue = min(requeue, self.timing.poll_base)
        stalled = any(s is not None and s.stalled for _, s in self.states)
        blocked = _unusable(self.states) if phase in _USABLE_SESSION else None
        if blocked is not None:
            # Usable in phase, not now (its platform refuses our token): say so, keep the phase.
            reason, message = blocked
        decision = self._result(
            phase, reason, message, create=create, requeue=requeue, stalled=stalled,
            usable=blocked is None,
        )  # fmt: skip
        return dataclasses.replace(decision, update=update) if update else decision

    def _schedule_updates(
        self, children: list[dict[str, Any]]
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """An edited Session schedule, carried to the Compute it owns (docs/lifecycle.md)."""
        out = []
        for body in children:
            part = self.obs.parts.get((body["kind"], body["metadata"]["name"]))
            if body["kind"] != PartKind.COMPUTE or part is None:
                continue
            wanted = body["spec"].get("schedule") or {}
            have = part.schedule or {}
            if wanted != have:
                patch = {k: wanted.get(k) for k in {*wanted, *have}}
                out.append((str(body["kind"]), str(body["metadata"]["name"]), {"schedule": patch}))
        return out

    # -- the status ---------------------------------------------------------------------------

    def _result(
        self,
        phase: SessionPhase,
        reason: str,
        message: str,
        *,
        create: tuple[dict[str, Any], ...] = (),
        delete: tuple[PartRef, ...] = (),
        requeue: float | None = None,
        stalled: bool = False,
        usable: bool = True,
    ) -> SessionDecision:
        check_transition(SESSION_TRANSITIONS, self.old, phase)
        gen = self.session.metadata.get("generation")
        conditions = summary_conditions(
            list(self.status.conditions or []),
            phase,
            reason,
            message,
            self.now,
            gen,
            stalled=stalled,
            usable=usable,
        )
        times = dict(self.status.phase_times or {})
        if phase != self.old or not times:
            times.setdefault(phase, self.now)
        compute = next((s for r, s in self.states if r.kind == PartKind.COMPUTE), None)
        usable = phase in {SessionPhase.AVAILABLE, SessionPhase.RUNNING}
        connectors = list(compute.connectors) if compute is not None and usable else None
        new = self.status.model_copy(
            update={
                "phase": phase,
                "reason": reason,
                "message": message,
                "conditions": conditions,
                "observed_generation": gen,
                "phase_times": times,
                "parts": self._summaries(),
                "connectors": connectors or None,
            }
        )
        events = (f"{self.old}->{phase}: {reason}",) if phase != self.old else ()
        return SessionDecision(new, create, delete, requeue, events)

    def _summaries(self) -> list[PartSummary]:
        # A part released (deleted) keeps its last summary only when that was a final phase
        # (Completed, Failed, Cancelled): it tells how the part ended. A part last seen live
        # (Available, Running, ...) and now gone was released: saying Available would be stale.
        old = {(p.kind, p.name): p for p in self.status.parts or []}
        out = []
        for ref, st in self.states:
            last = old.get((PartKind(ref.kind), ref.name))
            if st is None and last is not None and last.phase in _FINAL_PART_PHASES:
                out.append(last.model_copy(update={"ready": False}))
            elif st is None and last is not None and not ref.shared:
                out.append(released_summary(last))
            else:
                out.append(_summary(ref, st))
        return out

    def _compute_reason(self) -> str | None:
        compute = next((s for r, s in self.states if r.kind == PartKind.COMPUTE), None)
        return compute.reason if compute is not None else None

    def _created(self) -> datetime:
        created = self.session.metadata.get("creationTimestamp")
        if isinstance(created, str):
            return datetime.fromisoformat(created.replace("Z", "+00:00"))
        return self.now


_FINAL_PART_PHASES = frozenset({Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED})
RELEASED = "Released"


def released_summary(last: PartSummary) -> PartSummary:
    """An owned part the Session saw live and that is now deleted: no phase, reason Released."""
    return last.model_copy(update={"phase": None, "ready": False, "reason": RELEASED})


def _summary(ref: PartRef, st: PartState | None) -> PartSummary:
    phase = Phase(st.phase) if st is not None and st.phase in set(Phase) else None
    return PartSummary(
        kind=PartKind(ref.kind),
        name=ref.name,
        phase=phase,
        ready=st is not None and st.ready,
        reason=st.reason if st is not None else None,
        shared=ref.shared,
    )


__all__ = [
    "ENDING_REASONS",
    "PartState",
    "SessionDecision",
    "SessionObservation",
    "Verdict",
    "decide_session",
    "decide_session_deletion",
    "derive_session_phase",
    "derive_session_verdict",
    "final_phase",
    "release_step",
]
