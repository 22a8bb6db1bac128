"""The Session decision, table-driven: precedence, schedule, deadline, cancel, release, deletion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from skaha_operator.domain.common import (
    ConditionStatus,
    Connector,
    Phase,
    SessionPhase,
)
from skaha_operator.domain.session import Session, SessionStatus
from skaha_operator.reconcile.builders import PartRef, make_children
from skaha_operator.reconcile.conditions import condition_status
from skaha_operator.reconcile.session import (
    PartState,
    SessionDecision,
    SessionObservation,
    decide_session,
    decide_session_deletion,
    derive_session_phase,
    derive_session_verdict,
)
from skaha_operator.reconcile.timing import Timing
from skaha_operator.reconcile.transitions import (
    SESSION_TRANSITIONS,
    IllegalTransition,
    check_transition,
)

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
T = Timing()
URL = "https://h/session/notebook/abc12345/lab?token=abc12345"

EXE = PartRef("DockerContainer", "s1-executable", False, "executable")
WORK = PartRef("Storage", "s1-storage-work", False, "storage-work")
SHARED_STORE = PartRef("Storage", "survey-inputs", True, "storage-shared")
CAT = PartRef("Data", "s1-data-cat", False, "data-cat")
COMPUTE = PartRef("Compute", "s1-compute", False, "compute")
ALL = (EXE, WORK, SHARED_STORE, CAT, COMPUTE)
OWNED = (EXE, WORK, CAT, COMPUTE)

SPEC: dict[str, Any] = {
    "platformRef": "local",
    "schedule": {"start": "2030-01-01T11:55:00Z", "duration": "2h", "prepareDeadline": "20m"},
    "executable": {
        "template": {"dockerContainer": {"image": "images.canfar.net/skaha/astroml:latest"}}
    },
    "compute": {"template": {"type": "notebook", "cores": 2}},
    "storages": [
        {"name": "work", "template": {"area": "home", "path": "sessions/s1"}},
        {"name": "shared", "ref": "survey-inputs"},
    ],
    "data": [
        {"name": "cat", "template": {"storageRef": "work", "http": {"url": "https://e.org/c"}}},
    ],
}


def session(
    status: dict[str, Any] | None = None, *, cancel: bool = False, **schedule: Any
) -> Session:
    spec = {**SPEC, "cancel": cancel, "schedule": {**SPEC["schedule"], **schedule}}
    return Session.model_validate(
        {
            "metadata": {
                "name": "s1",
                "namespace": "ns",
                "uid": "uid-1",
                "generation": 4,
                "creationTimestamp": "2030-01-01T11:50:00Z",
            },
            "spec": spec,
            "status": status,
        }
    )


def st(phase: str | None, reason: str | None = None, **kw: Any) -> PartState:
    ready = phase in {Phase.AVAILABLE, Phase.RUNNING}
    return PartState(phase=phase, ready=ready, reason=reason, message=kw.pop("message", None), **kw)


def parts(
    default: PartState | None, **by_part: PartState | None
) -> dict[tuple[str, str], PartState | None]:
    """Every part in `default` state, except those named (by PartRef.part, '-' as '_')."""
    return {(r.kind, r.name): by_part.get(r.part.replace("-", "_"), default) for r in ALL}


def obs(
    default: PartState | None, now: datetime = NOW, **by_part: PartState | None
) -> SessionObservation:
    return SessionObservation(now=now, parts=parts(default, **by_part))


def conditions(d: SessionDecision) -> dict[str, tuple[ConditionStatus, str]]:
    return {c.type: (c.status, c.reason) for c in d.status.conditions or []}


def summaries(d: SessionDecision) -> dict[str, tuple[str | None, bool, str | None]]:
    """status.parts by part name: (phase, ready, reason)."""
    return {p.name: (p.phase, p.ready, p.reason) for p in d.status.parts or []}


# -- the precedence (docs/design.md §3) --------------------------------------------------------

A, R = st(Phase.AVAILABLE), st(Phase.RUNNING)


@pytest.mark.parametrize(
    ("states", "phase", "reason"),
    [
        # Nothing exists yet: a missing shared part is named first (a human must create it).
        ({}, SessionPhase.PREPARING, "WaitingForSharedPart"),
        ({"storage_shared": A}, SessionPhase.PREPARING, "CreatingParts"),
        (
            {"executable": st(Phase.FAILED, "ImageNotFound"), "compute": st(Phase.CANCELLED)},
            SessionPhase.FAILED,
            "DockerContainerFailed",
        ),
        (
            {"compute": st(Phase.CANCELLED), "data_cat": st(Phase.PREPARING)},
            SessionPhase.CANCELLED,
            "PartCancelled",
        ),
        (
            {"compute": st(Phase.RELEASING), "data_cat": st(Phase.PREPARING)},
            SessionPhase.PREPARING,
            "PreparingParts",
        ),
        ({"compute": st(Phase.WAITING)}, SessionPhase.PREPARING, "PreparingParts"),
        ({"compute": st(Phase.INITIALIZING)}, SessionPhase.PREPARING, "PreparingParts"),
        ({"compute": st(None)}, SessionPhase.PREPARING, "PreparingParts"),
        ({"compute": st(Phase.RELEASING)}, SessionPhase.RELEASING, "PartReleasing"),
        ({"compute": A}, SessionPhase.AVAILABLE, "SessionAvailable"),
        ({"compute": R}, SessionPhase.RUNNING, "SessionRunning"),
        (
            {"compute": st(Phase.COMPLETED), "storage_work": st(Phase.COMPLETED)},
            SessionPhase.COMPLETED,
            "SessionCompleted",
        ),
        ({"compute": st(Phase.COMPLETED)}, SessionPhase.COMPLETED, "SessionCompleted"),
        ({"compute": A, "storage_shared": st(Phase.COMPLETED)}, SessionPhase.FAILED, "PartEnded"),
        ({"compute": A, "storage_shared": None}, SessionPhase.PREPARING, "WaitingForSharedPart"),
        ({"compute": A, "data_cat": None}, SessionPhase.PREPARING, "CreatingParts"),
    ],
)
def test_precedence(states: dict[str, PartState | None], phase: SessionPhase, reason: str) -> None:
    default = None if set(states) <= {"storage_shared"} else A
    pairs = [(r, parts(default, **states)[(r.kind, r.name)]) for r in ALL]
    verdict = derive_session_verdict(pairs)
    assert (verdict.phase, verdict.reason) == (phase, reason)
    assert derive_session_phase(pairs) == phase


def test_failure_message_names_the_part_and_its_reason() -> None:
    failed = st(Phase.FAILED, "ImageNotFound", message="Skaha does not list image x")
    pairs = [(EXE, failed), (COMPUTE, st(Phase.FAILED, "DependencyFailed"))]
    assert derive_session_verdict(pairs).message == (
        "DockerContainer s1-executable failed: ImageNotFound: Skaha does not list image x "
        "(and Compute s1-compute)"
    )


# -- living: create, wait, prepare, use -----------------------------------------------------------


def test_new_session_creates_every_owned_part_never_a_shared_one() -> None:
    s = session()
    d = decide_session(s, obs(None, storage_shared=A), T)
    assert d.create == tuple(make_children(s))
    assert [b["metadata"]["name"] for b in d.create] == [r.name for r in OWNED]
    assert (d.status.phase, d.status.reason) == (SessionPhase.PREPARING, "CreatingParts")
    assert d.requeue_after == T.poll_base
    assert d.delete == ()
    assert d.events == ("Initializing->Preparing: CreatingParts",)
    assert conditions(d) == {
        "Ready": (ConditionStatus.FALSE, "CreatingParts"),
        "Reconciling": (ConditionStatus.TRUE, "CreatingParts"),
    }
    # Each part's state is in status.parts (no per-part conditions, docs/design.md §3).
    assert {p.name: (p.phase, p.ready, p.shared) for p in d.status.parts or []} == {
        r.name: ((Phase.AVAILABLE, True, True) if r.shared else (None, False, False)) for r in ALL
    }
    assert d.status.observed_generation == 4
    # The whole status is valid on the wire (condition types match the metav1 pattern).
    assert SessionStatus.model_validate(d.status.to_wire()) == d.status


def test_only_missing_owned_parts_are_created() -> None:
    d = decide_session(session(), obs(A, data_cat=None, compute=None), T)
    assert [b["kind"] for b in d.create] == ["Data", "Compute"]


@pytest.mark.parametrize(
    ("start", "default", "phase", "reason", "requeue"),
    [
        # Before the start: Waiting, woken at the start (parts prepare meanwhile).
        (
            "2030-01-01T12:10:00Z",
            st(Phase.PREPARING),
            SessionPhase.WAITING,
            "WaitingForStart",
            600.0,
        ),
        ("2030-01-01T12:10:00Z", A, SessionPhase.WAITING, "WaitingForStart", 600.0),
        # Parts still being created before the start: look again soon.
        ("2030-01-01T12:10:00Z", None, SessionPhase.WAITING, "WaitingForStart", T.poll_base),
        # After the start: Preparing, rechecked at most every dependency_recheck.
        (
            "2030-01-01T11:55:00Z",
            st(Phase.PREPARING),
            SessionPhase.PREPARING,
            "PreparingParts",
            T.dependency_recheck,
        ),
        # ... but never past the deadline (start + 20m = 12:00:02 here).
        (
            "2030-01-01T11:40:02Z",
            st(Phase.PREPARING),
            SessionPhase.PREPARING,
            "PreparingParts",
            2.0,
        ),
    ],
)
def test_schedule(
    start: str, default: PartState | None, phase: SessionPhase, reason: str, requeue: float
) -> None:
    compute = st(Phase.WAITING) if default is not None else None
    d = decide_session(session(start=start), obs(default, compute=compute), T)
    assert (d.status.phase, d.status.reason, d.requeue_after) == (phase, reason, requeue)
    assert condition_status(d.status.conditions, "Ready") is False


@pytest.mark.parametrize(
    ("compute", "phase", "reason"),
    [
        (Phase.AVAILABLE, SessionPhase.AVAILABLE, "SessionAvailable"),
        (Phase.RUNNING, SessionPhase.RUNNING, "SessionRunning"),
    ],
)
def test_usable_copies_the_connectors(compute: Phase, phase: SessionPhase, reason: str) -> None:
    conn = Connector(kind="notebook", protocol="https", url=URL)
    d = decide_session(session(), obs(A, compute=st(compute, connectors=(conn,))), T)
    assert (d.status.phase, d.status.reason) == (phase, reason)
    assert d.status.connectors == [conn]
    assert (d.create, d.delete, d.requeue_after) == ((), (), T.resync)
    assert condition_status(d.status.conditions, "Ready") is True
    assert condition_status(d.status.conditions, "Reconciling") is None  # absent once settled
    assert set(conditions(d)) == {"Ready"}
    by_part = {(str(p.kind), p.name): (p.phase, p.ready, p.shared) for p in d.status.parts or []}
    assert by_part[("Compute", "s1-compute")] == (compute, True, False)
    assert by_part[("Storage", "survey-inputs")] == (Phase.AVAILABLE, True, True)
    assert len(by_part) == 5


def test_missing_shared_part_is_a_wait_naming_it() -> None:
    d = decide_session(session(), obs(A, storage_shared=None, compute=st(Phase.PREPARING)), T)
    assert (d.status.phase, d.status.reason, d.status.message) == (
        SessionPhase.PREPARING,
        "WaitingForSharedPart",
        "waiting for shared Storage survey-inputs: not found",
    )
    assert d.create == ()  # a shared part is never created
    assert summaries(d)["survey-inputs"] == (None, False, None)


def test_a_stalled_part_stalls_the_session() -> None:
    d = decide_session(
        session(), obs(A, compute=st(Phase.PREPARING, "LaunchLost", stalled=True)), T
    )
    assert condition_status(d.status.conditions, "Stalled") is True
    assert summaries(d)["s1-compute"] == (Phase.PREPARING, False, "LaunchLost")


# -- ending: deadline, failure, completion, cancel; owned parts released in order -----------------


def run_release(
    s: Session, state: dict[tuple[str, str], PartState | None], now: datetime
) -> list[Any]:
    """Decide until terminal, removing what each decision deletes; the (phase, deletes) trail."""
    trail: list[Any] = []
    for _ in range(10):
        d = decide_session(s, SessionObservation(now=now, parts=dict(state)), T)
        trail.append((d.status.phase, d.status.reason, tuple(r.name for r in d.delete)))
        assert all(not r.shared for r in d.delete)
        assert d.create == ()
        if d.status.phase in {SessionPhase.RELEASING}:
            assert d.requeue_after == T.poll_base
            assert d.status.connectors is None
        for r in d.delete:
            state[(r.kind, r.name)] = None
        s = s.model_copy(update={"status": d.status})
        if d.requeue_after is None:
            return trail
    raise AssertionError(f"no terminal phase: {trail}")


RELEASE_ORDER = [("s1-compute",), ("s1-executable", "s1-data-cat"), ("s1-storage-work",), ()]


@pytest.mark.parametrize(
    ("label", "cancel", "now", "states", "reason", "final"),
    [
        ("cancel", True, NOW, {"compute": A}, "Cancelled", SessionPhase.CANCELLED),
        (
            "deadline",
            False,
            NOW + timedelta(minutes=16),
            {"compute": st(Phase.PREPARING)},
            "PrepareDeadlineExceeded",
            SessionPhase.EXPIRED,
        ),
        (
            "compute failed at its deadline",
            False,
            NOW + timedelta(minutes=16),
            {"compute": st(Phase.FAILED, "PrepareDeadlineExceeded")},
            "PrepareDeadlineExceeded",
            SessionPhase.EXPIRED,
        ),
        (
            "compute releasing at its deadline",
            False,
            NOW + timedelta(minutes=16),
            {"compute": st(Phase.RELEASING, "PrepareDeadlineExceeded")},
            "PrepareDeadlineExceeded",
            SessionPhase.EXPIRED,
        ),
        (
            "shared part never came",
            False,
            NOW + timedelta(minutes=16),
            {"storage_shared": None, "compute": st(Phase.PREPARING)},
            "SharedPartMissing",
            SessionPhase.FAILED,
        ),
        (
            "image failed",
            False,
            NOW,
            {
                "executable": st(Phase.FAILED, "ImageNotFound"),
                "compute": st(Phase.FAILED, "DependencyFailed"),
            },
            "DockerContainerFailed",
            SessionPhase.FAILED,
        ),
        (
            "compute failed after the deadline",
            False,
            NOW + timedelta(minutes=16),
            {"compute": st(Phase.FAILED, "SessionFailed")},
            "ComputeFailed",
            SessionPhase.FAILED,
        ),
        (
            "job completed",
            False,
            NOW,
            {"compute": st(Phase.COMPLETED, "SessionCompleted")},
            "SessionCompleted",
            SessionPhase.COMPLETED,
        ),
        (
            "job completed after the deadline",
            False,
            NOW + timedelta(minutes=16),
            {"compute": st(Phase.COMPLETED)},
            "SessionCompleted",
            SessionPhase.COMPLETED,
        ),
        (
            "part cancelled",
            False,
            NOW,
            {"data_cat": st(Phase.CANCELLED)},
            "PartCancelled",
            SessionPhase.CANCELLED,
        ),
    ],
)
def test_ending_releases_owned_parts_in_order(
    label: str,
    cancel: bool,
    now: datetime,
    states: dict[str, PartState | None],
    reason: str,
    final: SessionPhase,
) -> None:
    s = session(
        {"phase": "Preparing", "phaseTimes": {"Preparing": "2030-01-01T11:55:00Z"}}, cancel=cancel
    )
    trail = run_release(s, parts(A, **states), now)
    assert trail == [
        *[(SessionPhase.RELEASING, reason, names) for names in RELEASE_ORDER[:-1]],
        (final, reason, ()),
    ], label


def test_deadline_does_not_expire_a_session_that_was_usable() -> None:
    s = session({"phase": "Available", "phaseTimes": {"Available": "2030-01-01T11:56:00Z"}})
    later = NOW + timedelta(minutes=30)
    d = decide_session(s, obs(A, now=later, compute=st(Phase.PREPARING)), T)
    # Neither Expired nor stepped down: a live Session never leaves Available for Preparing.
    assert (d.status.phase, d.delete) == (SessionPhase.AVAILABLE, ())
    assert d.events == ()


@pytest.mark.parametrize(
    ("was", "reason", "view"),
    [
        (SessionPhase.AVAILABLE, "SessionAvailable", st(Phase.PREPARING, "SessionPending")),
        (SessionPhase.AVAILABLE, "SessionAvailable", st(Phase.INITIALIZING)),
        (SessionPhase.AVAILABLE, "SessionAvailable", st(None)),
        (SessionPhase.RUNNING, "SessionRunning", st(Phase.PREPARING)),
    ],
)
def test_a_stale_part_view_never_steps_a_live_session_down(
    was: SessionPhase, reason: str, view: PartState
) -> None:
    # A lagging cache or another operator shows a part lower than the Session has seen it.
    status = {"phase": was, "reason": reason, "message": "m", "phaseTimes": {was: NOW}}
    d = decide_session(session(status), obs(A, compute=view), T)
    assert (d.status.phase, d.status.reason, d.status.message) == (was, reason, "m")
    assert (d.create, d.delete, d.events) == ((), (), ())
    assert d.requeue_after == T.poll_base  # look again soon: the view catches up


def test_a_session_moves_up_again_once_the_view_catches_up() -> None:
    status = {"phase": "Available", "reason": "SessionAvailable", "phaseTimes": {"Available": NOW}}
    d = decide_session(session(status), obs(A, compute=R), T)
    assert (d.status.phase, d.status.reason) == (SessionPhase.RUNNING, "SessionRunning")


def test_release_resumes_from_the_status_reason() -> None:
    # A restart in Releasing: the reason says how it ends, whatever the parts now show.
    was = {"kind": "Compute", "name": "s1-compute", "phase": "Running", "ready": True}
    s = session({"phase": "Releasing", "reason": "Cancelled", "message": "cx", "parts": [was]})
    d = decide_session(s, obs(None, storage_shared=A), T)
    assert (d.status.phase, d.status.reason, d.delete) == (SessionPhase.CANCELLED, "Cancelled", ())
    assert d.requeue_after is None
    assert d.events == ("Releasing->Cancelled: Cancelled",)
    assert summaries(d)["s1-compute"] == (None, False, "Released")


def test_a_releasing_part_is_not_an_ending() -> None:
    s = session({"phase": "Releasing", "reason": "PartReleasing"})
    d = decide_session(s, obs(A), T)
    # Nothing is deleted (no ending); a stale Available view does not step it down the ladder.
    assert (d.status.phase, d.status.reason, d.delete) == (
        SessionPhase.RELEASING,
        "PartReleasing",
        (),
    )
    # Once the part has finished releasing, the Session ends the way the part did.
    d = decide_session(s, obs(A, compute=st(Phase.COMPLETED)), T)
    assert (d.status.phase, d.status.reason) == (SessionPhase.RELEASING, "SessionCompleted")
    assert [r.kind for r in d.delete] == ["Compute"]


@pytest.mark.parametrize(
    "phase",
    [SessionPhase.COMPLETED, SessionPhase.FAILED, SessionPhase.CANCELLED, SessionPhase.EXPIRED],
)
def test_terminal_phases_never_change(phase: SessionPhase) -> None:
    s = session({"phase": phase, "reason": "X"}, cancel=True)
    d = decide_session(s, obs(A, compute=st(Phase.FAILED)), T)
    assert d == SessionDecision(status=s.status or SessionStatus())


# -- deletion (finalizer) --------------------------------------------------------------------------


def test_deletion_releases_owned_parts_and_then_lets_go() -> None:
    s = session({"phase": "Available", "phaseTimes": {"Available": "2030-01-01T11:56:00Z"}})
    state = parts(A)
    trail = []
    for _ in range(5):
        d = decide_session_deletion(s, SessionObservation(now=NOW, parts=dict(state)))
        trail.append(
            (d.status.phase, d.status.reason, tuple(r.name for r in d.delete), d.requeue_after)
        )
        for r in d.delete:
            state[(r.kind, r.name)] = None
        if d.requeue_after is None:
            break
    assert trail == [
        (SessionPhase.RELEASING, "Deleting", ("s1-compute",), T.poll_base),
        (SessionPhase.RELEASING, "Deleting", ("s1-executable", "s1-data-cat"), T.poll_base),
        (SessionPhase.RELEASING, "Deleting", ("s1-storage-work",), T.poll_base),
        (SessionPhase.RELEASING, "Deleting", (), None),
    ]
    assert state[("Storage", "survey-inputs")] == A  # shared: never deleted


def test_deletion_through_decide_session_and_of_a_terminal_session() -> None:
    s = session({"phase": "Failed", "reason": "ComputeFailed"})
    o = SessionObservation(now=NOW, parts=parts(A), deleting=True)
    d = decide_session(s, o, T)
    assert d.status == s.status
    assert [r.name for r in d.delete] == ["s1-compute"]
    assert d.requeue_after == T.poll_base
    gone = decide_session(s, SessionObservation(now=NOW, parts=parts(None), deleting=True), T)
    assert (gone.delete, gone.requeue_after) == ((), None)


@pytest.mark.parametrize(
    ("old", "new", "legal"),
    [
        (SessionPhase.INITIALIZING, SessionPhase.WAITING, True),
        (SessionPhase.AVAILABLE, SessionPhase.PREPARING, True),
        (SessionPhase.RELEASING, SessionPhase.EXPIRED, True),
        (SessionPhase.EXPIRED, SessionPhase.RELEASING, False),
        (SessionPhase.CANCELLED, SessionPhase.AVAILABLE, False),
    ],
)
def test_session_transition_table(old: SessionPhase, new: SessionPhase, legal: bool) -> None:
    if legal:
        check_transition(SESSION_TRANSITIONS, old, new)
    else:
        with pytest.raises(IllegalTransition):
            check_transition(SESSION_TRANSITIONS, old, new)


def test_a_deleting_session_never_recreates_parts() -> None:
    # Once deletion began, a decision without the deleting flag still only releases.
    s = session({"phase": "Releasing", "reason": "Deleting"})
    d = decide_session(s, obs(None, storage_shared=A, storage_work=A), T)
    assert d.create == ()
    assert [r.name for r in d.delete] == ["s1-storage-work"]
    assert (d.status.phase, d.status.reason) == (SessionPhase.RELEASING, "Deleting")


def test_expiry_message_says_what_the_session_was_waiting_for() -> None:
    """The Compute's own message (platform and its reason) carries into the expiry."""
    waiting = st(
        Phase.PREPARING,
        "WaitingForDependencies",
        message="waiting for SkahaPlatform local (Unauthorized)",
        stalled=True,
    )
    d = decide_session(session(), obs(A, NOW + timedelta(minutes=16), compute=waiting), T)
    assert d.status.reason == "PrepareDeadlineExceeded"
    assert d.status.message is not None
    assert d.status.message.endswith(
        "Compute s1-compute (Preparing: WaitingForDependencies: "
        "waiting for SkahaPlatform local (Unauthorized))"
    )


