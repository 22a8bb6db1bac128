"""decide_data, table-driven: dependencies, the download job, the Rucio rule, SRCNet staging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from skaha_operator.domain.common import Phase
from skaha_operator.domain.data import Data
from skaha_operator.reconcile.data import (
    DEFAULT_DOWNLOADER_IMAGE,
    DataAct,
    DataObservation,
    RulePlan,
    RuleView,
    StorageView,
    data_path,
    decide_data,
    rule_deadline,
)
from skaha_operator.reconcile.jobs import JOB_ARGS, JOB_CMD, JobView, make_job_name
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


def decide(data: Data, observation: DataObservation) -> Any:
    return decide_data(data, observation, T, DEFAULT_DOWNLOADER_IMAGE)


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
    assert (d.status.phase, d.status.reason, d.action) == (phase, reason, DataAct.NONE)
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
    assert (d.status.phase, d.action) == (Phase.PREPARING, DataAct.LAUNCH_JOB)
    assert d.status.job_pending_since == NOW  # the marker goes with the launch decision
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


def launched(**extra: Any) -> dict[str, Any]:
    return {
        "phase": "Preparing",
        "jobSessionName": make_job_name("dl", UID, 1),
        "jobPendingSince": "2030-01-01T11:59:30Z",
        "jobAttempts": 1,
        "jobSessionId": "abc12345",
        **extra,
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
    d = decide(make(http(checksum), launched()), obs(job=JobView(status="Completed")))
    assert (d.status.phase, d.status.reason, d.status.message) == (
        Phase.AVAILABLE,
        "Downloaded",
        message,
    )
    assert d.status.checksum_verified is verified


def test_the_last_failed_job_fails_the_data_with_its_log_tail() -> None:
    data = make(http(), launched(jobAttempts=2, jobSessionName=make_job_name("dl", UID, 2)))
    d = decide(data, obs(job=JobView(status="Failed", detail="curl: (22) ... error: 404")))
    assert (d.status.phase, d.status.reason) == (Phase.FAILED, "DownloadFailed")
    assert d.status.message is not None
    assert d.status.message.endswith("curl: (22) ... error: 404")


def test_an_available_data_is_not_polled_again() -> None:
    data = make(http(), launched(phase="Available"))
    d = decide(data, obs(job=None))
    assert d.status == data.status
    assert (d.action, d.requeue_after) == (DataAct.NONE, None)


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
    assert {c.type: c.status for c in d.status.conditions or []}["Stalled"] == "True"


def test_rucio_creates_a_rule_with_its_marker() -> None:
    d = decide(make({"rucio": RUCIO}), obs(rucio_configured=True))
    assert d.action == DataAct.CREATE_RULE
    assert d.rule == RulePlan("user.alice", "obs-1", "SRCNET_LOCAL", 7200)
    assert d.status.rule_pending_since == NOW


PENDING_RULE = {"phase": "Preparing", "rulePendingSince": "2030-01-01T11:59:10Z"}


@pytest.mark.parametrize(
    ("candidates", "reason", "action", "rule_id"),
    [
        (None, "RulePending", DataAct.NONE, None),
        (("r1",), "RuleAdopted", DataAct.NONE, "r1"),
        (("r1", "r2"), "AmbiguousRule", DataAct.NONE, None),
        ((), "CreatingRule", DataAct.CREATE_RULE, None),  # Rucio refuses duplicates: safe
    ],
)
def test_a_rule_marker_without_an_id_adopts_from_the_did(
    candidates: tuple[str, ...] | None, reason: str, action: DataAct, rule_id: str | None
) -> None:
    data = make({"rucio": RUCIO}, PENDING_RULE)
    d = decide(data, obs(rucio_configured=True, rule=RuleView(candidates=candidates)))
    assert (d.status.reason, d.action, d.status.rule_id) == (reason, action, rule_id)


WITH_RULE = PENDING_RULE | {"ruleId": "r1"}


@pytest.mark.parametrize(
    ("view", "deadline", "phase", "reason"),
    [
        (RuleView(state="REPLICATING"), None, Phase.PREPARING, "Replicating"),
        (RuleView(state="INJECT"), None, Phase.PREPARING, "Replicating"),
        (RuleView(state="OK"), None, Phase.AVAILABLE, "Replicated"),
        (RuleView(state="STUCK", error="transfer failed"), None, Phase.PREPARING, "RuleStuck"),
        (RuleView(state="STUCK", error="transfer failed"), "1h", Phase.PREPARING, "RuleStuck"),
        (RuleView(state="STUCK", error="transfer failed"), "30s", Phase.FAILED, "RuleStuck"),
        (RuleView(state="REPLICATING"), "30s", Phase.FAILED, "PrepareDeadlineExceeded"),
        (RuleView(gone=True), None, Phase.FAILED, "RuleVanished"),
    ],
)
def test_rule_states(view: RuleView, deadline: str | None, phase: Phase, reason: str) -> None:
    data = make({"rucio": RUCIO}, WITH_RULE)
    d = decide(data, obs(rucio_configured=True, rule=view, prepare_deadline=deadline))
    assert (d.status.phase, d.status.reason) == (phase, reason)
    if view.error and phase == Phase.FAILED:
        assert (d.status.message or "").endswith(": transfer failed")
    if phase == Phase.PREPARING:
        assert d.requeue_after is not None


def test_the_rule_deadline_counts_from_creation_and_bounds_the_poll() -> None:
    data = make({"rucio": RUCIO}, WITH_RULE)
    assert rule_deadline(data, obs(prepare_deadline="90s")) == NOW + timedelta(seconds=30)
    d = decide(
        data, obs(rucio_configured=True, rule=RuleView(state="STUCK"), prepare_deadline="61s")
    )
    assert d.requeue_after == 1.0  # wake at the deadline, not later
