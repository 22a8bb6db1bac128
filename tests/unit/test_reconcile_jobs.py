"""step_job, table-driven: marker, adoption by name, both eras of Skaha status, bounded retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from skaha_operator.domain.common import Phase
from skaha_operator.domain.data import DataStatus
from skaha_operator.reconcile.jobs import (
    PREPARE_TRANSITIONS,
    JobOutcome,
    JobView,
    make_job_name,
    step_job,
    with_phase,
)
from skaha_operator.reconcile.timing import Timing
from skaha_operator.reconcile.transitions import IllegalTransition, check_transition

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
T = Timing(adopt_grace=90.0, max_job_attempts=2)
UID = "0b7c5a4e-1111-2222-3333-444455556666"
NAME1 = make_job_name("dl", UID, 1)


def job(**fields: Any) -> DataStatus:
    return DataStatus.model_validate(fields)


def step(status: DataStatus, view: JobView | None) -> Any:
    return step_job(
        status, view, NOW, T, tag="dl", uid=UID, what="download", failure_reason="DownloadFailed"
    )


def pending(seconds_ago: float = 10, **extra: Any) -> DataStatus:
    since = (NOW - timedelta(seconds=seconds_ago)).isoformat()
    return job(jobSessionName=NAME1, jobPendingSince=since, jobAttempts=1, **extra)


def test_job_names_are_derived_from_uid_and_attempt_and_valid_for_skaha() -> None:
    assert NAME1 == "skop-dl-0b7c5a4e111122223333444455556666-1"
    assert make_job_name("dl", UID, 2).endswith("-2")
    assert len(NAME1) <= 63


def test_no_marker_launches_attempt_one_writing_the_marker() -> None:
    s = step(job(), None)
    assert (s.outcome, s.name) == (JobOutcome.LAUNCH, NAME1)
    assert s.changes["job_pending_since"] == NOW
    assert s.changes["job_attempts"] == 1
    assert s.changes["job_session_id"] == ""  # cleared explicitly (the write only adds)


@pytest.mark.parametrize(
    ("waited", "candidates", "outcome", "reason"),
    [
        (10, None, JobOutcome.WAIT, "JobPending"),  # not listed: no evidence either way
        (10, (), JobOutcome.WAIT, "JobPending"),  # inside the grace period
        (10, ("abc12345",), JobOutcome.WAIT, "JobAdopted"),
        (10, ("abc12345", "def67890"), JobOutcome.STALLED, "AmbiguousLaunch"),
        (200, (), JobOutcome.LAUNCH, "LaunchingJob"),  # lost: attempt 2 under a new name
    ],
)
def test_a_marker_without_an_id_is_adopted_by_name(
    waited: float, candidates: tuple[str, ...] | None, outcome: JobOutcome, reason: str
) -> None:
    s = step(pending(waited), JobView(candidates=candidates))
    assert (s.outcome, s.reason) == (outcome, reason)
    if reason == "JobAdopted":
        assert s.changes == {"job_session_id": "abc12345"}
    if outcome == JobOutcome.LAUNCH:
        assert s.name == make_job_name("dl", UID, 2)


def test_a_lost_launch_at_the_attempt_limit_fails() -> None:
    status = pending(200).model_copy(update={"job_attempts": 2})
    s = step(status, JobView(candidates=()))
    assert (s.outcome, s.reason) == (JobOutcome.FAILED, "LaunchLost")


@pytest.mark.parametrize(
    ("skaha", "outcome", "reason"),
    [
        ("Pending", JobOutcome.WAIT, "JobRunning"),
        ("Running", JobOutcome.WAIT, "JobRunning"),
        ("Terminating", JobOutcome.WAIT, "JobRunning"),
        ("Completed", JobOutcome.DONE, "JobCompleted"),
        # the pod-phase era (docs/platform-api.md §3)
        ("Succeeded", JobOutcome.DONE, "JobCompleted"),
        ("Failed", JobOutcome.LAUNCH, "LaunchingJob"),  # one retry left
        ("Error", JobOutcome.LAUNCH, "LaunchingJob"),
    ],
)
def test_skaha_statuses_of_a_known_job(skaha: str, outcome: JobOutcome, reason: str) -> None:
    s = step(pending(jobSessionId="abc12345"), JobView(status=skaha, detail="curl: (22) 404"))
    assert (s.outcome, s.reason) == (outcome, reason)
    if outcome == JobOutcome.LAUNCH:
        assert "curl: (22) 404" in s.message  # why it is retried
        assert s.changes["job_attempts"] == 2


def test_the_last_failure_carries_the_log_tail_and_the_reason() -> None:
    status = pending(jobSessionId="abc12345").model_copy(update={"job_attempts": 2})
    s = step(status, JobView(status="Failed", detail="sha256sum: WARNING: 1 computed checksum"))
    assert (s.outcome, s.reason) == (JobOutcome.FAILED, "DownloadFailed")
    assert s.message.endswith("(attempt 2 of 2): sha256sum: WARNING: 1 computed checksum")
    assert s.changes == {"job_status": "Failed"}


def test_a_job_that_vanished_is_relaunched_then_fails() -> None:
    s = step(pending(jobSessionId="abc12345"), JobView(gone=True))
    assert s.outcome == JobOutcome.LAUNCH
    last = pending(jobSessionId="abc12345").model_copy(update={"job_attempts": 2})
    assert step(last, JobView(gone=True)).reason == "JobVanished"


def test_polling_backs_off_with_the_time_since_launch() -> None:
    early = step(pending(2, jobSessionId="a"), JobView(status="Running"))
    late = step(pending(40, jobSessionId="a"), JobView(status="Running"))
    assert early.requeue == T.poll_base
    assert late.requeue == 20.0


def test_prepare_transitions_keep_terminal_phases_and_allow_no_step_back() -> None:
    check_transition(PREPARE_TRANSITIONS, Phase.PREPARING, Phase.AVAILABLE)
    for old, new in [
        (Phase.AVAILABLE, Phase.PREPARING),
        (Phase.FAILED, Phase.PREPARING),
        (Phase.COMPLETED, Phase.AVAILABLE),
    ]:
        with pytest.raises(IllegalTransition):
            check_transition(PREPARE_TRANSITIONS, old, new)


def test_with_phase_sets_conditions_times_and_one_event() -> None:
    new, events = with_phase(DataStatus(), Phase.FAILED, "DownloadFailed", "boom", NOW, 4)
    assert (new.phase, new.reason, new.observed_generation) == (Phase.FAILED, "DownloadFailed", 4)
    assert new.phase_times == {Phase.FAILED: NOW}
    assert {c.type: c.status for c in new.conditions or []} == {
        "Ready": "False",
        "Reconciling": "False",
        "Stalled": "True",
    }
    assert events == ("Initializing->Failed: DownloadFailed",)