# -- a finished Session's parts: their final state, never a stale live one ------------------------


def test_a_cancelled_session_does_not_list_its_deleted_compute_as_available() -> None:
    s = session(
        {"phase": "Available", "phaseTimes": {"Available": "2030-01-01T11:56:00Z"}}, cancel=True
    )
    state = parts(A)
    state[("Compute", "s1-compute")] = st(Phase.AVAILABLE)
    first = decide_session(s, SessionObservation(now=NOW, parts=dict(state)), T)
    summaries = {p.name: p for p in first.status.parts or []}
    assert summaries["s1-compute"].phase == Phase.AVAILABLE  # seen live before its release
    state = parts(A)
    for name in ("s1-compute", "s1-executable", "s1-data-cat", "s1-storage-work"):
        kind = next(r.kind for r in ALL if r.name == name)
        state[(kind, name)] = None
    s = s.model_copy(update={"status": first.status})
    last = decide_session(s, SessionObservation(now=NOW, parts=state), T)
    assert last.status.phase == SessionPhase.CANCELLED
    got = {p.name: (p.phase, p.ready, p.reason) for p in last.status.parts or []}
    assert got["s1-compute"] == (None, False, "Released")
    for name in ("s1-executable", "s1-data-cat", "s1-storage-work"):
        assert got[name] == (None, False, "Released"), name
    # A shared part is never released by the Session: it shows what it is now.
    assert got["survey-inputs"] == (Phase.AVAILABLE, True, None)
    owned = [x for x in last.status.parts or [] if not x.shared]
    assert all(x.phase != Phase.AVAILABLE for x in owned)


