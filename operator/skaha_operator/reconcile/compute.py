"""The Compute decision: (spec, status, observation, now) -> next status and the actions to take.

Pure: imports neither kopf, kubernetes nor httpx. The controller observes (Kubernetes objects, the
Skaha session), calls `decide_compute` once, performs the actions and writes the status with a
guarded write. The launch itself (marker, adoption by name, re-sends, late commits, release) is
the shared protocol of reconcile/launch.py; this module adds what is particular to a Skaha
session: gating on dependencies and the start time, fitting resources, polling until usable,
renewing, and ending at the booked time. Release (deletion, an ended booking, a deadline) is the
same decision: delete what carries our name and wait until nothing can still appear.
Facts: Skaha statuses of both eras and launch parameters (docs/platform-api.md §2-3), the
create-pending marker (docs/design.md §4.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from skaha_operator.domain.common import (
    TERMINAL_PHASES,
    Connector,
    Phase,
    SessionType,
    parse_duration,
)
from skaha_operator.domain.compute import Compute, ComputeStatus
from skaha_operator.domain.launch import Launch
from skaha_operator.reconcile.conditions import summary_conditions
from skaha_operator.reconcile.launch import (
    REFUSED,
    LaunchPolicy,
    LaunchStep,
    LaunchView,
    Next,
    marker,
    release_launch,
    step_launch,
)
from skaha_operator.reconcile.parts import BlockedWording, release_blocked
from skaha_operator.reconcile.timing import Timing, poll_delay, schedule_bounds
from skaha_operator.reconcile.transitions import COMPUTE_TRANSITIONS, check_transition

# Reasons that end a release in Failed or Cancelled rather than Completed.
FAILURE_REASONS = frozenset(
    {"PrepareDeadlineExceeded", "PollLimitExceeded", "SessionFailed", "SessionVanished"}
)
CANCEL_REASONS = frozenset({"Cancelled"})
# Platform probe reasons (reconcile/checks.py) that no amount of waiting fixes.
PLATFORM_NEEDS_HUMAN = frozenset({"Unauthorized", "TokenSecretMissing", "CredentialsNotMarked"})
# Skaha statuses of a session that still holds resources (docs/platform-api.md §3).
LIVE_STATUSES = frozenset({"Pending", "Running", "Terminating", "Unknown"})

# The words a Compute has always used for its blocked release: it leaves a session behind.
BLOCKED_WORDS = BlockedWording(
    them="the session", annotation="abandon", fate="the session may still run at the platform"
)

INTERACTIVE_USABLE = Phase.AVAILABLE
"""An interactive session that runs is usable; a headless one is Running (docs/design.md §3)."""


@dataclass(frozen=True)
class DependencyView:
    """The observed phase of one thing a Compute waits for."""

    kind: str
    name: str
    phase: str | None  # None: the object does not exist (yet)
    reason: str | None = None


@dataclass(frozen=True)
class PlatformView:
    """What the Compute needs to know of its SkahaPlatform."""

    ready: bool
    cores_options: tuple[int, ...] = ()
    ram_options: tuple[int, ...] = ()
    reason: str | None = None
    max_interactive: int | None = None  # Skaha's per-user cap on interactive sessions


# A Compute waiting for a free interactive-session slot (the admission queue, controllers/slots.py).
QUEUE_REASON = "SessionLimitReached"


@dataclass(frozen=True)
class Slots:
    """The platform user's interactive sessions in use, and queued Computes ahead of this one."""

    used: int
    ahead: int


def queue_key(compute: Compute) -> tuple[str, str, str]:
    """Queue order: requested start (creation when none), then creation time, then name."""
    created = str(compute.metadata.get("creationTimestamp") or "")
    schedule = compute.spec.schedule
    start = schedule.start.isoformat() if schedule and schedule.start else created
    return (start, created, str(compute.metadata.get("name") or ""))


@dataclass(frozen=True)
class SkahaView:
    """The recorded Skaha session as observed by id (None in the observation: not looked up)."""

    status: str | None = None
    connect_url: str | None = None
    start_time: datetime | None = None
    expiry_time: datetime | None = None
    detail: str | None = None  # logs/events tail, fetched when the session failed


