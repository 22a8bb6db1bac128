"""Conditions as the API for tools: Ready, Reconciling and Stalled (kstatus), and no others.

Pure helpers over lists of `Condition`: setting a condition keeps its lastTransitionTime when its
status did not change (metav1.Condition semantics, docs/kubernetes-notes.md §5).
"""

from __future__ import annotations

from datetime import datetime

from skaha_operator.domain.common import Condition, ConditionStatus, Phase, SessionPhase

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
_SUMMARY = frozenset({READY, RECONCILING, STALLED})

_USABLE = {Phase.AVAILABLE, Phase.RUNNING, SessionPhase.AVAILABLE, SessionPhase.RUNNING}
_SETTLED = _USABLE | {
    Phase.COMPLETED,
    Phase.FAILED,
    Phase.CANCELLED,
    SessionPhase.EXPIRED,
}
_BROKEN = {Phase.FAILED, SessionPhase.EXPIRED}


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: bool | None,
    reason: str,
    message: str | None,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """A copy of `conditions` with `type_` set; lastTransitionTime moves only on a status change."""
    value = {
        True: ConditionStatus.TRUE,
        False: ConditionStatus.FALSE,
        None: ConditionStatus.UNKNOWN,
    }[status]
    old = next((c for c in conditions if c.type == type_), None)
    if old is not None and (old.status, old.reason, old.message, old.observed_generation) == (
        value,
        reason,
        message,
        generation,
    ):
        return list(conditions)  # unchanged: no new model to build and validate
    since = old.last_transition_time if old is not None and old.status == value else now
    new = Condition(
        type=type_,
        status=value,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    return [new if c.type == type_ else c for c in conditions] + ([] if old else [new])


def summary_conditions(
    conditions: list[Condition],
    phase: str,
    reason: str,
    message: str | None,
    now: datetime,
    generation: int | None,
    *,
    stalled: bool = False,
    usable: bool = True,
) -> list[Condition]:
    """Ready / Reconciling / Stalled derived from the phase (kstatus: Stalled=True is Failed);
    `usable=False` says a usable phase cannot be used now (its platform refuses us).

    Ready is always present. Reconciling and Stalled are "abnormal-true": present only while
    True, absent otherwise, which kstatus, Argo CD and Flux read as False (docs/gitops.md). The
    two written False made each object 630-760 bytes longer with their managedFields, on every
    write and every watch event (docs/performance.md, "Status size").

    No other condition is kept: the per-part and per-dependency ones earlier versions wrote
    (ComputeReady, StorageReady.<name>, DockerContainerReady, ...) repeated `status.parts` and
    the parts' own Ready, and go on the next write (docs/design.md §3, "Status").
    """
    ready = phase in _USABLE and usable
    broken = stalled or phase in _BROKEN
    kept = [c for c in conditions if c.type in _SUMMARY]
    out = set_condition(kept, READY, ready, reason, message, now, generation)
    for type_, value in ((RECONCILING, phase not in _SETTLED and not broken), (STALLED, broken)):
        if value:
            out = set_condition(out, type_, True, reason, message, now, generation)
        else:
            out = [c for c in out if c.type != type_]
    return out


def condition_status(conditions: list[Condition] | None, type_: str) -> bool | None:
    """True/False/None (Unknown or absent) for one condition type."""
    for c in conditions or []:
        if c.type == type_:
            return {ConditionStatus.TRUE: True, ConditionStatus.FALSE: False}.get(c.status)
    return None
