"""Short headless Skaha jobs that prepare a part (a download, a notebook's setup): one pure step.

A job is launched behind a create-pending marker (`jobPendingSince`, written with a
resourceVersion-guarded write before the POST) under a name derived from the object's UID and the
attempt number, so a restart finds it by name instead of launching a second (design §4.3). A job
that fails is retried a bounded number of times under the next attempt's name; the last failure
carries the job's log tail. Skaha statuses of both eras: skaha-api.md §3. Also the phase helper the
preparing kinds share. Pure: imports neither kopf, kubernetes nor httpx.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from skaha_operator.domain.common import Phase
from skaha_operator.domain.status import PhasedStatus
from skaha_operator.reconcile.conditions import summary_conditions
from skaha_operator.reconcile.timing import Timing, poll_delay
from skaha_operator.reconcile.transitions import Table, check_transition

S = TypeVar("S", bound=PhasedStatus)

DONE_STATUSES = frozenset({"Completed", "Succeeded"})
FAILED_STATUSES = frozenset({"Failed", "Error"})

# Preparing kinds (Storage, Data, JupyterNotebook): prepared once, then Available until deleted;
# release happens behind the finalizer, so the object goes away rather than entering Releasing.
PREPARE_TRANSITIONS: Table = {
    Phase.INITIALIZING: frozenset({Phase.PREPARING, Phase.AVAILABLE, Phase.FAILED}),
    Phase.PREPARING: frozenset({Phase.AVAILABLE, Phase.FAILED}),
    Phase.AVAILABLE: frozenset({Phase.FAILED}),
    Phase.RELEASING: frozenset({Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED}),
    Phase.COMPLETED: frozenset(),
    Phase.FAILED: frozenset(),
    Phase.CANCELLED: frozenset(),
}


def with_phase(
    status: S,
    phase: Phase,
    reason: str,
    message: str | None,
    now: datetime,
    generation: int | None,
    *,
    stalled: bool = False,
    changes: dict[str, object] | None = None,
) -> tuple[S, tuple[str, ...]]:
    """`status` moved to `phase` (checked against PREPARE_TRANSITIONS), with conditions set."""
    old = status.phase or Phase.INITIALIZING
    check_transition(PREPARE_TRANSITIONS, old, phase)
    conditions = summary_conditions(
        list(status.conditions or []), phase, reason, message, now, generation, stalled=stalled
    )
    times = dict(status.phase_times or {})
    if phase != old or not times:
        times.setdefault(phase, now)
    new = status.model_copy(
        update={
            "phase": phase,
            "reason": reason,
            "message": message,
            "conditions": conditions,
            "observed_generation": generation,
            "phase_times": times,
            **(changes or {}),
        }
    )
    events = (f"{old}->{phase}: {reason}",) if phase != old else ()
    return new, events


class JobStatus(Protocol):
    """The job fields DataStatus and JupyterNotebookStatus share."""

    job_session_name: str | None
    job_pending_since: datetime | None
    job_session_id: str | None
    job_status: str | None
    job_attempts: int | None


@dataclass(frozen=True)
class JobView:
    """What was observed of the job: candidates by name (no id yet), or the session by id."""

    candidates: tuple[str, ...] | None = None  # None: not listed (no id yet, or Skaha down)
    gone: bool = False
    status: str | None = None
    detail: str | None = None  # log tail, fetched when the job failed


@dataclass(frozen=True)
class JobPlan:
    """A headless launch: Skaha name, image, command, args and environment (skaha-api.md §2)."""

    name: str
    image: str
    cmd: str
    args: str
    env: dict[str, str]


class JobOutcome(StrEnum):
    """Where a job stands after one step."""

    LAUNCH = "Launch"
    WAIT = "Wait"
    DONE = "Done"
    FAILED = "Failed"
    STALLED = "Stalled"


@dataclass(frozen=True)
class JobStep:
    """The job's outcome, the status fields to change, and when to look again."""

    outcome: JobOutcome
    reason: str
    message: str
    requeue: float | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    name: str | None = None  # the Skaha name to launch under, for LAUNCH


def make_job_name(tag: str, uid: str, attempt: int) -> str:
    """Skaha name of attempt `attempt` of a job: `skop-<tag>-<uid hex>-<n>` (valid for §2)."""
    return f"skop-{tag}-{uid.replace('-', '').lower()[:32]}-{attempt}"