@dataclass(frozen=True)
class ComputeObservation:
    """Everything observed for one decision."""

    now: datetime
    platform: PlatformView | None
    dependencies: tuple[DependencyView, ...] = ()
    launch: LaunchView = field(default_factory=LaunchView)  # sessions under our name, by id
    skaha: SkahaView | None = None  # the recorded session's details (None: not looked up)
    open_path: str | None = None  # a notebook file the connect URL should open (in-session path)
    # Resolved before the marker: why the launch inputs (image, registry secret) are not ready.
    inputs_problem: tuple[str, str] | None = None  # (reason, message)
    refused: str | None = None  # Skaha refused the launch just sent (400): its message
    slots: Slots | None = None  # counted for an interactive launch when the platform has a cap
    cap_refused: str | None = None  # Skaha refused the launch for the interactive-session cap
    deleting: bool = False  # the object has a deletionTimestamp
    reachable: bool = True  # the platform's clients exist (release needs them)
    abandon: bool = False  # a person asked to leave the external session behind


@dataclass(frozen=True)
class LaunchPlan:
    """The parameters of a launch, already fitted to the platform's options."""

    name: str
    type: SessionType
    cores: int | None
    ram_gib: int | None
    gpus: int | None


@dataclass(frozen=True)
class ComputeDecision:
    """The next status, the actions, and when to look again.

    Actions run in this order: the status write (with the marker, guarded by resourceVersion
    when `launch` is set), the launch, the deletes, the renew.
    """

    status: ComputeStatus
    launch: LaunchPlan | None = None
    delete: tuple[str, ...] = ()
    renew: bool = False
    requeue_after: float | None = None
    events: tuple[str, ...] = field(default=())
    released: bool = False  # deleting: nothing is left, the finalizer may go
    warning: str | None = None  # a Warning Event (release blocked, something left behind)
    write: bool = True  # False: the status must not be written (terminal, or released)


def make_skaha_session_name(uid: str) -> str:
    """The Skaha `name` of a Compute: deterministic from its UID, valid for Skaha (§2)."""
    return "skop-" + uid.replace("-", "").lower()[:32]


def launch_policy(compute: Compute, timing: Timing) -> LaunchPolicy:
    """How a Compute launches: one name for every attempt, Stalled when attempts run out."""
    return LaunchPolicy(
        what="Skaha session",
        base=make_skaha_session_name(str(compute.metadata.get("uid", ""))),
        max_attempts=timing.max_launch_attempts,
        grace=timing.adopt_grace,
    )


def fit_option(wanted: int | None, options: tuple[int, ...]) -> int | None:
    """The smallest option >= `wanted` (None when nothing fits); None wanted stays None."""
    if wanted is None or not options:
        return wanted
    fitting = [o for o in options if o >= wanted]
    return min(fitting) if fitting else None


def skaha_phase(status: str | None, session_type: SessionType) -> Phase | None:
    """Map a Skaha status (both eras, docs/platform-api.md §3) to a Compute phase; None: keep
    waiting."""
    match status:
        case "Running":
            return Phase.RUNNING if session_type == SessionType.HEADLESS else INTERACTIVE_USABLE
        case "Completed" | "Succeeded":
            return Phase.COMPLETED
        case "Failed" | "Error":
            return Phase.FAILED
        case _:
            return None  # Pending, Terminating, Unknown, or a word we do not know yet


def decide_compute(compute: Compute, obs: ComputeObservation, timing: Timing) -> ComputeDecision:
    """The next step for one Compute."""
    status = compute.status or ComputeStatus()
    phase = status.phase or Phase.INITIALIZING
    step = _Step(compute, status, obs, timing, launch_policy(compute, timing))
    if obs.deleting:
        return step.release()
    blocked = obs.platform is not None and obs.platform.reason in PLATFORM_NEEDS_HUMAN
    live = phase not in {Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED}
    if blocked and live and step.launched.pending_since is not None:
        return step.blocked()
    match phase:
        case Phase.INITIALIZING | Phase.WAITING | Phase.PREPARING:
            return step.prepare()
        case Phase.AVAILABLE | Phase.RUNNING:
            return step.in_use()
        case Phase.RELEASING:
            return step.releasing()
        case Phase.COMPLETED | Phase.FAILED | Phase.CANCELLED:
            return ComputeDecision(status=status, write=False)
    raise AssertionError(f"unhandled phase {phase}")


