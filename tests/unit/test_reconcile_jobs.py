"""job_step / job_release, table-driven: the launch protocol with per-attempt names, both eras of
Skaha status, bounded retries, a job removed before its outcome was seen, release."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from skaha_operator.domain.common import Phase
from skaha_operator.domain.data import DataStatus
from skaha_operator.domain.launch import Launch
from skaha_operator.reconcile.jobs import (
    PREPARE_TRANSITIONS,
    JobOutcome,
    JobStep,
    job_policy,
    job_release,
    job_step,
    make_job_name,
    with_phase,
)
from skaha_operator.reconcile.launch import AMBIGUOUS_LAUNCH, LAUNCH_LOST, LaunchView, Next, Seen
from skaha_operator.reconcile.timing import Timing
from skaha_operator.reconcile.transitions import IllegalTransition, check_transition

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
T = Timing(adopt_grace=90.0, max_job_attempts=2)
UID = "0b7c5a4e-1111-2222-3333-444455556666"
NAME1 = make_job_name("dl", UID, 1)
NAME2 = make_job_name("dl", UID, 2)


def step(job: Launch | None, view: LaunchView | None = None, detail: str | None = None) -> JobStep:
    return job_step(
        job,
        view or LaunchView(),
        detail,
        NOW,
        T,
        tag="dl",
        uid=UID,
        what="download",
        failure_reason="DownloadFailed",
    )


def pending(seconds_ago: float = 10, attempts: int = 1, **extra: Any) -> Launch:
    return Launch(
        name=make_job_name("dl", UID, attempts),
        pending_since=NOW - timedelta(seconds=seconds_ago),
        attempts=attempts,
        **extra,
    )


def by_id(status: str, sid: str = "abc12345") -> LaunchView:
    return LaunchView(by_id=Seen(sid, NAME1, state=status))


def test_job_names_are_derived_from_uid_and_attempt_and_valid_for_skaha() -> None:
    assert NAME1 == "skop-dl-0b7c5a4e111122223333444455556666-1"
    assert NAME2.endswith("-2")
    assert len(NAME1) <= 63
    policy = job_policy(T, tag="dl", uid=UID, what="download")
    assert (policy.name(1), policy.name(2), policy.what) == (NAME1, NAME2, "download job")
    assert (policy.per_attempt_names, policy.lost_fails, policy.max_attempts) == (True, True, 2)


def test_no_marker_launches_attempt_one_writing_the_marker() -> None:
    s = step(None)
    assert (s.outcome, s.name) == (JobOutcome.LAUNCH, NAME1)
    assert s.launch == Launch(name=NAME1, pending_since=NOW, attempts=1)


@pytest.mark.parametrize(
    ("waited", "listed", "outcome", "reason"),
    [
        (10, None, JobOutcome.WAIT, "LaunchPending"),  # not listed: no evidence either way
        (10, (), JobOutcome.WAIT, "LaunchPending"),  # inside the grace period
        (10, (("abc12345", NAME1),), JobOutcome.WAIT, "Adopted"),
        (10, (("abc12345", NAME1), ("def67890", NAME1)), JobOutcome.STALLED, AMBIGUOUS_LAUNCH),
        (200, (), JobOutcome.LAUNCH, "Launching"),  # lost: attempt 2 under a new name
    ],
)
def test_a_marker_without_an_id_is_adopted_by_name(
    waited: float, listed: tuple[tuple[str, str], ...] | None, outcome: JobOutcome, reason: str
) -> None:
    seen = None if listed is None else tuple(Seen(i, n, state="Running") for i, n in listed)
    s = step(pending(waited), LaunchView(listed=seen))
    assert (s.outcome, s.reason) == (outcome, reason)
    if reason == "Adopted":
        assert (s.launch.id, s.launch.observed, s.requeue) == ("abc12345", "Running", 0.0)
    if outcome == JobOutcome.LAUNCH:
        assert (s.name, s.launch.name, s.launch.attempts) == (NAME2, NAME2, 2)


def test_a_lost_launch_at_the_attempt_limit_fails() -> None:
    s = step(pending(200, attempts=2), LaunchView(listed=()))
    assert (s.outcome, s.reason) == (JobOutcome.FAILED, LAUNCH_LOST)


@pytest.mark.parametrize(
    ("skaha", "outcome", "reason"),
    [
        ("Pending", JobOutcome.WAIT, "JobRunning"),
        ("Running", JobOutcome.WAIT, "JobRunning"),
        ("Terminating", JobOutcome.WAIT, "JobRunning"),
        ("Completed", JobOutcome.DONE, "JobCompleted"),
        # the pod-phase era (docs/platform-api.md §3)
        ("Succeeded", JobOutcome.DONE, "JobCompleted"),
        ("Failed", JobOutcome.LAUNCH, "Launching"),  # one retry left
        ("Error", JobOutcome.LAUNCH, "Launching"),
    ],
)
def test_skaha_statuses_of_a_known_job(skaha: str, outcome: JobOutcome, reason: str) -> None:
    s = step(pending(id="abc12345"), by_id(skaha), "curl: (22) 404")
    assert (s.outcome, s.reason) == (outcome, reason)
    if outcome == JobOutcome.LAUNCH:
        assert "curl: (22) 404" in s.message  # why it is retried
        assert (s.launch.attempts, s.launch.id, s.name) == (2, None, NAME2)
    else:
        assert s.launch.observed == skaha  # every step records what was seen


def test_the_last_failure_carries_the_log_tail_and_the_reason() -> None:
    detail = "sha256sum: WARNING: 1 computed checksum"
    s = step(pending(attempts=2, id="abc12345"), by_id("Failed"), detail)
    assert (s.outcome, s.reason) == (JobOutcome.FAILED, "DownloadFailed")
    assert s.message.endswith(f"(attempt 2 of 2): {detail}")
    assert s.launch.observed == "Failed"


@pytest.mark.parametrize(
    ("last", "attempts", "outcome", "reason", "says"),
    [
        # attempts remain: relaunch, saying the outcome was not observed
        ("Running", 1, JobOutcome.LAUNCH, "Launching", "outcome was not observed"),
        ("Pending", 1, JobOutcome.LAUNCH, "Launching", "outcome was not observed"),
        (None, 1, JobOutcome.LAUNCH, "Launching", "disappeared"),
        # none remain: an unknown outcome is not reported as a failure of the job
        ("Running", 2, JobOutcome.FAILED, "OutcomeNotObserved", "was not observed"),
        ("Pending", 2, JobOutcome.FAILED, "OutcomeNotObserved", "was not observed"),
        (None, 2, JobOutcome.FAILED, "JobVanished", "disappeared"),
    ],
)
def test_a_job_gone_before_its_outcome_was_seen(
    last: str | None, attempts: int, outcome: JobOutcome, reason: str, says: str
) -> None:
    s = step(pending(attempts=attempts, id="abc12345", observed=last), LaunchView(gone=True))
    assert (s.outcome, s.reason) == (outcome, reason)
    assert says in s.message
    if outcome == JobOutcome.FAILED:
        assert "failed" not in s.message
        assert s.launch.observed == "Gone"


def test_an_id_not_looked_up_is_polled() -> None:
    s = step(pending(id="abc12345", observed="Running"))
    assert (s.outcome, s.reason, s.requeue) == (JobOutcome.WAIT, "Polling", T.poll_base)
    assert s.launch.observed == "Running"


def test_polling_backs_off_with_the_time_since_launch() -> None:
    early = step(pending(2, id="a"), by_id("Running", "a"))
    late = step(pending(40, id="a"), by_id("Running", "a"))
    assert early.requeue == T.poll_base
    assert late.requeue == 20.0


def test_a_late_attempt_is_swept_once_after_the_grace() -> None:
    view = LaunchView(
        listed=(Seen("j1", NAME1, "Running"), Seen("j2", NAME2, "Running")),
        by_id=Seen("j2", NAME2, "Running"),
    )
    s = step(pending(200, attempts=2, id="j2"), view)
    assert (s.outcome, s.delete, s.launch.swept_at) == (JobOutcome.WAIT, ("j1",), NOW)
    done = step(pending(200, attempts=2, id="j2"), LaunchView(listed=view.listed,
                by_id=Seen("j2", NAME2, "Completed")))  # fmt: skip
    assert (done.outcome, done.delete) == (JobOutcome.DONE, ("j1",))


@pytest.mark.parametrize(
    ("job", "view", "nxt", "delete"),
    [
        (None, LaunchView(), Next.RELEASED, ()),
        (pending(200, attempts=2, id="j2"),
         LaunchView(listed=(Seen("j1", NAME1, "Running"), Seen("j2", NAME2, "Running"))),
         Next.WAIT, ("j1", "j2")),
        (pending(10), LaunchView(listed=()), Next.WAIT, ()),  # may still commit
        (pending(200, id="j1"), LaunchView(listed=()), Next.RELEASED, ()),
    ],
)  # fmt: skip
def test_job_release_deletes_every_attempt_and_waits_through_the_grace(
    job: Launch | None, view: LaunchView, nxt: Next, delete: tuple[str, ...]
) -> None:
    s = job_release(job, view, NOW, T, tag="dl", uid=UID, what="download")
    assert (s.next, s.delete) == (nxt, delete)


def test_prepare_transitions_keep_terminal_phases_and_allow_no_step_back() -> None:
    check_transition(PREPARE_TRANSITIONS, Phase.PREPARING, Phase.AVAILABLE)
    for old in (Phase.INITIALIZING, Phase.PREPARING, Phase.AVAILABLE):
        check_transition(PREPARE_TRANSITIONS, old, Phase.RELEASING)
    for old, new in [
        (Phase.AVAILABLE, Phase.PREPARING),
        (Phase.FAILED, Phase.PREPARING),
        (Phase.FAILED, Phase.RELEASING),
        (Phase.COMPLETED, Phase.AVAILABLE),
        (Phase.RELEASING, Phase.AVAILABLE),
    ]:
        with pytest.raises(IllegalTransition):
            check_transition(PREPARE_TRANSITIONS, old, new)


def test_with_phase_sets_conditions_times_and_one_event() -> None:
    new, events = with_phase(DataStatus(), Phase.FAILED, "DownloadFailed", "boom", NOW, 4)
    assert (new.phase, new.reason, new.observed_generation) == (Phase.FAILED, "DownloadFailed", 4)
    assert new.phase_times == {Phase.FAILED: NOW}
    assert {c.type: c.status for c in new.conditions or []} == {
        "Ready": "False",
        "Stalled": "True",  # Reconciling is absent: it is there only while True
    }
    assert events == ("Initializing->Failed: DownloadFailed",)
