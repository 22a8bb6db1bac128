"""Short headless Skaha jobs that prepare a part (a download, a notebook's setup): one pure step.

The launch itself (marker, adoption by name, re-sends, late commits, release) is the shared protocol
of `reconcile.launch`; a job's policy gives every attempt its own name `skop-<tag>-<uid hex>-<n>`,
so a restart finds it by name instead of launching a second (docs/design.md §4.3), and a lost launch
fails the object once the attempts are used up. This module adds what is particular to a job: what
its Skaha status means. A job that fails is retried a bounded number of times under the next
attempt's name; the last failure carries the job's log tail. Skaha statuses of both eras:
docs/platform-api.md §3. Also the phase helper the preparing kinds share.
Pure: imports neither kopf, kubernetes nor httpx.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from skaha_operator.domain.common import Phase
from skaha_operator.domain.launch import Launch
from skaha_operator.domain.status import PhasedStatus
from skaha_operator.reconcile.conditions import summary_conditions
from skaha_operator.reconcile.launch import (
    LaunchPolicy,
    LaunchStep,
    LaunchView,
    Next,
    launch_new,
    marker,
    release_launch,
    step_launch,
)
from skaha_operator.reconcile.timing import Timing, poll_delay
from skaha_operator.reconcile.transitions import Table, check_transition

S = TypeVar("S", bound=PhasedStatus)

DONE_STATUSES = frozenset({"Completed", "Succeeded"})
FAILED_STATUSES = frozenset({"Failed", "Error"})
# Last seen in one of these and then gone: it may have finished and been removed by Skaha's TTL.
UNFINISHED_STATUSES = frozenset({"Pending", "Running"})

OUTCOME_NOT_OBSERVED = "OutcomeNotObserved"
JOB_VANISHED = "JobVanished"

# Preparing kinds (Storage, Data, JupyterNotebook): prepared once, then Available until deleted;
# a deletion is released through the same decision, shown as Releasing while it waits.
PREPARE_TRANSITIONS: Table = {
    Phase.INITIALIZING: frozenset(
        {Phase.PREPARING, Phase.AVAILABLE, Phase.RELEASING, Phase.FAILED}
    ),
    Phase.PREPARING: frozenset({Phase.AVAILABLE, Phase.RELEASING, Phase.FAILED}),
    Phase.AVAILABLE: frozenset({Phase.RELEASING, Phase.FAILED}),
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


@dataclass(frozen=True)
class JobPlan:
    """A headless launch: Skaha name, image, command, args and environment
    (docs/platform-api.md §2)."""

    name: str
    image: str
    cmd: str
    args: str
    env: dict[str, str]


class JobOutcome(StrEnum):
    """Where a job stands after one step."""

    LAUNCH = "Launch"  # write `launch` (the marker) with a guarded write, then launch `name`
    WAIT = "Wait"
    DONE = "Done"
    FAILED = "Failed"
    STALLED = "Stalled"  # a person must look (an ambiguous listing)


@dataclass(frozen=True)
class JobStep:
    """The job's outcome, the new `Launch` to record, what to delete, and when to look again."""

    outcome: JobOutcome
    reason: str
    message: str
    launch: Launch
    requeue: float | None = None
    name: str | None = None  # the Skaha name to launch under, for LAUNCH
    delete: tuple[str, ...] = field(default=())  # late attempts under our names, to remove


def job_base(tag: str, uid: str) -> str:
    """The name every attempt of a job starts with: `skop-<tag>-<uid hex>`."""
    return f"skop-{tag}-{uid.replace('-', '').lower()[:32]}"


def job_policy(timing: Timing, *, tag: str, uid: str, what: str) -> LaunchPolicy:
    """How a preparation job launches: a name per attempt, Failed when the attempts run out."""
    return LaunchPolicy(
        what=f"{what} job",
        base=job_base(tag, uid),
        per_attempt_names=True,
        max_attempts=timing.max_job_attempts,
        grace=timing.adopt_grace,
        lost_fails=True,
    )


def make_job_name(tag: str, uid: str, attempt: int) -> str:
    """Skaha name of attempt `attempt` of a job: `skop-<tag>-<uid hex>-<n>` (valid for §2)."""
    return f"{job_base(tag, uid)}-{attempt}"


# Skaha splits `args` at spaces (docs/platform-api.md §2), so a job's shell script travels in the
# environment variable SKOP_SCRIPT, which Kubernetes substitutes into the container's args as
# `$(SKOP_SCRIPT)` [I: Kubernetes expands $(VAR) in args from the container's env].
JOB_CMD = "/bin/sh"
JOB_ARGS = "-c $(SKOP_SCRIPT)"
SCRIPT_ENV = "SKOP_SCRIPT"