@dataclass
class _Step:
    """One decision's working state; methods return the decision for each situation."""

    compute: Compute
    status: ComputeStatus
    obs: ComputeObservation
    timing: Timing
    policy: LaunchPolicy

    @property
    def now(self) -> datetime:
        return self.obs.now

    @property
    def launched(self) -> Launch:
        return marker(self.status.launch)

    def _result(
        self,
        phase: Phase,
        reason: str,
        message: str | None,
        *,
        requeue: float | None = None,
        stalled: bool = False,
        launch: LaunchPlan | None = None,
        delete: tuple[str, ...] = (),
        renew: bool = False,
        changes: dict[str, object] | None = None,
        warning: str | None = None,
        usable: bool = True,
    ) -> ComputeDecision:
        old = self.status.phase or Phase.INITIALIZING
        check_transition(COMPUTE_TRANSITIONS, old, phase)
        gen = self.compute.metadata.get("generation")
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
        if phase != old or not times:
            times.setdefault(phase, self.now)
        new = self.status.model_copy(
            update={
                "phase": phase,
                "reason": reason,
                "message": message,
                "conditions": conditions,
                "observed_generation": gen,
                "phase_times": times,
                **(changes or {}),
            }
        )
        events = (f"{old}->{phase}: {message or reason}",) if phase != old else ()
        if stalled and warning is None and self.status.reason != reason:
            warning = message
        return ComputeDecision(new, launch, delete, renew, requeue, events, warning=warning)

    # -- before use -------------------------------------------------------------------------

    def prepare(self) -> ComputeDecision:
        start, end, deadline = schedule_bounds(self.compute.spec.schedule, self._created())
        if self.obs.cap_refused is not None:
            # A session started outside the operator took the slot: wait, never fail. A first
            # launch left nothing behind, so it goes back to the queue; a re-sent one keeps its
            # marker (an earlier attempt may still commit and must be adopted or released), and
            # the refused attempt does not count.
            attempts = self.launched.attempts or 1
            kept = self.launched.model_copy(update={"attempts": attempts - 1})
            return self._result(
                Phase.PREPARING,
                QUEUE_REASON,
                f"waiting for a free interactive session slot: {self.obs.cap_refused}",
                requeue=self.timing.dependency_recheck,
                changes={"launch": Launch() if attempts <= 1 else kept},
            )
        if self.obs.refused is not None:
            # Skaha answered 400: nothing was created, and sending it again would not help.
            return self._result(
                Phase.FAILED,
                "LaunchRejected",
                f"Skaha refused the launch: {self.obs.refused}",
                changes={"launch": self.launched.model_copy(update={"observed": REFUSED})},
            )
        if self.launched.id:
            return self._await_running(deadline)
        if self.launched.pending_since is not None:
            return self._adopt(deadline)
        if self.now < start:
            wait = (start - self.now).total_seconds()
            return self._result(
                Phase.WAITING, "WaitingForStart", f"starts at {start.isoformat()}", requeue=wait
            )
        if deadline is not None and self.now >= deadline:
            # Say what it was still waiting for: that is what a person has to fix.
            waiting = {"WaitingForDependencies", QUEUE_REASON}
            was = self.status.message if self.status.reason in waiting else None
            return self._result(
                Phase.FAILED,
                "PrepareDeadlineExceeded",
                f"not usable by the prepare deadline {deadline.isoformat()}"
                + (f" ({was})" if was else ""),
            )
        if end is not None and self.now >= end:
            return self._result(Phase.FAILED, "DurationEnded", "the booking ended before launch")
        return self._gate_and_launch(deadline)

    def _gate_and_launch(self, deadline: datetime | None) -> ComputeDecision:
        platform = self.obs.platform
        for dep in self.obs.dependencies:
            if dep.phase in {Phase.FAILED, Phase.CANCELLED, Phase.COMPLETED}:
                return self._result(
                    Phase.FAILED,
                    "DependencyFailed",
                    f"{dep.kind} {dep.name} is {dep.phase}"
                    + (f" ({dep.reason})" if dep.reason else ""),
                )
        waiting = [
            d for d in self.obs.dependencies if d.phase not in {Phase.AVAILABLE, Phase.RUNNING}
        ]
        if platform is None or not platform.ready or waiting:
            what = [_dependency_text(d) for d in waiting]
            if platform is None or not platform.ready:
                why = "not found" if platform is None else platform.reason
                ref = self.compute.spec.platform_ref
                what.insert(0, f"SkahaPlatform {ref}" + (f" ({why})" if why else ""))
            return self._result(
                Phase.PREPARING,
                "WaitingForDependencies",
                "waiting for " + ", ".join(what),
                requeue=self._until(deadline, self.timing.dependency_recheck),
                # Waiting will not help: someone must fix the token, its Secret or the name.
                stalled=platform is None or platform.reason in PLATFORM_NEEDS_HUMAN,
            )
        if self.obs.inputs_problem is not None:
            # Resolved before the marker: nothing is sent and no attempt is used until fixed.
            reason, message = self.obs.inputs_problem
            return self._result(
                Phase.PREPARING,
                reason,
                message,
                requeue=self._until(deadline, self.timing.dependency_recheck),
                stalled=True,
            )
        queued = self._queue(platform, deadline)
        if queued is not None:
            return queued
        spec = self.compute.spec
        cores = fit_option(spec.cores, platform.cores_options)
        ram = fit_option(spec.ram_gib, platform.ram_options)
        if cores is None and spec.cores is not None:
            return self._no_fit("cores", spec.cores, platform.cores_options)
        if ram is None and spec.ram_gib is not None:
            return self._no_fit("RAM (GiB)", spec.ram_gib, platform.ram_options)
        return self._launch(step_launch(None, LaunchView(), self.now, self.policy), cores, ram)

    def _queue(self, platform: PlatformView, deadline: datetime | None) -> ComputeDecision | None:
        """Wait in the admission queue while no interactive slot is free for this Compute."""
        cap, slots = platform.max_interactive, self.obs.slots
        if self.compute.spec.type == SessionType.HEADLESS or cap is None or slots is None:
            return None  # headless sessions are not capped
        if slots.used + slots.ahead < cap:
            return None
        place = slots.ahead + 1
        return self._result(
            Phase.PREPARING,
            QUEUE_REASON,
            f"waiting for a free interactive session slot ({slots.used} of {cap} in use on "
            f"SkahaPlatform {self.compute.spec.platform_ref}); place {place} in the queue",
            requeue=self._until(deadline, self.timing.dependency_recheck),
        )

    def _launch(self, step: LaunchStep, cores: int | None, ram: int | None) -> ComputeDecision:
        spec = self.compute.spec
        assert step.launch.name is not None
        plan = LaunchPlan(
            name=step.launch.name, type=spec.type, cores=cores, ram_gib=ram, gpus=spec.gpus
        )
        # The marker goes into the same guarded write as the phase, before the POST
        # (docs/design.md §4.3).
        return self._result(
            Phase.PREPARING,
            step.reason,
            step.message,
            launch=plan,
            requeue=self.timing.poll_base,
            changes={"launch": step.launch, "launched_cores": cores, "launched_ram_gib": ram},
        )

    def _no_fit(self, what: str, wanted: int, options: tuple[int, ...]) -> ComputeDecision:
        return self._result(
            Phase.FAILED,
            "ResourcesUnavailable",
            f"{what} {wanted} exceeds every option the platform offers ({max(options)} at most)",
        )

    def _adopt(self, deadline: datetime | None) -> ComputeDecision:
        # A launch was sent but its id was never recorded (crash, timeout, 500 after commit).
        step = step_launch(self.status.launch, self.obs.launch, self.now, self.policy)
        if step.next == Next.LAUNCH and deadline is not None and self.now >= deadline:
            return self._result(
                Phase.FAILED,
                "PrepareDeadlineExceeded",
                f"the launch of {self.launched.name} was lost and the prepare deadline "
                f"{deadline.isoformat()} has passed",
            )
        match step.next:
            case Next.LAUNCH:
                return self._launch(step, self.status.launched_cores, self.status.launched_ram_gib)
            case Next.TRACK:
                return self._result(
                    Phase.PREPARING, step.reason, step.message, requeue=0.0,
                    changes={"launch": step.launch},
                )  # fmt: skip
            case Next.STALLED | Next.LOST:
                return self._result(
                    Phase.PREPARING, step.reason, step.message, requeue=step.requeue,
                    stalled=True, changes={"launch": step.launch},
                )  # fmt: skip
            case _:
                return self._result(
                    Phase.PREPARING, step.reason, step.message, requeue=step.requeue,
                    changes={"launch": step.launch},
                )  # fmt: skip

    def blocked(self) -> ComputeDecision:
        """The platform refuses our credentials: not usable now, a person must act; no call is
        made and nothing ends because of it (docs/design.md §4.9). The platform's recovery
        wakes this Compute."""
        platform = self.obs.platform
        assert platform is not None
        reason = f"Platform{platform.reason}"
        message = (
            f"SkahaPlatform {self.compute.spec.platform_ref} cannot be used ({platform.reason}): "
            "fix its token Secret; the session is kept and resumes when the platform is Ready"
        )
        return self._result(
            self._phase(), reason, message, stalled=True, usable=False,
            requeue=self.timing.resync,
        )  # fmt: skip

    def _track(self) -> LaunchStep:
        return step_launch(self.status.launch, self.obs.launch, self.now, self.policy)

    def _await_running(self, deadline: datetime | None) -> ComputeDecision:
        seen = self.obs.skaha
        polls = (self.status.polls or 0) + 1
        track = self._track()
        if self.obs.launch.gone:
            return self._vanished(before_use=True)
        if seen is None:
            return self._result(
                Phase.PREPARING, "Polling", "polling Skaha", requeue=self.timing.poll_base
            )
        common = {"polls": polls, "last_polled": self.now, "launch": track.launch}
        target = skaha_phase(seen.status, self.compute.spec.type)
        observed = self._observed(seen) | common
        if target is None:
            if deadline is not None and self.now >= deadline:
                return self._release(
                    "PrepareDeadlineExceeded",
                    f"still {seen.status} at the prepare deadline {deadline.isoformat()}",
                    changes=observed,
                )
            limit = self._max_polls()
            if limit is not None and polls >= limit:
                return self._release(
                    "PollLimitExceeded",
                    f"still {seen.status} after {polls} polls",
                    changes=observed,
                )
            return self._result(
                Phase.PREPARING,
                "SessionPending",
                f"Skaha session {self.launched.id} is {seen.status}",
                requeue=self._until(deadline, poll_delay(self._since_launch(), self.timing)),
                delete=track.delete,
                changes=observed,
            )
        return self._entered(target, seen, observed, track.delete)

    def _vanished(self, *, before_use: bool) -> ComputeDecision:
        sid = self.launched.id
        gone = self.launched.model_copy(update={"observed": "Gone"})
        if self.compute.spec.type == SessionType.HEADLESS:
            # Skaha drops finished headless sessions after a TTL: the outcome was not seen.
            return self._result(
                Phase.COMPLETED,
                "OutcomeNotObserved",
                f"Skaha no longer lists headless session {sid}; it ended without the operator "
                "seeing whether it succeeded (its record expired)",
                changes={"launch": gone},
            )
        when = "before it ran" if before_use else "outside the operator"
        return self._result(
            Phase.FAILED,
            "SessionVanished",
            f"Skaha session {sid} disappeared {when}",
            changes={"launch": gone},
        )

    # -- in use -----------------------------------------------------------------------------

    def _entered(
        self,
        target: Phase,
        seen: SkahaView,
        observed: dict[str, object],
        delete: tuple[str, ...] = (),
    ) -> ComputeDecision:
        if target == Phase.FAILED:
            detail = f": {seen.detail}" if seen.detail else ""
            return self._result(
                Phase.FAILED,
                "SessionFailed",
                f"Skaha session {self.launched.id} {seen.status}{detail}",
                delete=delete,
                changes=observed,
            )
        if target == Phase.COMPLETED:
            return self._result(
                Phase.COMPLETED,
                "SessionCompleted",
                f"Skaha session {self.launched.id} completed",
                delete=delete,
                changes=observed,
            )
        _, end, _ = schedule_bounds(self.compute.spec.schedule, self._created())
        return self._result(
            target,
            "SessionRunning",
            f"Skaha session {self.launched.id} is running",
            requeue=self._in_use_requeue(seen, end),
            delete=delete,
            changes=observed,
        )

    def in_use(self) -> ComputeDecision:
        seen = self.obs.skaha
        if self.obs.launch.gone:
            return self._vanished(before_use=False)
        if seen is None:
            return self._result(self._phase(), "Polling", "polling Skaha", requeue=0.0)
        track = self._track()
        _, end, _ = schedule_bounds(self.compute.spec.schedule, self._created())
        observed = self._observed(seen) | {"launch": track.launch}
        if seen.status == "Terminating":
            return self._result(
                Phase.FAILED,
                "SessionVanished",
                f"Skaha session {self.launched.id} is being deleted outside the operator",
                changes=observed,
            )
        if end is not None and self.now >= end:
            return self._release("DurationEnded", "the booked duration ended", changes=observed)
        target = skaha_phase(seen.status, self.compute.spec.type)
        if target in {Phase.FAILED, Phase.COMPLETED}:
            assert target is not None
            return self._entered(target, seen, observed, track.delete)
        if self._needs_renewal(seen, end):
            return self._result(
                self._phase(),
                "Renewing",
                f"renewing Skaha session {self.launched.id} before it expires",
                renew=True,
                requeue=self.timing.poll_base,
                delete=track.delete,
                changes={
                    **observed,
                    "renewals": (self.status.renewals or 0) + 1,
                    "renewed_at": self.now,
                },
            )
        return self._result(
            self._phase(),
            "SessionRunning",
            f"Skaha session {self.launched.id} is running",
            requeue=self._in_use_requeue(seen, end),
            delete=track.delete,
            changes=observed,
        )

    def _renew_margin(self, seen: SkahaView) -> float:
        """Renew when less than the smaller of the margin and half of what the site granted
        last remains: from the session's start, or from our latest renewal. (A renewal moves the
        expiry but not the start, so expiry - start grows with every renewal; half of it soon
        exceeds the site's expiry and the session lapses between two renewals.)"""
        margin = self.timing.renew_before
        if seen.expiry_time is not None:
            since = [t for t in (seen.start_time, self.status.renewed_at) if t is not None]
            if since:
                granted = (seen.expiry_time - max(since)).total_seconds()
                if granted > 0:
                    margin = min(margin, granted / 2)
        return margin

    def _needs_renewal(self, seen: SkahaView, end: datetime | None) -> bool:
        if self.compute.spec.type == SessionType.HEADLESS or seen.expiry_time is None:
            return False  # a headless renew is a no-op at Skaha (docs/platform-api.md §3)
        booked_beyond = end is None or end > seen.expiry_time
        margin = timedelta(seconds=self._renew_margin(seen))
        last = self.status.renewed_at
        # At most one renew per margin window: a renew Skaha did not honour is not repeated
        # on every poll.
        if last is not None and self.now - last < margin:
            return False
        return booked_beyond and self.now >= seen.expiry_time - margin

    def _in_use_requeue(self, seen: SkahaView, end: datetime | None = None) -> float:
        wake = self.timing.resync
        if self.compute.spec.type == SessionType.HEADLESS:
            wake = poll_delay(self._since_launch(), self.timing)
        if end is not None:
            wake = min(wake, max(0.0, (end - self.now).total_seconds()))
        if seen.expiry_time is not None and self.compute.spec.type != SessionType.HEADLESS:
            margin = self._renew_margin(seen)
            renew_at = seen.expiry_time - timedelta(seconds=margin)
            last = self.status.renewed_at
            if last is not None:
                renew_at = max(renew_at, last + timedelta(seconds=margin))
            wake = min(wake, max(self.timing.poll_base, (renew_at - self.now).total_seconds()))
        return wake

    # -- release ----------------------------------------------------------------------------

    def _release(
        self, reason: str, message: str, changes: dict[str, object] | None = None
    ) -> ComputeDecision:
        delete = (self.launched.id,) if self.launched.id else ()
        return self._result(
            Phase.RELEASING,
            reason,
            message,
            delete=delete,
            requeue=self.timing.poll_base,
            changes=changes,
        )

    def _final_phase(self) -> Phase:
        reason = self.status.reason or "Released"
        if reason in FAILURE_REASONS:
            return Phase.FAILED
        return Phase.CANCELLED if reason in CANCEL_REASONS else Phase.COMPLETED

    def releasing(self) -> ComputeDecision:
        """Phase Releasing (an ended booking, a deadline): the release protocol, then terminal."""
        step = release_launch(self.status.launch, self.obs.launch, self.now, self.policy)
        reason = self.status.reason or "Released"
        if step.next == Next.RELEASED:
            return self._result(self._final_phase(), reason, self.status.message or "released")
        return self._result(
            Phase.RELEASING,
            reason,
            self.status.message,
            delete=step.delete,
            requeue=min(
                step.requeue or 2.0, poll_delay(self._since_phase(Phase.RELEASING), self.timing)
            ),
        )

    def release(self) -> ComputeDecision:
        """The object is being deleted: release what was launched, then let the finalizer go."""
        terminal = self._phase() in TERMINAL_PHASES
        launched = self.launched.pending_since is not None
        if launched and not self.obs.reachable:
            blocked = release_blocked(
                f"Skaha session {self.launched.id or self.launched.name}",
                self.compute.spec.platform_ref,
                abandon=self.obs.abandon,
                reason=self.status.reason,
                terminal=terminal,
                wording=BLOCKED_WORDS,
            )
            if blocked.released:
                return ComputeDecision(
                    self.status, released=True, write=False, warning=blocked.warning
                )
            if terminal:
                return ComputeDecision(
                    self.status, requeue_after=blocked.requeue, write=False, warning=blocked.warning
                )
            hold = blocked.hold
            return self._result(
                hold.phase, hold.reason, hold.message, requeue=hold.requeue, stalled=hold.stalled,
                warning=blocked.warning,
            )  # fmt: skip
        step = release_launch(self.status.launch, self.obs.launch, self.now, self.policy)
        if step.next == Next.RELEASED:
            return ComputeDecision(self.status, released=True, write=False)
        if terminal:
            return ComputeDecision(
                self.status, delete=step.delete, requeue_after=step.requeue, write=False
            )
        return self._result(
            Phase.RELEASING, step.reason, step.message, delete=step.delete, requeue=step.requeue
        )

    # -- helpers ----------------------------------------------------------------------------

    def _phase(self) -> Phase:
        return self.status.phase or Phase.INITIALIZING

    def _created(self) -> datetime:
        created = self.compute.metadata.get("creationTimestamp")
        if isinstance(created, str):
            return datetime.fromisoformat(created.replace("Z", "+00:00"))
        return self.now

    def _since_launch(self) -> float:
        since = self.launched.pending_since or self.now
        return max(0.0, (self.now - since).total_seconds())

    def _since_phase(self, phase: Phase) -> float:
        since = (self.status.phase_times or {}).get(phase, self.now)
        return max(0.0, (self.now - since).total_seconds())

    def _until(self, deadline: datetime | None, delay: float) -> float:
        if deadline is None:
            return delay
        return max(0.0, min(delay, (deadline - self.now).total_seconds()))

    def _max_polls(self) -> int | None:
        schedule = self.compute.spec.schedule
        return (schedule.max_polls if schedule else None) or self.timing.max_polls

    def _observed(self, seen: SkahaView) -> dict[str, object]:
        out: dict[str, object] = {}
        if seen.connect_url:
            url = seen.connect_url
            if self.obs.open_path and self.compute.spec.type == SessionType.NOTEBOOK:
                url = open_file_url(url, self.obs.open_path)
            out["connectors"] = [
                Connector(kind=str(self.compute.spec.type), protocol=_scheme(url), url=url)
            ]
        if seen.start_time:
            out["start_time"] = seen.start_time
        if seen.expiry_time:
            out["expiry_time"] = seen.expiry_time
        return out


