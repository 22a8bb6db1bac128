"""decide_compute, table-driven: one row per Skaha status (both eras), deadline and schedule,
launch, adoption, late commits, renewal and release (deletion included)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from skaha_operator.domain.common import ConditionStatus, Phase, SessionType
from skaha_operator.domain.compute import Compute, ComputeStatus
from skaha_operator.reconcile.compute import (
    ComputeDecision,
    ComputeObservation,
    DependencyView,
    PlatformView,
    SkahaView,
    decide_compute,
    fit_option,
    make_skaha_session_name,
    skaha_phase,
)
from skaha_operator.reconcile.conditions import condition_status
from skaha_operator.reconcile.launch import LaunchView, Seen
from skaha_operator.reconcile.timing import Timing
from skaha_operator.reconcile.transitions import (
    COMPUTE_TRANSITIONS,
    IllegalTransition,
    check_transition,
)

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
CREATED = NOW - timedelta(minutes=1)
T = Timing()
UID = "0b7c5a4e-1111-2222-3333-444455556666"
PLATFORM = PlatformView(ready=True, cores_options=(1, 2, 4, 8), ram_options=(1, 2, 4, 8, 16))
DEPS_OK = (
    DependencyView("DockerContainer", "img", Phase.AVAILABLE),
    DependencyView("Storage", "work", Phase.AVAILABLE),
)
EXPIRY = NOW + timedelta(days=4)
NAME = "skop-0b7c5a4e111122223333444455556666"  # make_skaha_session_name(UID)
SID = "abc12345"
ABANDON = "skaha.broker.dev/abandon"


def make(
    *,
    type_: str = "notebook",
    schedule: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    cores: int | None = 2,
    ram: int | None = 8,
) -> Compute:
    """A Compute created a minute before NOW."""
    spec: dict[str, Any] = {
        "type": type_,
        "platformRef": "local",
        "executableRef": {"kind": "DockerContainer", "name": "img"},
        "storageRefs": ["work"],
    }
    if cores is not None:
        spec["cores"] = cores
    if ram is not None:
        spec["ramGiB"] = ram
    if schedule is not None:
        spec["schedule"] = schedule
    return Compute.model_validate(
        {
            "metadata": {
                "name": "c",
                "namespace": "ns",
                "uid": UID,
                "generation": 3,
                "creationTimestamp": "2030-01-01T11:59:00Z",
            },
            "spec": spec,
            "status": status,
        }
    )


def launch(
    *, since: datetime = CREATED, sid: str | None = SID, attempts: int = 1, **extra: Any
) -> dict[str, Any]:
    """The `launch` sub-status: our name, the marker, the attempts and (once known) the id."""
    out: dict[str, Any] = {"name": NAME, "pendingSince": since, "attempts": attempts, **extra}
    if sid is not None:
        out["id"] = sid
    return out


def launched(phase: Phase, **extra: Any) -> dict[str, Any]:
    """A status after launch with id abc12345, launched at CREATED."""
    return {"phase": phase, "launch": launch(), "phaseTimes": {phase: CREATED}, **extra}


def obs(**kw: Any) -> ComputeObservation:
    return ComputeObservation(now=kw.pop("now", NOW), platform=kw.pop("platform", None), **kw)


def seen(sid: str = SID, status: str = "Running", name: str = NAME) -> Seen:
    """A session carrying our name, as the executor reports it (skaha_sessions.seen_of)."""
    live = status in {"Pending", "Running", "Terminating", "Unknown"}
    return Seen(sid, name, status, live=live, deletable=live and status != "Terminating")


def by_id(
    view: SkahaView, *, listed: tuple[Seen, ...] | None = None, **kw: Any
) -> ComputeObservation:
    """The recorded session looked up by id: its details, and what the launch protocol sees."""
    found = seen(status=view.status or "Unknown")
    return obs(skaha=view, launch=LaunchView(listed=listed, by_id=found), **kw)


def gone(**kw: Any) -> ComputeObservation:
    """The recorded id answered 'not found' (and nothing is listed under our name)."""
    return obs(launch=LaunchView(listed=(), gone=True), **kw)


def idle(d: ComputeDecision) -> bool:
    """The decision sends nothing to Skaha: no launch, no delete, no renew."""
    return d.launch is None and d.delete == () and not d.renew


def conds(d: ComputeDecision) -> dict[str, bool | None]:
    return {
        t: condition_status(d.status.conditions, t) for t in ("Ready", "Reconciling", "Stalled")
    }


# -- the Skaha status map, both eras (docs/platform-api.md §3) ---------------------------------


@pytest.mark.parametrize(
    ("skaha_status", "interactive", "headless"),
    [
        ("Pending", None, None),
        ("Running", Phase.AVAILABLE, Phase.RUNNING),
        ("Terminating", None, None),
        ("Succeeded", Phase.COMPLETED, Phase.COMPLETED),
        ("Completed", Phase.COMPLETED, Phase.COMPLETED),
        ("Failed", Phase.FAILED, Phase.FAILED),
        ("Error", Phase.FAILED, Phase.FAILED),
        ("Unknown", None, None),
        ("SomethingNew", None, None),
    ],
)
def test_skaha_phase(skaha_status: str, interactive: Phase | None, headless: Phase | None) -> None:
    assert skaha_phase(skaha_status, SessionType.NOTEBOOK) == interactive
    assert skaha_phase(skaha_status, SessionType.HEADLESS) == headless


# -- while preparing: the launched session is polled until it runs ------------------------------


@pytest.mark.parametrize(
    ("skaha_status", "type_", "phase", "reason"),
    [
        ("Pending", "notebook", Phase.PREPARING, "SessionPending"),
        ("Running", "notebook", Phase.AVAILABLE, "SessionRunning"),
        ("Running", "desktop", Phase.AVAILABLE, "SessionRunning"),
        ("Running", "headless", Phase.RUNNING, "SessionRunning"),
        ("Terminating", "notebook", Phase.PREPARING, "SessionPending"),
        ("Succeeded", "headless", Phase.COMPLETED, "SessionCompleted"),
        ("Completed", "headless", Phase.COMPLETED, "SessionCompleted"),
        ("Failed", "headless", Phase.FAILED, "SessionFailed"),
        ("Error", "notebook", Phase.FAILED, "SessionFailed"),
        ("Unknown", "notebook", Phase.PREPARING, "SessionPending"),
    ],
)
def test_polling_after_launch(skaha_status: str, type_: str, phase: Phase, reason: str) -> None:
    c = make(type_=type_, status=launched(Phase.PREPARING, polls=2))
    url = "https://h/session/notebook/abc12345/lab" if type_ != "headless" else None
    view = SkahaView(status=skaha_status, connect_url=url, expiry_time=EXPIRY, detail="exit 3")
    d = decide_compute(c, by_id(view), T)
    assert (d.status.phase, d.status.reason) == (phase, reason)
    assert idle(d)
    assert d.status.launch is not None
    assert (d.status.launch.id, d.status.launch.observed) == (SID, skaha_status)
    assert d.status.polls == 3
    assert d.status.last_polled == NOW
    if phase == Phase.FAILED:
        assert d.status.message == f"Skaha session {SID} {skaha_status}: exit 3"
    if phase in {Phase.AVAILABLE, Phase.RUNNING} and url:
        assert d.status.connectors is not None
        assert [(x.kind, x.protocol, x.url) for x in d.status.connectors] == [(type_, "https", url)]
    if phase == Phase.PREPARING:
        # Backoff: half the time since launch (60 s) -> 30 s, within [poll_base, poll_cap].
        assert d.requeue_after == 30.0
    if phase in {Phase.COMPLETED, Phase.FAILED}:
        assert d.requeue_after is None
    assert d.events == (
        (f"Preparing->{phase}: {d.status.message}",) if phase != Phase.PREPARING else ()
    )


@pytest.mark.parametrize(
    ("type_", "phase", "reason"),
    [
        ("notebook", Phase.FAILED, "SessionVanished"),
        # Skaha drops a finished headless session after its TTL: it ended, outcome unknown.
        ("headless", Phase.COMPLETED, "OutcomeNotObserved"),
    ],
)
def test_polling_gone_before_running(type_: str, phase: Phase, reason: str) -> None:
    c = make(type_=type_, status=launched(Phase.PREPARING))
    d = decide_compute(c, gone(), T)
    assert (d.status.phase, d.status.reason) == (phase, reason)
    assert d.status.launch is not None
    assert (d.status.launch.id, d.status.launch.observed) == (SID, "Gone")
    assert idle(d)
    if type_ == "notebook":
        assert d.status.message == f"Skaha session {SID} disappeared before it ran"
    else:
        assert condition_status(d.status.conditions, "Stalled") is None  # absent: not stalled


def test_polling_not_looked_up_polls_again() -> None:
    c = make(status=launched(Phase.PREPARING))
    d = decide_compute(c, obs(), T)
    assert (d.status.phase, d.status.reason, d.requeue_after) == (
        Phase.PREPARING,
        "Polling",
        T.poll_base,
    )


@pytest.mark.parametrize(
    ("schedule", "polls", "reason"),
    [
        # Stuck Pending past the prepare deadline (start 10 min ago, deadline 5m): release it.
        ({"start": "2030-01-01T11:50:00Z", "prepareDeadline": "5m"}, 0, "PrepareDeadlineExceeded"),
        # Poll limit reached: this is poll number 3 of 3.
        ({"maxPolls": 3}, 2, "PollLimitExceeded"),
    ],
)
def test_pending_past_a_limit_is_released(
    schedule: dict[str, Any], polls: int, reason: str
) -> None:
    c = make(schedule=schedule, status=launched(Phase.PREPARING, polls=polls))
    d = decide_compute(c, by_id(SkahaView(status="Pending")), T)
    assert (d.status.phase, d.status.reason, d.delete) == (Phase.RELEASING, reason, (SID,))
    assert d.launch is None
    assert d.requeue_after == T.poll_base


def test_pending_requeue_never_sleeps_past_the_deadline() -> None:
    schedule = {"start": "2030-01-01T11:50:00Z", "prepareDeadline": "10m10s"}
    c = make(schedule=schedule, status=launched(Phase.PREPARING))
    d = decide_compute(c, by_id(SkahaView(status="Pending")), T)
    assert d.status.reason == "SessionPending"
    assert d.requeue_after == 10.0  # the deadline, sooner than the 30 s backoff


def test_entering_use_wakes_at_the_end_of_the_booking() -> None:
    # Booked until 30 s from now: the first in-use requeue must not sleep a whole resync.
    schedule = {"start": "2030-01-01T11:00:00Z", "duration": "1h30s"}
    c = make(schedule=schedule, status=launched(Phase.PREPARING))
    d = decide_compute(c, by_id(SkahaView(status="Running", expiry_time=EXPIRY)), T)
    assert d.status.phase == Phase.AVAILABLE
    assert d.requeue_after == 30.0


# -- in use --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("skaha_status", "type_", "phase", "reason"),
    [
        ("Pending", "notebook", Phase.AVAILABLE, "SessionRunning"),
        ("Running", "notebook", Phase.AVAILABLE, "SessionRunning"),
        ("Running", "headless", Phase.RUNNING, "SessionRunning"),
        ("Terminating", "notebook", Phase.FAILED, "SessionVanished"),
        ("Succeeded", "headless", Phase.COMPLETED, "SessionCompleted"),
        ("Completed", "headless", Phase.COMPLETED, "SessionCompleted"),
        ("Completed", "notebook", Phase.COMPLETED, "SessionCompleted"),
        ("Failed", "headless", Phase.FAILED, "SessionFailed"),
        ("Error", "notebook", Phase.FAILED, "SessionFailed"),
        ("Unknown", "headless", Phase.RUNNING, "SessionRunning"),
    ],
)
def test_in_use(skaha_status: str, type_: str, phase: Phase, reason: str) -> None:
    was = Phase.RUNNING if type_ == "headless" else Phase.AVAILABLE
    c = make(type_=type_, status=launched(was))
    d = decide_compute(c, by_id(SkahaView(status=skaha_status, expiry_time=EXPIRY)), T)
    assert (d.status.phase, d.status.reason) == (phase, reason)
    assert idle(d)
    assert d.status.launch is not None
    assert d.status.launch.observed == skaha_status
    if phase == was:
        # Interactive: the resync; headless: the poll backoff (60 s since launch -> 30 s).
        assert d.requeue_after == (30.0 if type_ == "headless" else T.resync)


@pytest.mark.parametrize(
    ("type_", "was", "phase", "reason"),
    [
        ("notebook", Phase.AVAILABLE, Phase.FAILED, "SessionVanished"),
        ("headless", Phase.RUNNING, Phase.COMPLETED, "OutcomeNotObserved"),
    ],
)
def test_in_use_gone(type_: str, was: Phase, phase: Phase, reason: str) -> None:
    c = make(type_=type_, status=launched(was))
    d = decide_compute(c, gone(), T)
    assert (d.status.phase, d.status.reason) == (phase, reason)
    assert idle(d)
    if type_ == "notebook":
        assert d.status.message == f"Skaha session {SID} disappeared outside the operator"


def test_in_use_end_of_booking_releases() -> None:
    schedule = {"start": "2030-01-01T10:00:00Z", "duration": "2h"}
    c = make(schedule=schedule, status=launched(Phase.AVAILABLE))
    d = decide_compute(c, by_id(SkahaView(status="Running", expiry_time=EXPIRY)), T)
    assert (d.status.phase, d.status.reason, d.delete) == (
        Phase.RELEASING,
        "DurationEnded",
        (SID,),
    )


@pytest.mark.parametrize(
    ("type_", "duration", "expiry_in", "renew"),
    [
        ("notebook", None, timedelta(minutes=30), True),  # within renew_before, no end
        ("notebook", "48h", timedelta(minutes=30), True),  # booked beyond the expiry
        ("notebook", "1h", timedelta(minutes=30), False),  # booking ends before the expiry
        ("notebook", None, timedelta(hours=2), False),  # not yet within renew_before
        ("headless", None, timedelta(minutes=30), False),  # a headless renew is a no-op
    ],
)
def test_renewal(type_: str, duration: str | None, expiry_in: timedelta, renew: bool) -> None:
    schedule = {"start": "2030-01-01T11:30:00Z", **({"duration": duration} if duration else {})}
    was = Phase.RUNNING if type_ == "headless" else Phase.AVAILABLE
    c = make(type_=type_, schedule=schedule, status=launched(was, renewals=1))
    d = decide_compute(c, by_id(SkahaView(status="Running", expiry_time=NOW + expiry_in)), T)
    assert d.status.phase == was
    assert d.renew is renew
    assert (d.launch, d.delete) == (None, ())
    assert d.status.renewals == (2 if renew else 1)
    assert d.status.renewed_at == (NOW if renew else None)
    assert d.status.reason == ("Renewing" if renew else "SessionRunning")


# A site whose sessions live 30 minutes: the margin is half of that (900 s), not renew_before.
SHORT = timedelta(seconds=1800)


@pytest.mark.parametrize(
    ("remaining", "renewed_ago", "renew"),
    [
        (901.0, None, False),  # more than half the lifetime left: not yet
        (899.0, None, True),  # less than 900 s left: renew
        # Renewed and honoured (the expiry moved to the renewal + 1800 s): the same 900 s margin.
        (1790.0, 10.0, False),
        (901.0, 899.0, False),
        (900.0, 900.0, True),
        # Renewed but not honoured (the expiry stayed): the window is half of what is left since
        # the renewal, so no renew on every poll, and another once that window has passed.
        (600.0, 100.0, False),
        (600.0, 599.0, False),
        (600.0, 600.0, True),
    ],
)
def test_renewal_margin_is_half_a_short_session_lifetime_and_once_per_window(
    remaining: float, renewed_ago: float | None, renew: bool
) -> None:
    assert T.renew_before == 3600.0
    extra: dict[str, Any] = {"renewals": 1}
    if renewed_ago is not None:
        extra["renewedAt"] = NOW - timedelta(seconds=renewed_ago)
    c = make(status=launched(Phase.AVAILABLE, **extra))
    expiry = NOW + timedelta(seconds=remaining)
    # Skaha granted 1800 s at the start; a renewal moves the expiry, never the start.
    started = expiry - SHORT if renewed_ago is None else NOW - timedelta(hours=1)
    view = SkahaView(status="Running", start_time=started, expiry_time=expiry)
    d = decide_compute(c, by_id(view), T)
    assert d.status.phase == Phase.AVAILABLE
    assert d.renew is renew
    assert d.status.renewals == (2 if renew else 1)
    if renew:
        assert d.status.renewed_at == NOW
    else:
        # Wakes no later than when the next renew is due (never a whole hour early).
        assert d.requeue_after is not None
        assert d.requeue_after <= T.resync


def test_a_renew_just_sent_is_not_repeated_on_the_next_poll() -> None:
    c = make(status=launched(Phase.AVAILABLE))
    expiry = NOW + timedelta(seconds=800)
    view = SkahaView(status="Running", start_time=expiry - SHORT, expiry_time=expiry)
    first = decide_compute(c, by_id(view), T)
    assert first.renew
    after = make(status=first.status.to_wire())
    later = NOW + timedelta(seconds=T.poll_base)
    second = decide_compute(after, by_id(view, now=later), T)
    assert not second.renew
    assert second.status.renewals == 1


# -- before launch: schedule, deadline, platform, dependencies, fitting ---------------------------


@pytest.mark.parametrize(
    ("schedule", "phase", "reason", "requeue"),
    [
        ({"start": "2030-01-01T12:10:00Z"}, Phase.WAITING, "WaitingForStart", 600.0),
        ({"start": "2030-01-01T12:00:00.5Z"}, Phase.WAITING, "WaitingForStart", 0.5),
        ({"start": "2030-01-01T12:00:00Z"}, Phase.PREPARING, "Launching", T.poll_base),
        (None, Phase.PREPARING, "Launching", T.poll_base),
        (
            {"start": "2030-01-01T11:00:00Z", "prepareDeadline": "1h"},
            Phase.FAILED,
            "PrepareDeadlineExceeded",
            None,
        ),
        ({"start": "2030-01-01T11:00:00Z", "duration": "30m"}, Phase.FAILED, "DurationEnded", None),
    ],
)
def test_schedule(
    schedule: dict[str, Any] | None, phase: Phase, reason: str, requeue: float | None
) -> None:
    c = make(schedule=schedule)
    d = decide_compute(c, obs(platform=PLATFORM, dependencies=DEPS_OK), T)
    assert (d.status.phase, d.status.reason, d.requeue_after) == (phase, reason, requeue)
    assert (d.launch is not None) is (reason == "Launching")
    assert (d.delete, d.renew) == ((), False)
    assert d.events == (f"Initializing->{phase}: {d.status.message}",)
    assert d.status.phase_times == {phase: NOW}
    assert d.status.observed_generation == 3


def test_waiting_wakes_to_launch_at_the_start() -> None:
    c = make(schedule={"start": "2030-01-01T12:10:00Z"}, status={"phase": "Waiting"})
    at_start = NOW + timedelta(minutes=10)
    d = decide_compute(c, obs(now=at_start, platform=PLATFORM, dependencies=DEPS_OK), T)
    assert d.status.phase == Phase.PREPARING
    assert d.launch is not None


def test_launch_writes_the_marker_and_the_fitted_plan() -> None:
    c = make(type_="headless", cores=3, ram=5)
    d = decide_compute(c, obs(platform=PLATFORM, dependencies=DEPS_OK), T)
    assert d.launch is not None
    name = make_skaha_session_name(UID)
    assert name == "skop-0b7c5a4e111122223333444455556666"
    assert (d.launch.name, d.launch.type, d.launch.cores, d.launch.ram_gib, d.launch.gpus) == (
        name,
        SessionType.HEADLESS,
        4,
        8,
        None,
    )
    s = d.status
    assert s.launch is not None
    assert (s.launch.name, s.launch.pending_since, s.launch.attempts) == (name, NOW, 1)
    assert (s.launched_cores, s.launched_ram_gib) == (4, 8)
    assert (s.launch.id, s.launch.observed) == (None, None)


@pytest.mark.parametrize(
    ("wanted", "options", "fitted"),
    [
        (3, (1, 2, 4, 8), 4),
        (4, (8, 4, 1), 4),
        (9, (1, 2, 4, 8), None),
        (None, (1, 2, 4), None),
        (5, (), 5),
    ],
)
def test_fit_option(wanted: int | None, options: tuple[int, ...], fitted: int | None) -> None:
    assert fit_option(wanted, options) == fitted


@pytest.mark.parametrize(
    ("cores", "ram", "message"),
    [
        (16, 8, "cores 16 exceeds every option the platform offers (8 at most)"),
        (2, 64, "RAM (GiB) 64 exceeds every option the platform offers (16 at most)"),
    ],
)
def test_nothing_fits(cores: int, ram: int, message: str) -> None:
    d = decide_compute(make(cores=cores, ram=ram), obs(platform=PLATFORM, dependencies=DEPS_OK), T)
    assert (d.status.phase, d.status.reason, d.status.message) == (
        Phase.FAILED,
        "ResourcesUnavailable",
        message,
    )
    assert idle(d)


@pytest.mark.parametrize(
    ("platform", "deps", "message"),
    [
        (None, DEPS_OK, "waiting for SkahaPlatform local (not found)"),
        (
            PlatformView(ready=False, reason="Unauthorized"),
            DEPS_OK,
            "waiting for SkahaPlatform local (Unauthorized)",
        ),
        (
            PLATFORM,
            (DependencyView("DockerContainer", "img", Phase.PREPARING), DEPS_OK[1]),
            "waiting for DockerContainer img (Preparing)",
        ),
        (
            PLATFORM,
            (DEPS_OK[0], DependencyView("Storage", "work", None)),
            "waiting for Storage work (not found)",
        ),
    ],
)
def test_waits_for_platform_and_dependencies(
    platform: PlatformView | None, deps: tuple[DependencyView, ...], message: str
) -> None:
    schedule = {"start": "2030-01-01T11:59:00Z", "prepareDeadline": "1m3s"}
    d = decide_compute(make(schedule=schedule), obs(platform=platform, dependencies=deps), T)
    assert (d.status.phase, d.status.reason, d.status.message) == (
        Phase.PREPARING,
        "WaitingForDependencies",
        message,
    )
    assert d.requeue_after == 3.0  # the deadline comes before the 5 s recheck


@pytest.mark.parametrize(
    ("platform", "stalled"),
    [
        (None, True),
        (PlatformView(ready=False, reason="Unauthorized"), True),
        (PlatformView(ready=False, reason="TokenSecretMissing"), True),
        (PlatformView(ready=False, reason="PlatformUnreachable"), False),
        (PlatformView(ready=False, reason="NotYetProbed"), False),
    ],
)
def test_a_platform_only_a_person_can_fix_stalls_the_compute(
    platform: PlatformView | None, stalled: bool
) -> None:
    d = decide_compute(make(), obs(platform=platform, dependencies=DEPS_OK), T)
    conditions = {c.type: c.status for c in d.status.conditions or []}
    assert d.status.reason == "WaitingForDependencies"
    assert conditions.get("Stalled") == ("True" if stalled else None)


def test_the_deadline_failure_says_what_was_still_awaited() -> None:
    waiting = {"phase": "Preparing", "reason": "WaitingForDependencies"}
    waiting["message"] = "waiting for SkahaPlatform local (Unauthorized)"
    c = make(schedule={"start": "2030-01-01T11:50:00Z", "prepareDeadline": "5m"}, status=waiting)
    d = decide_compute(c, obs(platform=PlatformView(ready=False, reason="Unauthorized")), T)
    assert (d.status.phase, d.status.reason) == (Phase.FAILED, "PrepareDeadlineExceeded")
    assert d.status.message == (
        "not usable by the prepare deadline 2030-01-01T11:55:00+00:00 "
        "(waiting for SkahaPlatform local (Unauthorized))"
    )


@pytest.mark.parametrize("dep_phase", [Phase.FAILED, Phase.CANCELLED, Phase.COMPLETED])
def test_a_finished_dependency_fails_the_compute(dep_phase: Phase) -> None:
    deps = (DependencyView("DockerContainer", "img", dep_phase, "ImageNotFound"), DEPS_OK[1])
    d = decide_compute(make(), obs(platform=PLATFORM, dependencies=deps), T)
    assert (d.status.phase, d.status.reason) == (Phase.FAILED, "DependencyFailed")
    assert d.status.message == f"DockerContainer img is {dep_phase} (ImageNotFound)"


def test_the_waiting_message_names_each_dependency_not_usable_with_its_phase_and_reason() -> None:
    # What per-kind conditions (StorageReady, ...) used to say is in the message, for the
    # dependencies the Compute waits for; the conditions are only Ready/Reconciling/Stalled.
    deps = (
        DEPS_OK[0],
        DependencyView("Storage", "a", Phase.PREPARING, "CreatingDirectories"),
        DependencyView("Storage", "b", Phase.AVAILABLE),
        DependencyView("Data", "cat", Phase.PREPARING, "JobRunning"),
    )
    d = decide_compute(make(), obs(platform=PLATFORM, dependencies=deps), T)
    assert (d.status.phase, d.status.reason) == (Phase.PREPARING, "WaitingForDependencies")
    assert d.status.message == (
        "waiting for Storage a (Preparing: CreatingDirectories), Data cat (Preparing: JobRunning)"
    )
    assert {c.type: c.status for c in d.status.conditions or []} == {
        "Ready": ConditionStatus.FALSE,
        "Reconciling": ConditionStatus.TRUE,
    }


# -- adoption after a launch whose id was never recorded -----------------------------------------


def pending(since: timedelta, attempts: int = 1, **extra: Any) -> dict[str, Any]:
    """Preparing with the marker written `since` ago and no id (the POST's answer was lost)."""
    return {
        "phase": "Preparing",
        "launch": launch(since=NOW - since, sid=None, attempts=attempts),
        "launchedCores": 2,
        **extra,
    }


def listing(*ids: str) -> LaunchView:
    """Sessions listed under our name."""
    return LaunchView(listed=tuple(seen(i, "Pending") for i in ids))


@pytest.mark.parametrize(
    ("since", "view", "reason", "stalled", "session_id"),
    [
        (timedelta(seconds=5), listing("abc12345"), "Adopted", False, "abc12345"),
        (timedelta(minutes=10), listing("abc12345"), "Adopted", False, "abc12345"),
        (timedelta(seconds=5), listing("abc12345", "def67890"), "AmbiguousLaunch", True, None),
        (timedelta(seconds=5), listing(), "LaunchPending", False, None),
        (timedelta(minutes=10), LaunchView(), "LaunchPending", False, None),  # not listed
        # Another thing's session (not our name) is never adopted.
        (
            timedelta(seconds=5),
            LaunchView(listed=(seen("zzz00000", name="skop-other"),)),
            "LaunchPending",
            False,
            None,
        ),
    ],
)
def test_adoption(
    since: timedelta,
    view: LaunchView,
    reason: str,
    stalled: bool,
    session_id: str | None,
) -> None:
    d = decide_compute(make(status=pending(since)), obs(launch=view), T)
    assert (d.status.phase, d.status.reason) == (Phase.PREPARING, reason)
    assert idle(d)
    assert d.status.launch is not None
    assert d.status.launch.id == session_id
    assert d.status.launch.attempts == 1
    assert condition_status(d.status.conditions, "Stalled") is (True if stalled else None)
    assert d.launch is None  # never a second launch


def test_a_lost_launch_is_sent_again_under_the_same_name_with_a_new_marker() -> None:
    d = decide_compute(make(status=pending(timedelta(minutes=10))), obs(launch=listing()), T)
    assert (d.status.phase, d.status.reason) == (Phase.PREPARING, "Launching")
    assert d.launch is not None
    assert d.launch.name == make_skaha_session_name(UID)
    assert d.status.launch is not None
    assert (d.launch.cores, d.status.launch.attempts) == (2, 2)
    assert d.status.launch.pending_since == NOW
    assert d.status.launch.id is None


def test_launches_stop_at_the_attempt_limit_and_stall_for_a_human() -> None:
    limit = T.max_launch_attempts
    status = pending(timedelta(minutes=10), attempts=limit)
    d = decide_compute(make(status=status), obs(launch=listing()), T)
    assert (d.status.phase, d.status.reason) == (Phase.PREPARING, "LaunchLost")
    assert idle(d)
    assert condition_status(d.status.conditions, "Stalled") is True


def test_a_lost_launch_past_the_prepare_deadline_fails_instead_of_re_sending() -> None:
    schedule = {"start": "2030-01-01T11:50:00Z", "prepareDeadline": "5m"}
    d = decide_compute(
        make(schedule=schedule, status=pending(timedelta(minutes=10))), obs(launch=listing()), T
    )
    assert (d.status.phase, d.status.reason) == (Phase.FAILED, "PrepareDeadlineExceeded")
    assert d.launch is None


# -- what is resolved before the marker, and what Skaha refuses ---------------------------------


@pytest.mark.parametrize(
    "status",
    [
        None,
        {
            "phase": "Preparing",
            "reason": "WaitingForDependencies",
            "phaseTimes": {"Preparing": NOW},
        },
    ],
)
def test_a_launch_input_problem_writes_no_marker_and_spends_no_attempt(
    status: dict[str, Any] | None,
) -> None:
    problem = ("RegistrySecretMissing", "the registry Secret of DockerContainer img is not usable")
    d = decide_compute(
        make(status=status), obs(platform=PLATFORM, dependencies=DEPS_OK, inputs_problem=problem), T
    )
    assert (d.status.phase, d.status.reason, d.status.message) == (Phase.PREPARING, *problem)
    assert d.launch is None  # nothing is sent
    assert d.status.launch is None  # no marker, so no attempt is counted
    assert d.requeue_after == T.dependency_recheck
    assert condition_status(d.status.conditions, "Stalled") is True  # a person fixes the Secret
    # Fixed: the launch goes out as the first attempt.
    again = decide_compute(
        make(status=d.status.to_wire()), obs(platform=PLATFORM, dependencies=DEPS_OK), T
    )
    assert again.launch is not None
    assert again.status.launch is not None
    assert again.status.launch.attempts == 1


def test_a_refused_launch_fails_and_is_stalled() -> None:
    # The marker is stored (the decision that launched); the POST came back 400.
    stored = pending(timedelta(seconds=0), reason="Launching")
    d = decide_compute(make(status=stored), obs(refused="Invalid value for 'cores': 3"), T)
    assert (d.status.phase, d.status.reason) == (Phase.FAILED, "LaunchRejected")
    assert d.status.message == "Skaha refused the launch: Invalid value for 'cores': 3"
    assert idle(d)
    assert d.requeue_after is None
    assert d.status.launch is not None
    assert (d.status.launch.id, d.status.launch.observed) == (None, "Refused")
    # kstatus: Failed is Stalled, and nothing is still reconciling.
    assert conds(d) == {"Ready": False, "Reconciling": None, "Stalled": True}
    assert d.events == (f"Preparing->Failed: {d.status.message}",)


# -- late commits: a re-sent launch may leave an earlier attempt under our name -----------------


@pytest.mark.parametrize(
    ("phase", "attempts", "since", "swept", "delete"),
    [
        (Phase.AVAILABLE, 2, 30.0, None, ()),  # within the grace: the late one may be ours yet
        (Phase.AVAILABLE, 2, 91.0, None, ("late0001",)),  # after the grace: swept, once
        (Phase.AVAILABLE, 2, 300.0, 200.0, ()),  # swept after the grace already: not again
        (Phase.PREPARING, 2, 91.0, None, ("late0001",)),  # while polling too
        (Phase.AVAILABLE, 1, 300.0, None, ()),  # one request leaves one session: no sweep
    ],
)
def test_a_late_session_under_our_name_is_swept_once_after_the_grace(
    phase: Phase, attempts: int, since: float, swept: float | None, delete: tuple[str, ...]
) -> None:
    extra: dict[str, Any] = {}
    if swept is not None:
        extra["sweptAt"] = NOW - timedelta(seconds=swept)
    state = launch(since=NOW - timedelta(seconds=since), attempts=attempts, **extra)
    c = make(status={"phase": phase, "launch": state, "phaseTimes": {phase: CREATED}})
    listed = (seen(SID, "Running"), seen("late0001", "Pending"))
    d = decide_compute(c, by_id(SkahaView(status="Running", expiry_time=EXPIRY), listed=listed), T)
    assert d.status.phase == Phase.AVAILABLE
    assert d.delete == delete
    assert d.status.launch is not None
    assert d.status.launch.id == SID  # the tracked session is never the one swept
    if delete:
        assert d.status.launch.swept_at == NOW
        # The next step, with the sweep recorded, deletes nothing more.
        again = decide_compute(
            make(status=d.status.to_wire()),
            by_id(SkahaView(status="Running", expiry_time=EXPIRY), listed=listed),
            T,
        )
        assert again.delete == ()


# -- release: an ended booking or a deadline (phase Releasing) -----------------------------------


@pytest.mark.parametrize(
    ("reason", "view", "phase", "delete"),
    [
        ("PrepareDeadlineExceeded", LaunchView(listed=(), gone=True), Phase.FAILED, ()),
        ("PollLimitExceeded", LaunchView(listed=(), gone=True), Phase.FAILED, ()),
        ("DurationEnded", LaunchView(listed=(), gone=True), Phase.COMPLETED, ()),
        ("Cancelled", LaunchView(listed=(), gone=True), Phase.CANCELLED, ()),
        ("DurationEnded", LaunchView(listed=(seen(),), by_id=seen()), Phase.RELEASING, (SID,)),
        # Terminating already: nothing to send, wait for it to go.
        (
            "DurationEnded",
            LaunchView(listed=(seen(status="Terminating"),), by_id=seen(status="Terminating")),
            Phase.RELEASING,
            (),
        ),
        # Not looked up (the listing failed): keep looking, never say released.
        ("DurationEnded", LaunchView(), Phase.RELEASING, ()),
    ],
)
def test_releasing(reason: str, view: LaunchView, phase: Phase, delete: tuple[str, ...]) -> None:
    status = launched(Phase.RELEASING, reason=reason, message="why")
    d = decide_compute(make(status=status), obs(launch=view), T)
    assert (d.status.phase, d.status.reason, d.delete) == (phase, reason, delete)
    assert (d.launch, d.renew, d.released) == (None, False, False)
    assert d.status.message == "why"
    if phase == Phase.RELEASING:
        assert d.requeue_after == 2.0  # the protocol's recheck, sooner than the poll backoff
    else:
        assert d.requeue_after is None


@pytest.mark.parametrize("phase", [Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED])
def test_terminal_phases_never_change(phase: Phase) -> None:
    status = launched(phase, reason="X")
    c = make(status=status)
    d = decide_compute(c, by_id(SkahaView(status="Running")), T)
    assert d.status == c.status
    assert idle(d)
    assert (d.requeue_after, d.events, d.write) == (None, (), False)


# -- deletion: the same release, then the finalizer may go ---------------------------------------


def deleting(status: dict[str, Any], view: LaunchView, **kw: Any) -> ComputeDecision:
    return decide_compute(make(status=status), obs(launch=view, deleting=True, **kw), T)


@pytest.mark.parametrize(
    ("label", "since", "view", "released", "delete", "reason"),
    [
        # A launch in flight (marker, no id, nothing listed): it may still commit.
        ("in flight", 5.0, listing(), False, (), "WaitingForLaunch"),
        ("grace not over", 89.0, listing(), False, (), "WaitingForLaunch"),
        ("grace over", 90.0, listing(), True, (), None),
        # The in-flight launch committed: found under our name, deleted.
        ("committed", 5.0, listing("late0001"), False, ("late0001",), "Releasing"),
        # Not listed (the listing failed): keep looking, even long after the grace.
        ("not listed", 600.0, LaunchView(), False, (), "Releasing"),
    ],
)
def test_deleting_during_an_in_flight_launch_waits_out_the_grace(
    label: str,
    since: float,
    view: LaunchView,
    released: bool,
    delete: tuple[str, ...],
    reason: str | None,
) -> None:
    d = deleting(pending(timedelta(seconds=since)), view)
    assert (d.released, d.delete) == (released, delete), label
    assert d.launch is None
    if released:
        assert d.write is False  # the finalizer goes; nothing more is written
    else:
        assert (d.status.phase, d.status.reason) == (Phase.RELEASING, reason), label
        assert d.requeue_after is not None
        assert 0 < d.requeue_after <= 5.0


def test_deleting_with_a_recorded_id_deletes_it_and_waits_for_it_to_go() -> None:
    status = launched(Phase.AVAILABLE)
    running = LaunchView(listed=(seen(),), by_id=seen())
    d = deleting(status, running)
    assert (d.status.phase, d.delete, d.released) == (Phase.RELEASING, (SID,), False)
    status = d.status.to_wire()
    terminating = LaunchView(listed=(seen(status="Terminating"),), by_id=seen(status="Terminating"))
    d = deleting(status, terminating)
    assert (d.status.phase, d.delete, d.released) == (Phase.RELEASING, (), False)
    assert d.status.message == f"waiting for {SID} to go"
    d = deleting(d.status.to_wire(), LaunchView(listed=(), gone=True))
    # One request, its id known and gone: nothing else can appear, released at once.
    assert (d.delete, d.released, d.write) == ((), True, False)


def test_deleting_a_re_sent_launch_waits_out_the_grace_of_the_last_attempt() -> None:
    status = {
        "phase": "Available",
        "launch": launch(since=NOW - timedelta(seconds=30), attempts=2),
    }
    d = deleting(status, LaunchView(listed=(), gone=True))
    assert (d.released, d.status.reason) == (False, "WaitingForLaunch")
    d = deleting(status, LaunchView(listed=(), gone=True), now=NOW + timedelta(seconds=60))
    assert d.released is True


def test_deleting_what_never_launched_is_released_at_once() -> None:
    for reachable in (True, False):
        d = deleting({"phase": "Preparing"}, LaunchView(), reachable=reachable)
        assert (d.released, d.delete, d.warning) == (True, (), None)


@pytest.mark.parametrize(
    "status",
    [launched(Phase.AVAILABLE), pending(timedelta(seconds=5))],
)
def test_deleting_with_the_platform_unreachable_is_blocked_until_abandoned(
    status: dict[str, Any],
) -> None:
    d = deleting(status, LaunchView(), reachable=False)
    assert (d.status.phase, d.status.reason) == (Phase.RELEASING, "ReleaseBlocked")
    assert (d.released, d.delete) == (False, ())
    assert conds(d) == {"Ready": False, "Reconciling": None, "Stalled": True}
    assert d.warning is not None
    assert f"{ABANDON}=true" in d.warning
    assert d.requeue_after == 30.0
    # The same again: still blocked, but the Warning is not repeated on every step.
    again = deleting(d.status.to_wire(), LaunchView(), reachable=False)
    assert (again.status.reason, again.released, again.warning) == ("ReleaseBlocked", False, None)
    # A person sets the abandon annotation: released, with a warning of what was left.
    left = deleting(d.status.to_wire(), LaunchView(), reachable=False, abandon=True)
    assert (left.released, left.delete, left.write) == (True, (), False)
    assert left.warning is not None
    assert left.warning.startswith("abandoned Skaha session")


def test_deleting_a_terminal_compute_with_the_platform_unreachable_keeps_its_status() -> None:
    status = launched(Phase.FAILED, reason="SessionFailed")
    d = deleting(status, LaunchView(), reachable=False)
    assert (d.released, d.write, d.requeue_after) == (False, False, 30.0)
    assert d.status.phase == Phase.FAILED
    assert d.warning is not None
    assert ABANDON in d.warning


def test_deleting_a_terminal_compute_still_deletes_what_lives() -> None:
    status = launched(Phase.COMPLETED, reason="SessionCompleted")
    d = deleting(status, LaunchView(listed=(seen(),), by_id=seen()))
    assert (d.delete, d.released, d.write) == ((SID,), False, False)
    assert d.status.phase == Phase.COMPLETED


@pytest.mark.parametrize(
    ("old", "new", "legal"),
    [
        (Phase.INITIALIZING, Phase.WAITING, True),
        (Phase.WAITING, Phase.PREPARING, True),
        (Phase.PREPARING, Phase.AVAILABLE, True),
        (Phase.AVAILABLE, Phase.RELEASING, True),
        (Phase.RELEASING, Phase.COMPLETED, True),
        (Phase.PREPARING, Phase.WAITING, False),
        (Phase.AVAILABLE, Phase.PREPARING, False),
        (Phase.COMPLETED, Phase.RUNNING, False),
        (Phase.FAILED, Phase.PREPARING, False),
    ],
)
def test_compute_transition_table(old: Phase, new: Phase, legal: bool) -> None:
    if legal:
        check_transition(COMPUTE_TRANSITIONS, old, new)
    else:
        with pytest.raises(IllegalTransition, match=f"{old} -> {new}"):
            check_transition(COMPUTE_TRANSITIONS, old, new)


def test_status_round_trips_to_the_wire() -> None:
    d = decide_compute(make(), obs(platform=PLATFORM, dependencies=DEPS_OK), T)
    wire = d.status.to_wire()
    assert ComputeStatus.model_validate(wire) == d.status
    assert wire["phase"] == "Preparing"
    assert wire["launch"] == {"name": NAME, "pendingSince": "2030-01-01T12:00:00Z", "attempts": 1}


@pytest.mark.parametrize(
    ("type_", "open_path", "url"),
    [
        ("notebook", "/arc/home/alice/w/a.ipynb", "https://h/session/notebook/abc12345/lab/tree/"
         "arc/home/alice/w/a.ipynb?token=abc12345"),
        ("notebook", None, "https://h/session/notebook/abc12345/lab/tree/arc/home/alice"
         "?token=abc12345"),
    ],
)  # fmt: skip
def test_a_notebook_compute_connects_to_its_notebook_file(
    type_: str, open_path: str | None, url: str
) -> None:
    view = SkahaView(
        status="Running",
        connect_url="https://h/session/notebook/abc12345/lab/tree/arc/home/alice?token=abc12345",
        expiry_time=EXPIRY,
    )
    compute = make(type_=type_, status=launched(Phase.PREPARING))
    d = decide_compute(compute, by_id(view, open_path=open_path), T)
    assert d.status.phase == Phase.AVAILABLE
    assert [c.url for c in d.status.connectors or []] == [url]


def test_a_failed_notebook_dependency_fails_the_compute_naming_it() -> None:
    deps = (
        DependencyView("JupyterNotebook", "nb", Phase.FAILED, "NotebookSetupFailed"),
        DependencyView("Data", "cat", Phase.PREPARING, "JobRunning"),
    )
    d = decide_compute(make(), obs(platform=PLATFORM, dependencies=deps), T)
    assert (d.status.phase, d.status.reason) == (Phase.FAILED, "DependencyFailed")
    assert d.status.message == "JupyterNotebook nb is Failed (NotebookSetupFailed)"
    assert condition_status(d.status.conditions, "Stalled") is True


def test_a_resent_launch_refused_for_the_cap_keeps_its_marker() -> None:
    """An earlier attempt may still commit: its name stays looked for (adopt, sweep, release)."""
    refused = "User alice has reached the maximum of 1 active sessions."
    d = decide_compute(
        make(status=pending(timedelta(seconds=1), attempts=2)), obs(cap_refused=refused), T
    )
    assert d.status.reason == "SessionLimitReached"
    assert d.status.launch is not None
    assert d.status.launch.pending_since is not None
    assert d.status.launch.attempts == 1
    first = decide_compute(
        make(status=pending(timedelta(seconds=1), attempts=1)), obs(cap_refused=refused), T
    )
    assert first.status.launch is not None
    assert first.status.launch.pending_since is None
