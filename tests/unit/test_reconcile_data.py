"""decide_data, table-driven: dependencies, the download job, the Rucio rule, SRCNet staging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from skaha_operator.domain.common import Phase
from skaha_operator.domain.data import Data
from skaha_operator.reconcile.data import (
    DEFAULT_DOWNLOADER_IMAGE,
    DataDecision,
    DataObservation,
    RulePlan,
    StorageView,
    data_path,
    decide_data,
    rule_deadline,
    rule_policy,
)
from skaha_operator.reconcile.jobs import JOB_ARGS, JOB_CMD, make_job_name
from skaha_operator.reconcile.launch import AMBIGUOUS_LAUNCH, LaunchView, Seen
from skaha_operator.reconcile.timing import Timing

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
T = Timing()
UID = "0b7c5a4e-1111-2222-3333-444455556666"
URL = "https://example.org/data/cat.fits"
SUM = "sha256:" + "a" * 64
STORAGE = StorageView("work", Phase.AVAILABLE, "/arc/home/alice/w")
RUCIO = {"did": "user.alice:obs-1", "rseExpression": "SRCNET_LOCAL", "lifetime": "2h"}


def make(source: dict[str, Any], status: dict[str, Any] | None = None, **spec: Any) -> Data:
    return Data.model_validate(
        {
            "metadata": {
                "name": "d",
                "namespace": "ns",
                "uid": UID,
                "generation": 1,
                "creationTimestamp": "2030-01-01T11:59:00Z",
            },
            "spec": {"platformRef": "local", "storageRef": "work", **source, **spec},
            "status": status,
        }
    )


def http(checksum: str | None = SUM) -> dict[str, Any]:
    return {"http": {"url": URL, **({"checksum": checksum} if checksum else {})}}


def obs(**kw: Any) -> DataObservation:
    base: dict[str, Any] = {"now": NOW, "platform_ready": True, "storage": STORAGE}
    return DataObservation(**(base | kw))


def decide(data: Data, observation: DataObservation) -> DataDecision:
    return decide_data(data, observation, T, DEFAULT_DOWNLOADER_IMAGE)


def acts(d: DataDecision) -> bool:
    return bool(d.job or d.rule or d.delete_jobs or d.delete_rule or d.delete_tree)


def conditions(d: DataDecision) -> dict[str, str]:
    return {c.type: c.status for c in d.status.conditions or []}


def job_view(status: str, sid: str = "abc12345") -> LaunchView:
    return LaunchView(by_id=Seen(sid, make_job_name("dl", UID, 1), state=status))


@pytest.mark.parametrize(
    ("kw", "phase", "reason"),
    [
        ({"platform_ready": False, "platform_reason": "NotYetProbed"}, Phase.PREPARING,
         "WaitingForPlatform"),
        ({"storage": None}, Phase.PREPARING, "WaitingForStorage"),
        ({"storage": StorageView("work", Phase.PREPARING, None)}, Phase.PREPARING,
         "WaitingForStorage"),
        ({"storage": StorageView("work", Phase.FAILED, None, "CavernRejected")}, Phase.FAILED,
         "StorageFailed"),
    ],
)  # fmt: skip
def test_data_waits_for_platform_and_storage(kw: dict[str, Any], phase: Phase, reason: str) -> None:
    d = decide(make(http()), obs(**kw))
    assert (d.status.phase, d.status.reason, acts(d)) == (phase, reason, False)
    if phase == Phase.FAILED:
        assert d.status.message == "Storage work is Failed (CavernRejected)"


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"http": {"url": URL}}, "cat.fits"),
        ({"http": {"url": "https://h/x/"}}, "download"),
        ({"http": {"url": URL}, "path": "in/c.fits"}, "in/c.fits"),
        ({"rucio": RUCIO}, "obs-1"),
    ],
)
def test_data_path(spec: dict[str, Any], path: str) -> None:
    assert data_path(make(spec)) == path


def test_http_launches_a_download_job_into_the_storage_path() -> None:
    d = decide(make(http()), obs())
    assert d.status.phase == Phase.PREPARING
    assert d.status.job is not None
    assert d.status.job.pending_since == NOW  # the marker goes with the launch decision
    assert d.status.location == "/arc/home/alice/w/cat.fits"
    job = d.job
    assert job is not None
    assert (job.name, job.image, job.cmd, job.args) == (
        make_job_name("dl", UID, 1),
        DEFAULT_DOWNLOADER_IMAGE,
        JOB_CMD,
        JOB_ARGS,
    )
    assert {k: v for k, v in job.env.items() if k != "SKOP_SCRIPT"} == {
        "SKOP_JOB": "download",
        "SKOP_URL": URL,
        "SKOP_DEST": "/arc/home/alice/w/cat.fits",
        "SKOP_CHECKSUM": SUM,
    }
    assert "sha256sum -c" in job.env["SKOP_SCRIPT"]


def launched(phase: str = "Preparing", attempts: int = 1, **job: Any) -> dict[str, Any]:
    return {
        "phase": phase,
        "location": "/arc/home/alice/w/cat.fits",
        "job": {
            "name": make_job_name("dl", UID, attempts),
            "pendingSince": "2030-01-01T11:59:30Z",
            "attempts": attempts,
            "id": "abc12345",
            **job,
        },
    }


@pytest.mark.parametrize(
    ("checksum", "verified", "message"),
    [
        (SUM, True, "downloaded to /arc/home/alice/w/cat.fits (checksum verified)"),
        (None, None, "downloaded to /arc/home/alice/w/cat.fits"),
    ],
)
def test_a_completed_job_makes_the_data_available(
    checksum: str | None, verified: bool | None, message: str
) -> None:
    d = decide(make(http(checksum), launched()), obs(job=job_view("Completed")))
    assert (d.status.phase, d.status.reason, d.status.message) == (
        Phase.AVAILABLE,
        "Downloaded",
        message,
    )
    assert d.status.checksum_verified is verified


def test_the_last_failed_job_fails_the_data_with_its_log_tail() -> None:
    data = make(http(), launched(attempts=2))
    d = decide(data, obs(job=job_view("Failed"), job_detail="curl: (22) ... error: 404"))
    assert (d.status.phase, d.status.reason) == (Phase.FAILED, "DownloadFailed")
    assert d.status.message is not None
    assert d.status.message.endswith("curl: (22) ... error: 404")
    assert conditions(d) == {"Ready": "False", "Stalled": "True"}


def test_a_failed_job_with_a_retry_left_is_relaunched_under_the_next_name() -> None:
    d = decide(make(http(), launched()), obs(job=job_view("Failed"), job_detail="curl: 404"))
    assert d.job is not None
    assert d.job.name == make_job_name("dl", UID, 2)
    assert d.status.job is not None
    assert (d.status.job.attempts, d.status.job.id) == (2, None)


def test_a_finished_job_removed_before_it_was_seen_is_not_called_a_failure() -> None:
    data = make(http(), launched(attempts=2, observed="Running"))
    d = decide(data, obs(job=LaunchView(gone=True)))
    assert (d.status.phase, d.status.reason) == (Phase.FAILED, "OutcomeNotObserved")
    assert "not observed" in (d.status.message or "")


def test_an_ambiguous_job_listing_stalls_for_a_person() -> None:
    name = make_job_name("dl", UID, 1)
    data = make(http(), launched(id=None))
    view = LaunchView(listed=(Seen("a", name), Seen("b", name)))
    d = decide(data, obs(job=view))
    assert (d.status.phase, d.status.reason) == (Phase.PREPARING, AMBIGUOUS_LAUNCH)
    assert conditions(d)["Stalled"] == "True"
    assert d.warning == d.status.message


@pytest.mark.parametrize(
    ("source", "reason"), [(http(), "JobRejected"), ({"rucio": RUCIO}, "RuleRejected")]
)
def test_a_refused_create_fails_the_data_with_the_answer(
    source: dict[str, Any], reason: str
) -> None:
    d = decide(make(source), obs(rucio_configured=True, refused="400: image not allowed"))
    assert (d.status.phase, d.status.reason) == (Phase.FAILED, reason)
    assert (d.status.message or "").endswith("400: image not allowed")
    assert "Reconciling" not in conditions(d)


def test_an_available_data_is_not_polled_again() -> None:
    data = make(http(), launched(phase="Available"))
    d = decide(data, obs())
    assert d.status == data.status
    assert (acts(d), d.requeue_after, d.write) == (False, None, False)


def test_srcnet_staging_says_plainly_that_it_is_unsupported() -> None:
    data = make(
        {
            "srcnetStaging": {
                "storageAreaId": "0b7c5a4e-1111-2222-3333-444455556666",
                "dids": ["ns:a"],
            }
        }
    )
    d = decide(data, obs())
    assert (d.status.phase, d.status.reason) == (Phase.FAILED, "UnsupportedSource")
    assert "not public" in (d.status.message or "")


# -- Rucio -----------------------------------------------------------------------------------------


def test_rucio_without_credentials_stalls_for_a_human() -> None:
    d = decide(make({"rucio": RUCIO}), obs(rucio_configured=False))
    assert (d.status.phase, d.status.reason) == (Phase.PREPARING, "RucioNotConfigured")
    assert conditions(d)["Stalled"] == "True"


BASE = "user.alice:obs-1@SRCNET_LOCAL"


def test_the_rule_policy_has_one_name_per_did_and_rse_expression() -> None:
    policy = rule_policy(make({"rucio": RUCIO}), T)
    assert (policy.base, policy.name(1), policy.name(3)) == (BASE, BASE, BASE)
    assert (policy.max_attempts, policy.grace, policy.lost_fails) == (
        T.max_launch_attempts,
        T.adopt_grace,
        False,
    )


def test_rucio_creates_a_rule_with_its_marker() -> None:
    d = decide(make({"rucio": RUCIO}), obs(rucio_configured=True))
    assert d.rule == RulePlan("user.alice", "obs-1", "SRCNET_LOCAL", 7200)
    assert d.status.rule is not None
    assert (d.status.rule.name, d.status.rule.pending_since, d.status.rule.attempts) == (
        BASE,
        NOW,
        1,
    )


def pending_rule(since: str = "2030-01-01T11:59:10Z", **rule: Any) -> dict[str, Any]:
    return {
        "phase": "Preparing",
        "rule": {"name": BASE, "pendingSince": since, "attempts": 1, **rule},
    }


def rules(*ids: str) -> LaunchView:
    return LaunchView(listed=tuple(Seen(i, BASE, state="REPLICATING") for i in ids))


@pytest.mark.parametrize(
    ("since", "view", "reason", "creates", "rule_id"),
    [
        ("2030-01-01T11:59:10Z", LaunchView(), "LaunchPending", False, None),
        ("2030-01-01T11:59:10Z", rules(), "LaunchPending", False, None),  # may still commit
        ("2030-01-01T11:59:10Z", rules("r1"), "Adopted", False, "r1"),
        ("2030-01-01T11:59:10Z", rules("r1", "r2"), AMBIGUOUS_LAUNCH, False, None),
        # nothing after the grace: sent again (Rucio refuses a duplicate, which is adopted)
        ("2030-01-01T11:50:00Z", rules(), "Launching", True, None),
    ],
)
def test_a_rule_marker_without_an_id_adopts_from_the_did(
    since: str, view: LaunchView, reason: str, creates: bool, rule_id: str | None
) -> None:
    data = make({"rucio": RUCIO}, pending_rule(since))
    d = decide(data, obs(rucio_configured=True, rule=view))
    assert d.status.rule is not None
    assert (d.status.reason, d.rule is not None, d.status.rule.id) == (reason, creates, rule_id)
    if creates:
        assert (d.status.rule.attempts, d.status.rule.pending_since) == (2, NOW)
    if reason == AMBIGUOUS_LAUNCH:
        assert conditions(d)["Stalled"] == "True"


WITH_RULE = pending_rule(id="r1")


def rule_seen(state: str) -> LaunchView:
    return LaunchView(by_id=Seen("r1", BASE, state=state))


@pytest.mark.parametrize(
    ("view", "error", "deadline", "phase", "reason"),
    [
        (rule_seen("REPLICATING"), None, None, Phase.PREPARING, "Replicating"),
        (rule_seen("INJECT"), None, None, Phase.PREPARING, "Replicating"),
        (rule_seen("OK"), None, None, Phase.AVAILABLE, "Replicated"),
        (rule_seen("STUCK"), "transfer failed", None, Phase.PREPARING, "RuleStuck"),
        (rule_seen("STUCK"), "transfer failed", "1h", Phase.PREPARING, "RuleStuck"),
        (rule_seen("STUCK"), "transfer failed", "30s", Phase.FAILED, "RuleStuck"),
        (rule_seen("REPLICATING"), None, "30s", Phase.FAILED, "PrepareDeadlineExceeded"),
        (LaunchView(gone=True), None, None, Phase.FAILED, "RuleVanished"),
        (LaunchView(), None, None, Phase.PREPARING, "Polling"),  # not looked up
    ],
)
def test_rule_states(
    view: LaunchView, error: str | None, deadline: str | None, phase: Phase, reason: str
) -> None:
    data = make({"rucio": RUCIO}, WITH_RULE)
    d = decide(
        data, obs(rucio_configured=True, rule=view, rule_error=error, prepare_deadline=deadline)
    )
    assert (d.status.phase, d.status.reason) == (phase, reason)
    if error and phase == Phase.FAILED:
        assert (d.status.message or "").endswith(": transfer failed")
    if phase == Phase.PREPARING:
        assert d.requeue_after is not None
    assert d.status.rule is not None
    if view.by_id is not None:
        assert d.status.rule.observed == view.by_id.state


def test_the_rule_deadline_counts_from_creation_and_bounds_the_poll() -> None:
    data = make({"rucio": RUCIO}, WITH_RULE)
    assert rule_deadline(data, obs(prepare_deadline="90s")) == NOW + timedelta(seconds=30)
    d = decide(data, obs(rucio_configured=True, rule=rule_seen("STUCK"), prepare_deadline="61s"))
    assert d.requeue_after == 1.0  # wake at the deadline, not later


# -- release -------------------------------------------------------------------------------------


def deleting(**kw: Any) -> DataObservation:
    return obs(deleting=True, **kw)


JOBS = LaunchView(listed=(Seen("abc12345", make_job_name("dl", UID, 1), "Running"),))


def test_release_waits_while_a_compute_uses_the_data() -> None:
    d = decide(make(http(), launched()), deleting(users=("a", "b")))
    assert (d.status.phase, d.status.message, d.requeue_after) == (
        Phase.RELEASING,
        "still used by Compute a, b",
        10.0,
    )
    assert (d.released, acts(d)) == (False, False)


def test_release_stops_every_download_job_then_deletes_the_file() -> None:
    data = make(http(), launched())
    d = decide(data, deleting(job=JOBS))
    assert (d.status.phase, d.delete_jobs, d.released) == (Phase.RELEASING, ("abc12345",), False)
    assert data.status is not None
    assert d.status.job == data.status.job  # release changes no launch record
    gone = decide(data, deleting(job=LaunchView(listed=())))
    assert (gone.delete_tree, gone.released, gone.write) == ("home/alice/w/cat.fits", True, False)


def test_release_retains_the_file_under_retain() -> None:
    d = decide(
        make(http(), launched(), releasePolicy="Retain"), deleting(job=LaunchView(listed=()))
    )
    assert (d.delete_tree, d.released) == (None, True)


def test_a_terminal_data_is_released_without_writing_its_status() -> None:
    data = make(http(), launched(phase="Failed"))
    d = decide(data, deleting(job=JOBS))
    assert (d.write, d.delete_jobs, d.status) == (False, ("abc12345",), data.status)
    d = decide(data, deleting(users=("a",)))
    assert (d.write, d.requeue_after) == (False, 10.0)


def test_a_refused_launch_has_nothing_to_release() -> None:
    data = make(http(), launched(phase="Failed", id=None, observed="Refused"))
    d = decide(data, deleting(reachable=False))
    assert (d.released, d.delete_tree, d.warning) == (True, None, None)


@pytest.mark.parametrize(
    ("source", "status", "left"),
    [
        (http(), launched(), "download job abc12345, file /arc/home/alice/w/cat.fits"),
        ({"rucio": RUCIO}, pending_rule(id="r1"), "Rucio rule r1"),
        ({"rucio": RUCIO}, pending_rule(), f"Rucio rule {BASE}"),
    ],
)
def test_an_unreachable_platform_blocks_release_until_restored_or_abandoned(
    source: dict[str, Any], status: dict[str, Any], left: str
) -> None:
    data = make(source, status)
    d = decide(data, deleting(reachable=False))
    assert (d.status.phase, d.status.reason, d.released) == (
        Phase.RELEASING,
        "ReleaseBlocked",
        False,
    )
    assert conditions(d)["Stalled"] == "True"
    assert "skaha.broker.dev/abandon=true" in (d.status.message or "")
    assert left in (d.status.message or "")
    assert d.warning == d.status.message
    d = decide(data, deleting(reachable=False, abandon=True))
    assert (d.released, d.write) == (True, False)
    assert d.warning is not None
    assert d.warning.startswith(f"abandoned {left}")


@pytest.mark.parametrize(
    ("status", "kw", "delete", "released"),
    [
        (pending_rule(id="r1"), {}, "r1", True),
        (pending_rule(id="r1"), {"rule_shared": True}, None, True),  # another Data keeps it
        # a create in flight: remove what appears, wait through the grace
        (pending_rule(), {"rule": rules("r7")}, "r7", False),
        (pending_rule(), {"rule": rules()}, None, False),
        (pending_rule("2030-01-01T11:50:00Z"), {"rule": rules()}, None, True),
        (pending_rule(), {"rule": rules("r7"), "rule_shared": True}, None, True),
    ],
)
def test_release_deletes_the_rule_unless_shared(
    status: dict[str, Any], kw: dict[str, Any], delete: str | None, released: bool
) -> None:
    d = decide(make({"rucio": RUCIO}, status), deleting(**kw))
    assert (d.delete_rule, d.released) == (delete, released)
    if not released:
        assert d.status.phase == Phase.RELEASING
        assert d.requeue_after is not None
    retained = decide(make({"rucio": RUCIO}, status, releasePolicy="Retain"), deleting(**kw))
    assert (retained.delete_rule, retained.released) == (None, True)