def _dependency_text(dep: DependencyView) -> str:
    """`Data obs (Preparing: Replicating)`: what the Compute waits for, and why it waits."""
    if not dep.phase:
        return f"{dep.kind} {dep.name} (not found)"
    return f"{dep.kind} {dep.name} ({dep.phase}" + (f": {dep.reason})" if dep.reason else ")")


def open_file_url(connect_url: str, path: str) -> str:
    """A notebook connect URL that opens `path` (docs/platform-api.md §7: append the file's path
    to the lab tree, `.../lab/tree/arc/home/<u>/<file>`); other URLs are returned unchanged."""
    marker = "/lab/tree/"
    head, found, rest = connect_url.partition(marker)
    if not found:
        return connect_url
    _, _, query = rest.partition("?")
    return f"{head}{marker}{path.strip('/')}" + (f"?{query}" if query else "")


def _scheme(url: str) -> str:
    return url.split(":", 1)[0] if ":" in url else "https"


__all__ = [
    "LIVE_STATUSES",
    "QUEUE_REASON",
    "ComputeDecision",
    "ComputeObservation",
    "DependencyView",
    "LaunchPlan",
    "PlatformView",
    "SkahaView",
    "Slots",
    "decide_compute",
    "fit_option",
    "launch_policy",
    "make_skaha_session_name",
    "open_file_url",
    "parse_duration",
    "queue_key",
    "skaha_phase",
]
