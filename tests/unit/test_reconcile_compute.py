"""decide_compute, table-driven: one row per Skaha status (both eras), deadline and schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from skaha_operator.domain.common import ConditionStatus, Phase, SessionType
from skaha_operator.domain.compute import Compute, ComputeStatus
from skaha_operator.reconcile.compute import (
    Act,
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


def launched(phase: Phase, **extra: Any) -> dict[str, Any]:
    """A status after launch with id abc12345, launched at CREATED."""
    return {
        "phase": phase,
        "sessionName": make_skaha_session_name(UID),
        "launchPendingSince": CREATED,
        "sessionId": "abc12345",
        "phaseTimes": {phase: CREATED},
        **extra,
    }


def obs(**kw: Any) -> ComputeObservation:
    return ComputeObservation(now=kw.pop("now", NOW), platform=kw.pop("platform", None), **kw)


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
    seen = SkahaView(status=skaha_status, connect_url=url, expiry_time=EXPIRY, detail="exit 3")
    d = decide_compute(c, obs(skaha=seen), T)
    assert (d.status.phase, d.status.reason) == (phase, reason)
    assert d.action == Act.NONE
    assert d.status.skaha_status == skaha_status
    assert d.status.polls == 3
    assert d.status.last_polled == NOW
    if phase == Phase.FAILED:
        assert d.status.message == f"Skaha session {skaha_status}: exit 3"
    if phase in {Phase.AVAILABLE, Phase.RUNNING} and url:
        assert d.status.connectors is not None
        assert [(x.kind, x.protocol, x.url) for x in d.status.connectors] == [(type_, "https", url)]
    if phase == Phase.PREPARING:
        # Backoff: half the time since launch (60 s) -> 30 s, within [poll_base, poll_cap].
        assert d.requeue_after == 30.0
    if phase in {Phase.COMPLETED, Phase.FAILED}:
        assert d.requeue_after is None
    assert d.events == ((f"Preparing->{phase}: {reason}",) if phase != Phase.PREPARING else ())


def test_polling_gone_before_running_fails() -> None:
    c = make(status=launched(Phase.PREPARING))
    d = decide_compute(c, obs(skaha=SkahaView(gone=True)), T)
    assert (d.status.phase, d.status.reason) == (Phase.FAILED, "SessionVanished")


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
    d = decide_compute(c, obs(skaha=SkahaView(status="Pending")), T)
    assert (d.status.phase, d.status.reason, d.action) == (Phase.RELEASING, reason, Act.DELETE)
    assert d.requeue_after == T.poll_base


def test_pending_requeue_never_sleeps_past_the_deadline() -> None:
    schedule = {"start": "2030-01-01T11:50:00Z", "prepareDeadline": "10m10s"}
    c = make(schedule=schedule, status=launched(Phase.PREPARING))
    d = decide_compute(c, obs(skaha=SkahaView(status="Pending")), T)
    assert d.status.reason == "SessionPending"
    assert d.requeue_after == 10.0  # the deadline, sooner than the 30 s backoff


def test_entering_use_wakes_at_the_end_of_the_booking() -> None:
    # Booked until 30 s from now: the first in-use requeue must not sleep a whole resync.
    schedule = {"start": "2030-01-01T11:00:00Z", "duration": "1h30s"}
    c = make(schedule=schedule, status=launched(Phase.PREPARING))
    d = decide_compute(c, obs(skaha=SkahaView(status="Running", expiry_time=EXPIRY)), T)
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
    d = decide_compute(c, obs(skaha=SkahaView(status=skaha_status, expiry_time=EXPIRY)), T)
    assert (d.status.phase, d.status.reason, d.action) == (phase, reason, Act.NONE)
    assert d.status.skaha_status == skaha_status
    if phase == was:
        # Interactive: the resync; headless: the poll backoff (60 s since launch -> 30 s).
        assert d.requeue_after == (30.0 if type_ == "headless" else T.resync)


def test_in_use_gone_fails() -> None:
    c = make(status=launched(Phase.AVAILABLE))
    d = decide_compute(c, obs(skaha=SkahaView(gone=True)), T)
    assert (d.status.phase, d.status.reason) == (Phase.FAILED, "SessionVanished")


def test_in_use_end_of_booking_releases() -> None:
    schedule = {"start": "2030-01-01T10:00:00Z", "duration": "2h"}
    c = make(schedule=schedule, status=launched(Phase.AVAILABLE))
    d = decide_compute(c, obs(skaha=SkahaView(status="Running", expiry_time=EXPIRY)), T)
    assert (d.status.phase, d.status.reason, d.action) == (
        Phase.RELEASING,
        "DurationEnded",
        Act.DELETE,
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
    seen = SkahaView(status="Running", expiry_time=NOW + expiry_in)
    d = decide_compute(c, obs(skaha=seen), T)
    assert d.status.phase == was
    assert (d.action == Act.RENEW) is renew
    assert d.status.renewals == (2 if renew else 1)


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
    assert (d.action == Act.LAUNCH) is (reason == "Launching")
    assert d.events == (f"Initializing->{phase}: {reason}",)
    assert d.status.phase_times == {phase: NOW}
    assert d.status.observed_generation == 3


def test_waiting_wakes_to_launch_at_the_start() -> None:
    c = make(schedule={"start": "2030-01-01T12:10:00Z"}, status={"phase": "Waiting"})
    at_start = NOW + timedelta(minutes=10)
    d = decide_compute(c, obs(now=at_start, platform=PLATFORM, dependencies=DEPS_OK), T)
    assert (d.status.phase, d.action) == (Phase.PREPARING, Act.LAUNCH)


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
    assert (s.session_name, s.launch_pending_since, s.launched_cores, s.launched_ram_gib) == (
        name,
        NOW,
        4,
        8,
    )
    assert s.session_id is None


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
    assert d.action == Act.NONE


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
            "waiting for DockerContainer img",
        ),
        (
            PLATFORM,
            (DEPS_OK[0], DependencyView("Storage", "work", None)),
            "waiting for Storage work",
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
    assert conditions["Stalled"] == ("True" if stalled else "False")


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


def test_dependency_conditions_cover_every_dependency_of_a_kind() -> None:
    deps = (
        DEPS_OK[0],
        DependencyView("Storage", "a", Phase.PREPARING, "CreatingDirectories"),
        DependencyView("Storage", "b", Phase.AVAILABLE),
    )
    d = decide_compute(make(), obs(platform=PLATFORM, dependencies=deps), T)
    conds = {c.type: c for c in d.status.conditions or []}
    assert condition_status(d.status.conditions, "DockerContainerReady") is True
    assert conds["StorageReady"].status == ConditionStatus.FALSE
    assert conds["StorageReady"].reason == "CreatingDirectories"
    assert conds["StorageReady"].message == (
        "Storage a: Preparing (CreatingDirectories); Storage b: Available"
    )
    assert condition_status(d.status.conditions, "Ready") is False
    assert condition_status(d.status.conditions, "Reconciling") is True


# -- adoption after a launch whose id was never recorded -----------------------------------------


def pending(since: timedelta, attempts: int = 1) -> dict[str, Any]:
    return {
        "phase": "Preparing",
        "sessionName": make_skaha_session_name(UID),
        "launchPendingSince": NOW - since,
        "launchAttempts": attempts,
        "launchedCores": 2,
    }


@pytest.mark.parametrize(
    ("since", "candidates", "reason", "stalled", "session_id"),
    [
        (timedelta(seconds=5), ("abc12345",), "Adopted", False, "abc12345"),
        (timedelta(minutes=10), ("abc12345",), "Adopted", False, "abc12345"),
        (timedelta(seconds=5), ("abc12345", "def67890"), "AmbiguousLaunch", True, None),
        (timedelta(seconds=5), (), "LaunchPending", False, None),
        (timedelta(minutes=10), None, "LaunchPending", False, None),
    ],
)
def test_adoption(
    since: timedelta,
    candidates: tuple[str, ...] | None,
    reason: str,
    stalled: bool,
    session_id: str | None,
) -> None:
    d = decide_compute(make(status=pending(since)), obs(candidates=candidates), T)
    assert (d.status.phase, d.status.reason, d.action) == (Phase.PREPARING, reason, Act.NONE)
    assert d.status.session_id == session_id
    assert condition_status(d.status.conditions, "Stalled") is stalled
    assert d.launch is None  # never a second launch


def test_a_lost_launch_is_sent_again_under_the_same_name_with_a_new_marker() -> None:
    d = decide_compute(make(status=pending(timedelta(minutes=10))), obs(candidates=()), T)
    assert (d.status.phase, d.status.reason, d.action) == (Phase.PREPARING, "Launching", Act.LAUNCH)
    assert d.launch is not None
    assert d.launch.name == make_skaha_session_name(UID)
    assert (d.launch.cores, d.status.launch_attempts) == (2, 2)
    assert d.status.launch_pending_since == NOW


def test_launches_stop_at_the_attempt_limit_and_stall_for_a_human() -> None:
    limit = T.max_launch_attempts
    status = pending(timedelta(minutes=10), attempts=limit)
    d = decide_compute(make(status=status), obs(candidates=()), T)
    assert (d.status.phase, d.status.reason, d.action) == (Phase.PREPARING, "LaunchLost", Act.NONE)
    assert condition_status(d.status.conditions, "Stalled") is True
    assert d.launch is None


# -- release -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "seen", "phase", "action"),
    [
        ("PrepareDeadlineExceeded", SkahaView(gone=True), Phase.FAILED, Act.NONE),
        ("PollLimitExceeded", SkahaView(gone=True), Phase.FAILED, Act.NONE),
        ("DurationEnded", SkahaView(gone=True), Phase.COMPLETED, Act.NONE),
        ("Cancelled", SkahaView(gone=True), Phase.CANCELLED, Act.NONE),
        ("DurationEnded", SkahaView(status="Running"), Phase.RELEASING, Act.DELETE),
        ("DurationEnded", SkahaView(status="Terminating"), Phase.RELEASING, Act.NONE),
        ("DurationEnded", None, Phase.RELEASING, Act.DELETE),
    ],
)
def test_releasing(reason: str, seen: SkahaView | None, phase: Phase, action: Act) -> None:
    status = launched(Phase.RELEASING, reason=reason, message="why")
    d = decide_compute(make(status=status), obs(skaha=seen), T)
    assert (d.status.phase, d.status.reason, d.action) == (phase, reason, action)
    assert d.status.message == "why"
    if phase == Phase.RELEASING:
        assert d.requeue_after == 30.0  # half of the minute spent releasing


@pytest.mark.parametrize("phase", [Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED])
def test_terminal_phases_never_change(phase: Phase) -> None:
    status = launched(phase, reason="X")
    c = make(status=status)
    d = decide_compute(c, obs(skaha=SkahaView(status="Running")), T)
    assert d.status == c.status
    assert (d.action, d.requeue_after, d.events) == (Act.NONE, None, ())


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
    assert wire["launchPendingSince"] == "2030-01-01T12:00:00Z"


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
    seen = SkahaView(
        status="Running",
        connect_url="https://h/session/notebook/abc12345/lab/tree/arc/home/alice?token=abc12345",
        expiry_time=EXPIRY,
    )
    compute = make(type_=type_, status=launched(Phase.PREPARING))
    d = decide_compute(compute, obs(skaha=seen, open_path=open_path), T)
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
    conds = {c.type: c for c in d.status.conditions or []}
    assert conds["DataReady"].message == "Data cat: Preparing (JobRunning)"
    assert conds["JupyterNotebookReady"].reason == "NotebookSetupFailed"
