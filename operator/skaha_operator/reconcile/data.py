"""The Data decision: HTTP(S) download job, Rucio replication rule, or an honest "unsupported".

- HTTP(S): a short headless Skaha job on a small downloader image fetches the URL into the
  storage path and verifies the checksum; data never moves through the operator (design §2).
  The job step (marker, adoption by name, bounded retries, log tail) is `reconcile.jobs`.
- Rucio: a replication rule to the RSE expression with a lifetime (skaha-api.md §8). The marker
  `rulePendingSince` is written before the POST; a `DuplicateRule` answer, or a restart that finds
  a marker without an id, adopts the existing rule found on the DID. Polled until OK; STUCK past
  the deadline (the platform's default prepare deadline, from the Data's creation) is Failed with
  the rule's error.
- SRCNet staging: the Data Management API's staging paths and job states are not public
  (skaha-api.md §8 [NF]), so such a Data fails with reason UnsupportedSource saying so.
Pure: imports neither kopf, kubernetes nor httpx.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import urlsplit

from skaha_operator.domain.common import TERMINAL_PHASES, Phase, parse_duration
from skaha_operator.domain.data import Data, DataStatus
from skaha_operator.reconcile.jobs import (
    JOB_ARGS,
    JOB_CMD,
    SCRIPT_ENV,
    JobOutcome,
    JobPlan,
    JobView,
    step_job,
    with_phase,
)
from skaha_operator.reconcile.timing import Timing, poll_delay

JOB_TAG = "dl"
DEFAULT_DOWNLOADER_IMAGE = "images.canfar.net/skaha/terminal:1.1.2"

# Fetch into a temporary name, check, then move: a failed check never leaves a file behind.
# It needs sh, curl or wget, and sha256sum/md5sum (coreutils or busybox).
DOWNLOAD_SCRIPT = "; ".join(
    [
        "set -eu",
        'tmp="$SKOP_DEST.part"',
        "trap 'rm -f \"$tmp\"' EXIT",  # a failed fetch or check leaves no partial file
        'mkdir -p "$(dirname "$SKOP_DEST")"',
        "if command -v curl >/dev/null 2>&1; "
        'then curl -fsSL --retry 3 -o "$tmp" "$SKOP_URL"; '
        'else wget -q -O "$tmp" "$SKOP_URL"; fi',
        'case "${SKOP_CHECKSUM:-}" in '
        'sha256:*) echo "${SKOP_CHECKSUM#sha256:}  $tmp" | sha256sum -c - ;; '
        'md5:*) echo "${SKOP_CHECKSUM#md5:}  $tmp" | md5sum -c - ;; '
        "esac",
        'mv "$tmp" "$SKOP_DEST"',
        'echo "downloaded $SKOP_URL to $SKOP_DEST"',
    ]
)


class DataAct(StrEnum):
    """The one external action of a Data decision."""

    NONE = "None"
    LAUNCH_JOB = "LaunchJob"
    CREATE_RULE = "CreateRule"


@dataclass(frozen=True)
class StorageView:
    """The Storage the data goes into, as observed (None in the observation: not found)."""

    name: str
    phase: str | None
    mount_path: str | None
    reason: str | None = None


@dataclass(frozen=True)
class RuleView:
    """The Rucio rule: candidates on the DID (no id yet), or the rule by id."""

    candidates: tuple[str, ...] | None = None  # ids of our rules on the DID; None: not listed
    gone: bool = False
    state: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class RulePlan:
    """A replication rule to create (skaha-api.md §8 `POST /rules/`)."""

    scope: str
    name: str
    rse_expression: str
    lifetime_s: int | None


@dataclass(frozen=True)
class DataObservation:
    """Everything observed for one decision."""

    now: datetime
    platform_ready: bool
    platform_reason: str | None = None
    storage: StorageView | None = None
    prepare_deadline: str | None = None  # the platform's default, a duration
    rucio_configured: bool = False
    job: JobView | None = None
    rule: RuleView | None = None


@dataclass(frozen=True)
class DataDecision:
    """The next status, the one action (with its plan), and when to look again."""

    status: DataStatus
    action: DataAct = DataAct.NONE
    job: JobPlan | None = None
    rule: RulePlan | None = None
    requeue_after: float | None = None
    events: tuple[str, ...] = ()


def data_path(data: Data) -> str:
    """Where the data goes inside its storage: spec.path, else the URL's or DID's last name."""
    if data.spec.path:
        return data.spec.path
    if data.spec.http is not None:
        name = posixpath.basename(urlsplit(data.spec.http.url).path)
        return name or "download"
    if data.spec.rucio is not None:
        return data.spec.rucio.did.split(":", 1)[1].rsplit("/", 1)[-1]
    return "staged"


def download_job(data: Data, dest: str, image: str, name: str) -> JobPlan:
    """The headless job that fetches `spec.http.url` to `dest` (a path inside the session)."""
    http = data.spec.http
    assert http is not None
    env = {"SKOP_JOB": "download", "SKOP_URL": http.url, "SKOP_DEST": dest}
    if http.checksum:
        env["SKOP_CHECKSUM"] = http.checksum
    env[SCRIPT_ENV] = DOWNLOAD_SCRIPT
    return JobPlan(name=name, image=image, cmd=JOB_CMD, args=JOB_ARGS, env=env)


def rule_deadline(data: Data, obs: DataObservation) -> datetime | None:
    """Creation plus the platform's default prepare deadline (None when it has none)."""
    if not obs.prepare_deadline:
        return None
    created = data.metadata.get("creationTimestamp")
    start = (
        datetime.fromisoformat(created.replace("Z", "+00:00"))
        if isinstance(created, str)
        else obs.now
    )
    return start + parse_duration(obs.prepare_deadline)