def job_step(
    job: Launch | None,
    view: LaunchView,
    detail: str | None,
    now: datetime,
    timing: Timing,
    *,
    tag: str,
    uid: str,
    what: str,
    failure_reason: str,
) -> JobStep:
    """The next step of a preparation job: launch, wait, done, failed or stalled.

    `view` is what the controller saw: the jobs listed under the policy's base name (when
    `needs_listing` says so) and the recorded id looked up; `detail` is the job's log tail,
    fetched when it failed.
    """
    policy = job_policy(timing, tag=tag, uid=uid, what=what)
    s = marker(job)
    if s.pending_since is None or not s.id:
        return _from_protocol(step_launch(job, view, now, policy))
    track = step_launch(job, view, now, policy)
    launch, delete = track.launch, track.delete
    name, attempts = s.name or policy.name(s.attempts or 1), s.attempts or 1
    waited = max(0.0, (now - s.pending_since).total_seconds())
    if view.gone:
        last = s.observed
        unseen = last in UNFINISHED_STATUSES
        why = (
            f"{name} was last seen {last} and is gone: its outcome was not observed"
            if unseen
            else f"{name} disappeared"
        )
        if attempts < policy.max_attempts:
            return _relaunch(launch, now, policy, why, delete)
        gone = launch.model_copy(update={"observed": "Gone"})
        if unseen:
            text = (
                f"the outcome of {policy.what} {name} was not observed: it was last seen {last} "
                f"and was removed (Skaha's clean-up of finished jobs) before it was seen "
                f"finishing; no attempts left ({attempts} of {policy.max_attempts})"
            )
            return JobStep(JobOutcome.FAILED, OUTCOME_NOT_OBSERVED, text, gone, delete=delete)
        text = f"{policy.what} {name} disappeared before it was seen running or finishing"
        return JobStep(JobOutcome.FAILED, JOB_VANISHED, text, gone, delete=delete)
    if view.by_id is None:
        return JobStep(
            JobOutcome.WAIT,
            "Polling",
            f"polling {policy.what} {name}",
            launch,
            timing.poll_base,
            delete=delete,
        )
    status = view.by_id.state
    if status in DONE_STATUSES:
        return JobStep(
            JobOutcome.DONE,
            "JobCompleted",
            f"{policy.what} {name} completed",
            launch,
            delete=delete,
        )
    if status in FAILED_STATUSES:
        tail = f": {detail}" if detail else ""
        if attempts < policy.max_attempts:
            return _relaunch(launch, now, policy, f"{name} {status}{tail}", delete)
        return JobStep(
            JobOutcome.FAILED,
            failure_reason,
            f"{policy.what} {name} {status} (attempt {attempts} of {policy.max_attempts}){tail}",
            launch,
            delete=delete,
        )
    return JobStep(
        JobOutcome.WAIT,
        "JobRunning",
        f"{policy.what} {name} is {status or 'unknown'}",
        launch,
        poll_delay(waited, timing),
        delete=delete,
    )


def job_release(
    job: Launch | None,
    view: LaunchView,
    now: datetime,
    timing: Timing,
    *,
    tag: str,
    uid: str,
    what: str,
) -> LaunchStep:
    """Release a job: delete every live job under the base name (all attempts), then wait until
    nothing is live and no launch can still commit. `view.listed`: every job whose name starts
    with the base name."""
    return release_launch(job, view, now, job_policy(timing, tag=tag, uid=uid, what=what))


def _relaunch(
    state: Launch, now: datetime, policy: LaunchPolicy, why: str, delete: tuple[str, ...]
) -> JobStep:
    return _launching(launch_new(state, now, policy, why=why), delete)


def _launching(step: LaunchStep, delete: tuple[str, ...]) -> JobStep:
    """A protocol LAUNCH as a job step: launch under the name in the new marker."""
    return JobStep(
        JobOutcome.LAUNCH,
        step.reason,
        step.message,
        step.launch,
        step.requeue,
        step.launch.name,
        delete,
    )


def _from_protocol(step: LaunchStep) -> JobStep:
    """A protocol step before the id is known, as a job step."""
    match step.next:
        case Next.LAUNCH:
            return _launching(step, step.delete)
        case Next.TRACK:  # adopted by name: look at it by id at once
            return JobStep(
                JobOutcome.WAIT, step.reason, step.message, step.launch, 0.0, delete=step.delete
            )
        case Next.STALLED:
            return JobStep(
                JobOutcome.STALLED,
                step.reason,
                step.message,
                step.launch,
                step.requeue,
                delete=step.delete,
            )
        case Next.LOST:  # the policy fails a job whose launches left nothing
            return JobStep(JobOutcome.FAILED, step.reason, step.message, step.launch)
        case Next.WAIT | Next.RELEASED:
            return JobStep(
                JobOutcome.WAIT,
                step.reason,
                step.message,
                step.launch,
                step.requeue,
                delete=step.delete,
            )
    raise AssertionError(f"unhandled protocol step {step.next}")


__all__ = [
    "DONE_STATUSES",
    "FAILED_STATUSES",
    "JOB_ARGS",
    "JOB_CMD",
    "JOB_VANISHED",
    "OUTCOME_NOT_OBSERVED",
    "PREPARE_TRANSITIONS",
    "SCRIPT_ENV",
    "JobOutcome",
    "JobPlan",
    "JobStep",
    "job_base",
    "job_policy",
    "job_release",
    "job_step",
    "make_job_name",
    "with_phase",
]