# Skaha splits `args` at spaces (skaha-api.md §2), so a job's shell script travels in the
# environment variable SKOP_SCRIPT, which Kubernetes substitutes into the container's args as
# `$(SKOP_SCRIPT)` [I: Kubernetes expands $(VAR) in args from the container's env].
JOB_CMD = "/bin/sh"
JOB_ARGS = "-c $(SKOP_SCRIPT)"
SCRIPT_ENV = "SKOP_SCRIPT"


def step_job(
    job: JobStatus,
    view: JobView | None,
    now: datetime,
    timing: Timing,
    *,
    tag: str,
    uid: str,
    what: str,
    failure_reason: str,
) -> JobStep:
    """The next step of a preparation job (launch, adopt, wait, done or failed)."""
    attempts = job.job_attempts or 0
    if job.job_pending_since is None:
        return _launch(tag, uid, 1, what, now)
    name = job.job_session_name or make_job_name(tag, uid, max(attempts, 1))
    waited = max(0.0, (now - job.job_pending_since).total_seconds())
    if not job.job_session_id:
        return _adopt(job, view, name, waited, now, timing, tag=tag, uid=uid, what=what)
    if view is None:
        return JobStep(JobOutcome.WAIT, "Polling", f"polling {what} job {name}", timing.poll_base)
    seen = {"job_status": view.status or ""}
    if view.gone:
        if attempts < timing.max_job_attempts:
            return _launch(tag, uid, attempts + 1, what, now, why=f"job {name} disappeared")
        return JobStep(
            JobOutcome.FAILED,
            "JobVanished",
            f"{what} job {name} disappeared before it finished",
            changes=seen,
        )
    if view.status in DONE_STATUSES:
        return JobStep(JobOutcome.DONE, "JobCompleted", f"{what} job {name} completed", None, seen)
    if view.status in FAILED_STATUSES:
        tail = f": {view.detail}" if view.detail else ""
        if attempts < timing.max_job_attempts:
            return _launch(tag, uid, attempts + 1, what, now, why=f"job {name} {view.status}{tail}")
        return JobStep(
            JobOutcome.FAILED,
            failure_reason,
            f"{what} job {name} {view.status} (attempt {attempts} of "
            f"{timing.max_job_attempts}){tail}",
            changes=seen,
        )
    return JobStep(
        JobOutcome.WAIT,
        "JobRunning",
        f"{what} job {name} is {view.status or 'unknown'}",
        poll_delay(waited, timing),
        seen,
    )


def _launch(tag: str, uid: str, attempt: int, what: str, now: datetime, why: str = "") -> JobStep:
    name = make_job_name(tag, uid, attempt)
    # Cleared fields are written as "" (the status write only adds or replaces fields).
    return JobStep(
        JobOutcome.LAUNCH,
        "LaunchingJob",
        f"launching {what} job {name}" + (f" (attempt {attempt}; {why})" if why else ""),
        0.0,
        {
            "job_session_name": name,
            "job_pending_since": now,
            "job_attempts": attempt,
            "job_session_id": "",
            "job_status": "",
        },
        name,
    )


def _adopt(
    job: JobStatus,
    view: JobView | None,
    name: str,
    waited: float,
    now: datetime,
    timing: Timing,
    *,
    tag: str,
    uid: str,
    what: str,
) -> JobStep:
    found = view.candidates if view is not None else None
    attempts = job.job_attempts or 1
    if found is not None and len(found) == 1:
        return JobStep(
            JobOutcome.WAIT,
            "JobAdopted",
            f"{what} job {name} is Skaha session {found[0]}",
            0.0,
            {"job_session_id": found[0]},
        )
    if found is not None and len(found) > 1:
        return JobStep(
            JobOutcome.STALLED,
            "AmbiguousLaunch",
            f"{len(found)} Skaha sessions named {name}: {', '.join(found)}; "
            "delete all but one by hand",
            timing.resync,
        )
    # Not listed, or listed but not there yet: a launch may still be committing.
    if found is None or waited < timing.adopt_grace:
        return JobStep(
            JobOutcome.WAIT,
            "JobPending",
            f"looking for {what} job {name}",
            min(timing.poll_cap, max(timing.poll_base, waited / 2)),
        )
    if attempts < timing.max_job_attempts:
        return _launch(tag, uid, attempts + 1, what, now, why=f"job {name} never appeared")
    return JobStep(
        JobOutcome.FAILED,
        "LaunchLost",
        f"{attempts} launches of the {what} job left no Skaha session",
    )


__all__ = [
    "JOB_ARGS",
    "JOB_CMD",
    "PREPARE_TRANSITIONS",
    "SCRIPT_ENV",
    "JobOutcome",
    "JobPlan",
    "JobStep",
    "JobView",
    "make_job_name",
    "step_job",
    "with_phase",
]