def decide_data(
    data: Data, obs: DataObservation, timing: Timing, downloader_image: str
) -> DataDecision:
    """The next step for one Data."""
    return _Step(data, data.status or DataStatus(), obs, timing, downloader_image).decide()


@dataclass
class _Step:
    data: Data
    status: DataStatus
    obs: DataObservation
    timing: Timing
    image: str

    def result(
        self,
        phase: Phase,
        reason: str,
        message: str,
        *,
        action: DataAct = DataAct.NONE,
        job: JobPlan | None = None,
        rule: RulePlan | None = None,
        requeue: float | None = None,
        stalled: bool = False,
        changes: dict[str, object] | None = None,
    ) -> DataDecision:
        new, events = with_phase(
            self.status,
            phase,
            reason,
            message,
            self.obs.now,
            self.data.metadata.get("generation"),
            stalled=stalled,
            changes=changes,
        )
        return DataDecision(new, action, job, rule, requeue, events)

    def decide(self) -> DataDecision:
        phase = self.status.phase or Phase.INITIALIZING
        if phase in TERMINAL_PHASES or phase in {Phase.AVAILABLE, Phase.RELEASING}:
            return DataDecision(self.status)  # placed once; release is the finalizer's business
        spec = self.data.spec
        if spec.srcnet_staging is not None:
            return self.result(
                Phase.FAILED,
                "UnsupportedSource",
                "SRCNet staging is not supported: the Data Management API's staging paths and "
                "job states are not public (only the client's stage_request/stage_status names "
                "are known), so the operator cannot stage or poll; use a rucio source to the "
                "storage area's RSE instead",
            )
        if not self.obs.platform_ready:
            why = f" ({self.obs.platform_reason})" if self.obs.platform_reason else ""
            return self.result(
                Phase.PREPARING,
                "WaitingForPlatform",
                f"waiting for SkahaPlatform {spec.platform_ref}{why}",
                requeue=self.timing.dependency_recheck,
            )
        storage = self.obs.storage
        if storage is None or storage.phase != Phase.AVAILABLE or not storage.mount_path:
            if storage is not None and storage.phase in TERMINAL_PHASES:
                return self.result(
                    Phase.FAILED,
                    "StorageFailed",
                    f"Storage {storage.name} is {storage.phase}"
                    + (f" ({storage.reason})" if storage.reason else ""),
                )
            state = "not found" if storage is None else (storage.phase or "new")
            return self.result(
                Phase.PREPARING,
                "WaitingForStorage",
                f"waiting for Storage {spec.storage_ref} ({state})",
                requeue=self.timing.dependency_recheck,
            )
        location = f"{storage.mount_path}/{data_path(self.data)}"
        if spec.http is not None:
            return self.download(location)
        return self.replicate(location)

    # -- HTTP(S) ---------------------------------------------------------------------------

    def download(self, location: str) -> DataDecision:
        uid = str(self.data.metadata.get("uid", ""))
        step = step_job(
            self.status,
            self.obs.job,
            self.obs.now,
            self.timing,
            tag=JOB_TAG,
            uid=uid,
            what="download",
            failure_reason="DownloadFailed",
        )
        changes: dict[str, object] = {"location": location, **step.changes}
        match step.outcome:
            case JobOutcome.LAUNCH:
                assert step.name is not None
                return self.result(
                    Phase.PREPARING,
                    step.reason,
                    step.message,
                    action=DataAct.LAUNCH_JOB,
                    job=download_job(self.data, location, self.image, step.name),
                    requeue=self.timing.poll_base,
                    changes=changes,
                )
            case JobOutcome.WAIT:
                return self.result(
                    Phase.PREPARING,
                    step.reason,
                    step.message,
                    requeue=step.requeue,
                    changes=changes,
                )
            case JobOutcome.STALLED:
                return self.result(
                    Phase.PREPARING,
                    step.reason,
                    step.message,
                    requeue=step.requeue,
                    stalled=True,
                    changes=changes,
                )
            case JobOutcome.DONE:
                checked = self.data.spec.http is not None and bool(self.data.spec.http.checksum)
                return self.result(
                    Phase.AVAILABLE,
                    "Downloaded",
                    f"downloaded to {location}" + (" (checksum verified)" if checked else ""),
                    changes={**changes, "checksum_verified": True if checked else None},
                )
            case JobOutcome.FAILED:
                return self.result(Phase.FAILED, step.reason, step.message, changes=changes)

    # -- Rucio -----------------------------------------------------------------------------

    def replicate(self, location: str) -> DataDecision:
        rucio = self.data.spec.rucio
        assert rucio is not None
        if not self.obs.rucio_configured:
            return self.result(
                Phase.PREPARING,
                "RucioNotConfigured",
                f"SkahaPlatform {self.data.spec.platform_ref} has no usable Rucio credentials: "
                "set spec.rucio.credentialsSecretRef to a Secret with keys username and password",
                requeue=self.timing.resync,
                stalled=True,
            )
        scope, name = rucio.did.split(":", 1)
        lifetime = int(parse_duration(rucio.lifetime).total_seconds()) if rucio.lifetime else None
        plan = RulePlan(scope, name, rucio.rse_expression, lifetime)
        common: dict[str, object] = {"location": location}
        if self.status.rule_pending_since is None:
            return self._create(plan, common)
        if not self.status.rule_id:
            return self._adopt_rule(plan, common)
        return self._poll_rule(common)

    def _create(self, plan: RulePlan, common: dict[str, object]) -> DataDecision:
        # The marker goes into the same guarded write as the phase, before the POST (design §4.3).
        return self.result(
            Phase.PREPARING,
            "CreatingRule",
            f"creating a Rucio rule for {plan.scope}:{plan.name} on {plan.rse_expression}",
            action=DataAct.CREATE_RULE,
            rule=plan,
            requeue=self.timing.poll_base,
            changes={**common, "rule_pending_since": self.obs.now},
        )

    def _adopt_rule(self, plan: RulePlan, common: dict[str, object]) -> DataDecision:
        found = self.obs.rule.candidates if self.obs.rule is not None else None
        if found is None:
            return self.result(
                Phase.PREPARING,
                "RulePending",
                "looking for the Rucio rule on the DID",
                requeue=self.timing.poll_base,
                changes=common,
            )
        if len(found) == 1:
            return self.result(
                Phase.PREPARING,
                "RuleAdopted",
                f"adopted Rucio rule {found[0]} found on the DID",
                requeue=0.0,
                changes={**common, "rule_id": found[0]},
            )
        if found:
            return self.result(
                Phase.PREPARING,
                "AmbiguousRule",
                f"{len(found)} rules of this account on the DID for {plan.rse_expression}: "
                f"{', '.join(found)}; delete all but one by hand",
                requeue=self.timing.resync,
                stalled=True,
                changes=common,
            )
        # None exists: the POST never took effect. Sending it again is safe, because Rucio
        # refuses a second identical rule with DuplicateRule, which is then adopted.
        return self._create(plan, common)

    def _poll_rule(self, common: dict[str, object]) -> DataDecision:
        seen = self.obs.rule
        rule_id = self.status.rule_id
        if seen is None:
            return self.result(
                Phase.PREPARING, "Polling", f"polling Rucio rule {rule_id}", requeue=0.0
            )
        polls = (self.status.polls or 0) + 1
        changes = {**common, "polls": polls, "last_polled": self.obs.now}
        if seen.gone:
            return self.result(
                Phase.FAILED,
                "RuleVanished",
                f"Rucio rule {rule_id} disappeared before it was OK",
                changes=changes,
            )
        changes["rule_state"] = seen.state or ""
        if seen.state == "OK":
            return self.result(
                Phase.AVAILABLE,
                "Replicated",
                f"Rucio rule {rule_id} is OK: replicated to {self.data.spec.rucio.rse_expression}"
                if self.data.spec.rucio
                else f"Rucio rule {rule_id} is OK",
                changes=changes,
            )
        deadline = rule_deadline(self.data, self.obs)
        error = f": {seen.error}" if seen.error else ""
        if deadline is not None and self.obs.now >= deadline:
            reason = "RuleStuck" if seen.state == "STUCK" else "PrepareDeadlineExceeded"
            return self.result(
                Phase.FAILED,
                reason,
                f"Rucio rule {rule_id} is {seen.state} at the prepare deadline "
                f"{deadline.isoformat()}{error}",
                changes=changes,
            )
        since = self.status.rule_pending_since or self.obs.now
        delay = poll_delay((self.obs.now - since).total_seconds(), self.timing)
        if deadline is not None:
            delay = max(0.0, min(delay, (deadline - self.obs.now).total_seconds()))
        until = f"; failing at {deadline.isoformat()} unless OK" if deadline is not None else ""
        return self.result(
            Phase.PREPARING,
            "RuleStuck" if seen.state == "STUCK" else "Replicating",
            f"Rucio rule {rule_id} is {seen.state}{error}{until}",
            requeue=delay,
            changes=changes,
        )


__all__ = [
    "DEFAULT_DOWNLOADER_IMAGE",
    "DataAct",
    "DataDecision",
    "DataObservation",
    "RulePlan",
    "RuleView",
    "StorageView",
    "data_path",
    "decide_data",
    "download_job",
    "rule_deadline",
]
