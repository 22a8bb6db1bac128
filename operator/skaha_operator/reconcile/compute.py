"""The Compute decision: (spec, status, observation, now) -> next status and at most one action.

Pure: imports neither kopf, kubernetes nor httpx. The handler observes (Kubernetes objects, the
Skaha session), calls `decide_compute` once, performs the one action and writes the status with a
guarded write. Facts: Skaha statuses of both eras (skaha-api.md §3), launch parameters (§2),
the create-pending marker pattern (kubernetes-tooling.md §D.3), design.md §3-4.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from skaha_operator.domain.common import Connector, Phase, SessionType, parse_duration
from skaha_operator.domain.compute import Compute, ComputeStatus
from skaha_operator.reconcile.conditions import set_condition, summary_conditions
from skaha_operator.reconcile.timing import Timing, poll_delay, schedule_bounds
from skaha_operator.reconcile.transitions import COMPUTE_TRANSITIONS, check_transition


class Act(StrEnum):
    """The one external action a decision may ask for."""

    NONE = "None"
    LAUNCH = "Launch"
    RENEW = "Renew"
    DELETE = "Delete"


# Reasons that end a release in Failed or Cancelled rather than Completed.
FAILURE_REASONS = frozenset(
    {"PrepareDeadlineExceeded", "PollLimitExceeded", "SessionFailed", "SessionVanished"}
)
CANCEL_REASONS = frozenset({"Cancelled"})
# Platform probe reasons (reconcile/checks.py) that no amount of waiting fixes.
PLATFORM_NEEDS_HUMAN = frozenset({"Unauthorized", "TokenSecretMissing"})

INTERACTIVE_USABLE = Phase.AVAILABLE
"""An interactive session that runs is usable; a headless one is Running (design §3)."""


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


@dataclass(frozen=True)
class SkahaView:
    """The Skaha session as observed by id; `gone` when Skaha answers 404."""

    gone: bool = False
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
    skaha: SkahaView | None = None  # None: not looked up (no id yet)
    candidates: tuple[str, ...] | None = None  # session ids with our name; None: not listed
    open_path: str | None = None  # a notebook file the connect URL should open (in-session path)


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
    """The next status, the one action, and when to look again."""

    status: ComputeStatus
    action: Act = Act.NONE
    launch: LaunchPlan | None = None
    requeue_after: float | None = None
    events: tuple[str, ...] = field(default=())


def make_skaha_session_name(uid: str) -> str:
    """The Skaha `name` of a Compute: deterministic from its UID, valid for Skaha (§2)."""
    return "skop-" + uid.replace("-", "").lower()[:32]


def fit_option(wanted: int | None, options: tuple[int, ...]) -> int | None:
    """The smallest option >= `wanted` (None when nothing fits); None wanted stays None."""
    if wanted is None or not options:
        return wanted
    fitting = [o for o in options if o >= wanted]
    return min(fitting) if fitting else None


def skaha_phase(status: str | None, session_type: SessionType) -> Phase | None:
    """Map a Skaha status (both eras, skaha-api.md §3) to a Compute phase; None: keep waiting."""
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
    step = _Step(compute, status, obs, timing)
    match phase:
        case Phase.INITIALIZING | Phase.WAITING | Phase.PREPARING:
            return step.prepare()
        case Phase.AVAILABLE | Phase.RUNNING:
            return step.in_use()
        case Phase.RELEASING:
            return step.releasing()
        case Phase.COMPLETED | Phase.FAILED | Phase.CANCELLED:
            return ComputeDecision(status=status)
    raise AssertionError(f"unhandled phase {phase}")


@dataclass
class _Step:
    """One decision's working state; methods return the decision for each situation."""

    compute: Compute
    status: ComputeStatus
    obs: ComputeObservation
    timing: Timing

    @property
    def now(self) -> datetime:
        return self.obs.now

    def _result(
        self,
        phase: Phase,
        reason: str,
        message: str | None,
        *,
        action: Act = Act.NONE,
        requeue: float | None = None,
        stalled: bool = False,
        launch: LaunchPlan | None = None,
        changes: dict[str, object] | None = None,
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
        )
        # One condition per kind (StorageReady, DataReady, ...): True only when every
        # dependency of that kind is usable, otherwise explained by the first one that is not.
        by_kind: dict[str, list[DependencyView]] = {}
        for dep in self.obs.dependencies:
            by_kind.setdefault(dep.kind, []).append(dep)
        for kind, deps in by_kind.items():
            blocking = [d for d in deps if d.phase not in {Phase.AVAILABLE, Phase.RUNNING}]
            first = blocking[0] if blocking else None
            why = (first.reason or first.phase or "Missing") if first else "Available"
            conditions = set_condition(
                conditions,
                f"{kind}Ready",
                not blocking,
                _camel(why),
                "; ".join(_dependency_text(d) for d in deps),
                self.now,
                gen,
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
        events = (f"{old}->{phase}: {reason}",) if phase != old else ()
        return ComputeDecision(new, action, launch, requeue, events)

    # -- before use -------------------------------------------------------------------------

    def prepare(self) -> ComputeDecision:
        start, end, deadline = schedule_bounds(self.compute.spec.schedule, self._created())
        if self.status.session_id:
            return self._await_running(deadline)
        if self.status.launch_pending_since is not None:
            return self._adopt(deadline)
        if self.now < start:
            wait = (start - self.now).total_seconds()
            return self._result(
                Phase.WAITING, "WaitingForStart", f"starts at {start.isoformat()}", requeue=wait
            )
        if deadline is not None and self.now >= deadline:
            # Say what it was still waiting for: that is what a person has to fix.
            was = self.status.message if self.status.reason == "WaitingForDependencies" else None
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
            what = [f"{d.kind} {d.name}" for d in waiting]
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
        spec = self.compute.spec
        cores = fit_option(spec.cores, platform.cores_options)
        ram = fit_option(spec.ram_gib, platform.ram_options)
        if cores is None and spec.cores is not None:
            return self._no_fit("cores", spec.cores, platform.cores_options)
        if ram is None and spec.ram_gib is not None:
            return self._no_fit("RAM (GiB)", spec.ram_gib, platform.ram_options)
        return self._launch(cores, ram)

    def _launch(self, cores: int | None, ram: int | None) -> ComputeDecision:
        spec = self.compute.spec
        name = make_skaha_session_name(str(self.compute.metadata.get("uid", "")))
        plan = LaunchPlan(name=name, type=spec.type, cores=cores, ram_gib=ram, gpus=spec.gpus)
        attempt = (self.status.launch_attempts or 0) + 1
        # The marker goes into the same guarded write as the phase, before the POST (design §4.3).
        return self._result(
            Phase.PREPARING,
            "Launching",
            f"launching Skaha session {name}" + (f" (attempt {attempt})" if attempt > 1 else ""),
            action=Act.LAUNCH,
            launch=plan,
            requeue=self.timing.poll_base,
            changes={
                "session_name": name,
                "launch_pending_since": self.now,
                "launch_attempts": attempt,
                "launched_cores": cores,
                "launched_ram_gib": ram,
            },
        )

    def _no_fit(self, what: str, wanted: int, options: tuple[int, ...]) -> ComputeDecision:
        return self._result(
            Phase.FAILED,
            "ResourcesUnavailable",
            f"{what} {wanted} exceeds every option the platform offers ({max(options)} at most)",
        )

    def _adopt(self, deadline: datetime | None) -> ComputeDecision:
        # A launch was started but its id was never recorded (crash, timeout, 500 after commit).
        found = self.obs.candidates
        pending_since = self.status.launch_pending_since
        assert pending_since is not None
        if found is not None and len(found) == 1:
            return self._result(
                Phase.PREPARING,
                "Adopted",
                f"adopted Skaha session {found[0]} found by name",
                requeue=0.0,
                changes={"session_id": found[0]},
            )
        if found is not None and len(found) > 1:
            return self._result(
                Phase.PREPARING,
                "AmbiguousLaunch",
                f"{len(found)} Skaha sessions named {self.status.session_name}: "
                f"{', '.join(found)}; delete all but one by hand",
                stalled=True,
                requeue=self.timing.resync,
            )
        waited = (self.now - pending_since).total_seconds()
        # Not listed (Skaha or the platform unavailable): no evidence the launch was lost.
        if found is None or waited < self.timing.adopt_grace:
            return self._result(
                Phase.PREPARING,
                "LaunchPending",
                f"looking for Skaha session {self.status.session_name}",
                requeue=min(self.timing.poll_cap, max(self.timing.poll_base, waited / 2)),
            )
        # Listed after the grace period and still absent: that launch never took effect (a POST
        # lost before Skaha committed it; a committed one shows up by name well within the grace).
        if deadline is not None and self.now >= deadline:
            return self._result(
                Phase.FAILED,
                "PrepareDeadlineExceeded",
                f"the launch of {self.status.session_name} was lost and the prepare deadline "
                f"{deadline.isoformat()} has passed",
            )
        if (self.status.launch_attempts or 1) < self.timing.max_launch_attempts:
            return self._launch(self.status.launched_cores, self.status.launched_ram_gib)
        return self._result(
            Phase.PREPARING,
            "LaunchLost",
            f"{self.status.launch_attempts or 1} launches of {self.status.session_name} left no "
            f"session (the last {int(waited)}s ago); not launching again: inspect Skaha and "
            "delete this Compute",
            stalled=True,
            requeue=self.timing.resync,
        )

    def _await_running(self, deadline: datetime | None) -> ComputeDecision:
        seen = self.obs.skaha
        polls = (self.status.polls or 0) + 1
        if seen is None:
            return self._result(
                Phase.PREPARING, "Polling", "polling Skaha", requeue=self.timing.poll_base
            )
        common = {"polls": polls, "last_polled": self.now}
        if seen.gone:
            return self._result(
                Phase.FAILED,
                "SessionVanished",
                f"Skaha session {self.status.session_id} disappeared before it ran",
                changes=common,
            )
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
                f"Skaha session is {seen.status}",
                requeue=self._until(deadline, poll_delay(self._since_launch(), self.timing)),
                changes=observed,
            )
        return self._entered(target, seen, observed)

    # -- in use -----------------------------------------------------------------------------

    def _entered(
        self, target: Phase, seen: SkahaView, observed: dict[str, object]
    ) -> ComputeDecision:
        if target == Phase.FAILED:
            detail = f": {seen.detail}" if seen.detail else ""
            return self._result(
                Phase.FAILED,
                "SessionFailed",
                f"Skaha session {seen.status}{detail}",
                changes=observed,
            )
        if target == Phase.COMPLETED:
            return self._result(
                Phase.COMPLETED, "SessionCompleted", "Skaha session completed", changes=observed
            )
        _, end, _ = schedule_bounds(self.compute.spec.schedule, self._created())
        return self._result(
            target,
            "SessionRunning",
            f"Skaha session {self.status.session_id} is running",
            requeue=self._in_use_requeue(seen, end),
            changes=observed,
        )

    def in_use(self) -> ComputeDecision:
        seen = self.obs.skaha
        if seen is None:
            return self._result(self._phase(), "Polling", "polling Skaha", requeue=0.0)
        _, end, _ = schedule_bounds(self.compute.spec.schedule, self._created())
        observed = self._observed(seen)
        if seen.gone or seen.status == "Terminating":
            return self._result(
                Phase.FAILED,
                "SessionVanished",
                f"Skaha session {self.status.session_id} ended outside the operator",
                changes=observed,
            )
        if end is not None and self.now >= end:
            return self._release("DurationEnded", "the booked duration ended", changes=observed)
        target = skaha_phase(seen.status, self.compute.spec.type)
        if target in {Phase.FAILED, Phase.COMPLETED}:
            assert target is not None
            return self._entered(target, seen, observed)
        if self._needs_renewal(seen, end):
            return self._result(
                self._phase(),
                "Renewing",
                "renewing the Skaha session before it expires",
                action=Act.RENEW,
                requeue=self.timing.poll_base,
                changes={**observed, "renewals": (self.status.renewals or 0) + 1},
            )
        return self._result(
            self._phase(),
            "SessionRunning",
            f"Skaha session {self.status.session_id} is running",
            requeue=self._in_use_requeue(seen, end),
            changes=observed,
        )

    def _needs_renewal(self, seen: SkahaView, end: datetime | None) -> bool:
        if self.compute.spec.type == SessionType.HEADLESS or seen.expiry_time is None:
            return False  # a headless renew is a no-op at Skaha (skaha-api.md §3)
        booked_beyond = end is None or end > seen.expiry_time
        margin = timedelta(seconds=self.timing.renew_before)
        return booked_beyond and self.now >= seen.expiry_time - margin

    def _in_use_requeue(self, seen: SkahaView, end: datetime | None = None) -> float:
        wake = self.timing.resync
        if self.compute.spec.type == SessionType.HEADLESS:
            wake = poll_delay(self._since_launch(), self.timing)
        if end is not None:
            wake = min(wake, max(0.0, (end - self.now).total_seconds()))
        if seen.expiry_time is not None:
            renew_at = seen.expiry_time - timedelta(seconds=self.timing.renew_before)
            wake = min(wake, max(self.timing.poll_base, (renew_at - self.now).total_seconds()))
        return wake

    # -- release ----------------------------------------------------------------------------

    def _release(
        self, reason: str, message: str, changes: dict[str, object] | None = None
    ) -> ComputeDecision:
        return self._result(
            Phase.RELEASING,
            reason,
            message,
            action=Act.DELETE,
            requeue=self.timing.poll_base,
            changes=changes,
        )

    def releasing(self) -> ComputeDecision:
        seen = self.obs.skaha
        reason = self.status.reason or "Released"
        if (seen is not None and seen.gone) or not self.status.session_id:
            final = (
                Phase.FAILED
                if reason in FAILURE_REASONS
                else Phase.CANCELLED
                if reason in CANCEL_REASONS
                else Phase.COMPLETED
            )
            return self._result(final, reason, self.status.message or "released")
        action = Act.NONE if seen is not None and seen.status == "Terminating" else Act.DELETE
        return self._result(
            Phase.RELEASING,
            reason,
            self.status.message,
            action=action,
            requeue=poll_delay(self._since_phase(Phase.RELEASING), self.timing),
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
        since = self.status.launch_pending_since or self.now
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
        out: dict[str, object] = {"skaha_status": seen.status}
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
    """`Data obs: Preparing (Replicating)`: what the Compute waits for, and why it waits."""
    text = f"{dep.kind} {dep.name}: {dep.phase or 'not found'}"
    return text + (f" ({dep.reason})" if dep.reason and dep.phase else "")


def open_file_url(connect_url: str, path: str) -> str:
    """A notebook connect URL that opens `path` (skaha-api.md §7: append the file's path to the
    lab tree, `.../lab/tree/arc/home/<u>/<file>`); other URLs are returned unchanged."""
    marker = "/lab/tree/"
    head, found, rest = connect_url.partition(marker)
    if not found:
        return connect_url
    _, _, query = rest.partition("?")
    return f"{head}{marker}{path.strip('/')}" + (f"?{query}" if query else "")


def _scheme(url: str) -> str:
    return url.split(":", 1)[0] if ":" in url else "https"


def _camel(text: str) -> str:
    word = "".join(part[:1].upper() + part[1:] for part in text.replace("-", " ").split())
    return word if word and word[0].isalpha() else "Unknown"


__all__ = [
    "Act",
    "ComputeDecision",
    "ComputeObservation",
    "DependencyView",
    "LaunchPlan",
    "PlatformView",
    "SkahaView",
    "decide_compute",
    "fit_option",
    "make_skaha_session_name",
    "open_file_url",
    "parse_duration",
    "skaha_phase",
]