def test_a_part_that_ended_keeps_its_final_phase_after_release() -> None:
    s = session({"phase": "Preparing", "phaseTimes": {"Preparing": "2030-01-01T11:55:00Z"}})
    state = parts(A, executable=st(Phase.FAILED, "ImageNotFound"), compute=st(Phase.PREPARING))
    trail = run_release(s, state, NOW)
    assert trail[-1][0] == SessionPhase.FAILED
    s2 = s.model_copy(update={"status": decide_session(s, obs(A, executable=st(
        Phase.FAILED, "ImageNotFound"), compute=st(Phase.PREPARING)), T).status})  # fmt: skip
    gone = decide_session(s2, obs(None, storage_shared=A), T)
    got = {p.name: (p.phase, p.reason) for p in gone.status.parts or []}
    assert got["s1-executable"] == (Phase.FAILED, "ImageNotFound")


def test_a_completed_session_message_names_the_skaha_session_once() -> None:
    done = st(Phase.COMPLETED, "SessionCompleted", message="Skaha session abc123 completed")
    verdict = derive_session_verdict([(r, done if r is COMPUTE else A) for r in ALL])
    assert verdict.message == "Skaha session abc123 completed"
    bare = derive_session_verdict([(r, st(Phase.COMPLETED) if r is COMPUTE else A) for r in ALL])
    assert bare.message == "the Skaha session completed"
