"""The Data decision: HTTP(S) download job, Rucio replication rule, or an honest "unsupported".

- HTTP(S): a short headless Skaha job on a small downloader image fetches the URL into the
  storage path and verifies the checksum; data never moves through the operator
  (docs/design.md §2). The job step (bounded retries, log tail) is `reconcile.jobs`.
- Rucio: a replication rule to the RSE expression with a lifetime (docs/platform-api.md §8),
  launched through the shared protocol (`reconcile.launch`) under one name, the DID and RSE
  expression: the marker `status.rule` is written before the POST; a `DuplicateRule` answer, or a
  restart that finds a marker without an id, adopts the rule listed on the DID. Polled until OK;
  STUCK past the deadline (the platform's default prepare deadline, from the Data's creation) is
  Failed with the rule's error.
- SRCNet staging: the Data Management API's staging paths and job states are not public
  (docs/platform-api.md §8 [NF]), so such a Data fails with reason UnsupportedSource saying so.

Release (the object is being deleted) goes through the same decision: wait while a live Compute
uses the Data, stop the download (every attempt), then per the release policy delete the file or
the rule (a rule another Data also records is kept).
Pure: imports neither kopf, kubernetes nor httpx.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from skaha_operator.domain.common import TERMINAL_PHASES, Phase, ReleasePolicy, parse_duration
from skaha_operator.domain.data import Data, DataStatus
from skaha_operator.domain.launch import Launch
from skaha_operator.reconcile.jobs import (
    JOB_ARGS,
    JOB_CMD,
    SCRIPT_ENV,
    JobPlan,
    job_policy,
    job_release,
    job_step,
)
from skaha_operator.reconcile.launch import (
    REFUSED,
    LaunchPolicy,
    LaunchView,
    Next,
    marker,
    release_launch,
    sent,
    step_launch,
)
from skaha_operator.reconcile.parts import (
    ABANDON_ANNOTATION,
    BlockedWording,
    Move,
    StorageView,
    advance,
    in_use,
    job_move,
    release_blocked,
    releasing,
    wait_for_platform,
    wait_for_storage,
)
from skaha_operator.reconcile.storage import node_of_mount
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

# Data's blocked release names the platform's credentials (not only its token).
BLOCKED_WORDS = BlockedWording(unusable="its credentials are")


@dataclass(frozen=True)
class RulePlan:
    """A replication rule to create (docs/platform-api.md §8 `POST /rules/`)."""

    scope: str
    name: str
    rse_expression: str
    lifetime_s: int | None


@dataclass(frozen=True)
class DataObservation:
    """Everything observed for one decision.

    `job`: the download jobs listed under the job policy's base name (when `needs_listing` says
    so, and always while deleting) and the recorded id looked up. `rule`: the DID's rules of our
    account for the RSE expression, each as `Seen(id, name=rule_policy(...).base, state=<rule
    state>, live=True)`, and the recorded rule looked up.
    """

    now: datetime
    platform_ready: bool
    platform_reason: str | None = None
    storage: StorageView | None = None
    prepare_deadline: str | None = None  # the platform's default, a duration
    rucio_configured: bool = False
    job: LaunchView = field(default_factory=LaunchView)
    job_detail: str | None = None  # the job's log tail, fetched when it failed
    rule: LaunchView = field(default_factory=LaunchView)
    rule_error: str | None = None  # the recorded rule's error text
    refused: str | None = None  # Skaha or Rucio answered 4xx to the create just sent
    deleting: bool = False  # deletionTimestamp is set: release
    reachable: bool = True  # the platform's clients exist (release needs them)
    abandon: bool = False  # the abandon annotation is set
    users: tuple[str, ...] = ()  # live Computes still using this Data; release waits for them
    # Another Data records the rule this one would delete (its recorded id or, with none
    # recorded, the one listed under its name): keep it.
    rule_shared: bool = False


@dataclass(frozen=True)
class DataDecision:
    """The next status and the actions, and when to look again.

    Actions run in this order: the status write (guarded by resourceVersion when `job` or `rule`
    is set: it carries the marker), the launch of `job` or the creation of `rule`, the deletes.
    `released`: nothing is left, the finalizer may go (after the deletes succeeded).
    """

    status: DataStatus
    job: JobPlan | None = None
    rule: RulePlan | None = None
    delete_jobs: tuple[str, ...] = ()  # Skaha session ids
    delete_rule: str | None = None  # a Rucio rule id
    delete_tree: str | None = None  # a Cavern node path to remove recursively
    requeue_after: float | None = None
    events: tuple[str, ...] = ()
    released: bool = False
    warning: str | None = None  # a Warning Event (stalled, release blocked, left behind)
    write: bool = True  # False: the status must not be written (terminal, or released)


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


def download_policy(data: Data, timing: Timing) -> LaunchPolicy:
    """How a Data's download job launches (names `skop-dl-<uid hex>-<n>`)."""
    return job_policy(timing, tag=JOB_TAG, uid=_uid(data), what=DOWNLOAD)


def rule_policy(data: Data, timing: Timing) -> LaunchPolicy:
    """How a Data's Rucio rule is created: one name (DID@RSE expression) for every attempt;
    Stalled when the attempts run out (Rucio refuses a duplicate, so a re-send is safe)."""
    rucio = data.spec.rucio
    base = f"{rucio.did}@{rucio.rse_expression}" if rucio is not None else ""
    return LaunchPolicy(
        what="Rucio rule",
        base=base,
        per_attempt_names=False,
        max_attempts=timing.max_launch_attempts,
        grace=timing.adopt_grace,
    )


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
    """The next step for one Data (its release too, once it is being deleted)."""
    step = _Step(data, data.status or DataStatus(), obs, timing, downloader_image)
    return step.release() if obs.deleting else step.decide()


DOWNLOAD = "download"


def _uid(data: Data) -> str:
    return str(data.metadata.get("uid", ""))


@dataclass
class _Step:
    data: Data
    status: DataStatus
    obs: DataObservation
    timing: Timing
    image: str

    def result(
        self,
        move: Move,
        *,
        job: JobPlan | None = None,
        rule: RulePlan | None = None,
        changes: dict[str, object] | None = None,
        delete_jobs: tuple[str, ...] = (),
        delete_rule: str | None = None,
        warning: str | None = None,
    ) -> DataDecision:
        """The one place a status is moved: phase, reason, message and conditions together."""
        gen = self.data.metadata.get("generation")
        new, events, warning = advance(
            self.status, move, self.obs.now, gen, changes=changes, warning=warning
        )
        return DataDecision(
            new,
            job=job,
            rule=rule,
            delete_jobs=delete_jobs,
            delete_rule=delete_rule,
            requeue_after=move.requeue,
            events=events,
            warning=warning,
        )

    def decide(self) -> DataDecision:
        phase = self.status.phase or Phase.INITIALIZING
        if phase in TERMINAL_PHASES or phase in {Phase.AVAILABLE, Phase.RELEASING}:
            return DataDecision(self.status, write=False)  # placed once; released on deletion
        spec = self.data.spec
        if self.obs.refused is not None:
            return self.refused(self.obs.refused)
        if spec.srcnet_staging is not None:
            return self.result(
                Move(
                    Phase.FAILED,
                    "UnsupportedSource",
                    "SRCNet staging is not supported: the Data Management API's staging paths and "
                    "job states are not public (only the client's stage_request/stage_status names "
                    "are known), so the operator cannot stage or poll; use a rucio source to the "
                    "storage area's RSE instead",
                )
            )
        if not self.obs.platform_ready:
            return self.result(
                wait_for_platform(spec.platform_ref, self.obs.platform_reason, self.timing)
            )
        storage = self.obs.storage
        waiting = wait_for_storage(storage, spec.storage_ref, self.timing)
        if waiting is not None:
            return self.result(waiting)
        assert storage is not None
        location = f"{storage.mount_path}/{data_path(self.data)}"
        if spec.http is not None:
            return self.download(location)
        return self.replicate(location)

    def refused(self, why: str) -> DataDecision:
        # The platform answered 4xx to the create just sent: nothing was created, and sending
        # it again would not help.
        if self.data.spec.http is not None:
            job = marker(self.status.job).model_copy(update={"observed": REFUSED})
            return self.result(
                Move(Phase.FAILED, "JobRejected", f"Skaha refused the download job: {why}"),
                changes={"job": job},
            )
        rule = marker(self.status.rule).model_copy(update={"observed": REFUSED})
        return self.result(
            Move(Phase.FAILED, "RuleRejected", f"Rucio refused the rule: {why}"),
            changes={"rule": rule},
        )

    # -- HTTP(S) ---------------------------------------------------------------------------

    def download(self, location: str) -> DataDecision:
        step = job_step(
            self.status.job,
            self.obs.job,
            self.obs.job_detail,
            self.obs.now,
            self.timing,
            tag=JOB_TAG,
            uid=_uid(self.data),
            what=DOWNLOAD,
            failure_reason="DownloadFailed",
        )
        checked = self.data.spec.http is not None and bool(self.data.spec.http.checksum)
        done = f"downloaded to {location}" + (" (checksum verified)" if checked else "")
        move = job_move(step, self.timing, done=("Downloaded", done))
        changes: dict[str, object] = {"location": location, "job": step.launch}
        if move.phase == Phase.AVAILABLE:
            changes["checksum_verified"] = True if checked else None
        job = download_job(self.data, location, self.image, move.launch) if move.launch else None
        return self.result(move, job=job, changes=changes, delete_jobs=step.delete)

    # -- Rucio -----------------------------------------------------------------------------

    def replicate(self, location: str) -> DataDecision:
        rucio = self.data.spec.rucio
        assert rucio is not None
        if not self.obs.rucio_configured:
            return self.result(
                Move(
                    Phase.PREPARING,
                    "RucioNotConfigured",
                    f"SkahaPlatform {self.data.spec.platform_ref} has no usable Rucio credentials: "
                    "set spec.rucio.credentialsSecretRef to a Secret with keys username and "
                    "password",
                    requeue=self.timing.resync,
                    stalled=True,
                )
            )
        scope, name = rucio.did.split(":", 1)
        lifetime = int(parse_duration(rucio.lifetime).total_seconds()) if rucio.lifetime else None
        plan = RulePlan(scope, name, rucio.rse_expression, lifetime)
        policy = rule_policy(self.data, self.timing)
        step = step_launch(self.status.rule, self.obs.rule, self.obs.now, policy)
        changes: dict[str, object] = {"location": location, "rule": step.launch}
        match step.next:
            case Next.LAUNCH:
                # The marker goes into the same guarded write as the phase, before the POST.
                return self.result(
                    Move(Phase.PREPARING, step.reason, step.message, requeue=self.timing.poll_base),
                    rule=plan,
                    changes=changes,
                )
            case Next.WAIT | Next.STALLED | Next.LOST | Next.RELEASED:
                stalled = step.next in {Next.STALLED, Next.LOST}
                return self.result(
                    Move(
                        Phase.PREPARING,
                        step.reason,
                        step.message,
                        requeue=step.requeue,
                        stalled=stalled,
                    ),
                    changes=changes,
                )
            case Next.TRACK if not marker(self.status.rule).id:  # adopted: look at it by id
                return self.result(
                    Move(Phase.PREPARING, step.reason, step.message, requeue=0.0), changes=changes
                )
        return self._poll_rule(step.launch, changes, step.delete)

    def _poll_rule(
        self, rule: Launch, changes: dict[str, object], sweep: tuple[str, ...]
    ) -> DataDecision:
        seen = self.obs.rule
        delete = sweep[0] if sweep else None
        if seen.gone:
            gone = rule.model_copy(update={"observed": "Gone"})
            return self.result(
                Move(
                    Phase.FAILED,
                    "RuleVanished",
                    f"Rucio rule {rule.id} disappeared before it was OK",
                ),
                changes={**changes, "rule": gone},
                delete_rule=delete,
            )
        if seen.by_id is None:
            return self.result(
                Move(
                    Phase.PREPARING,
                    "Polling",
                    f"polling Rucio rule {rule.id}",
                    requeue=self.timing.poll_base,
                ),
                changes=changes,
                delete_rule=delete,
            )
        state = seen.by_id.state
        polls = (self.status.polls or 0) + 1
        changes = {**changes, "polls": polls, "last_polled": self.obs.now}
        if state == "OK":
            rse = self.data.spec.rucio.rse_expression if self.data.spec.rucio else "its RSEs"
            return self.result(
                Move(
                    Phase.AVAILABLE,
                    "Replicated",
                    f"Rucio rule {rule.id} is OK: replicated to {rse}",
                ),
                changes=changes,
                delete_rule=delete,
            )
        deadline = rule_deadline(self.data, self.obs)
        error = f": {self.obs.rule_error}" if self.obs.rule_error else ""
        if deadline is not None and self.obs.now >= deadline:
            reason = "RuleStuck" if state == "STUCK" else "PrepareDeadlineExceeded"
            return self.result(
                Move(
                    Phase.FAILED,
                    reason,
                    f"Rucio rule {rule.id} is {state} at the prepare deadline "
                    f"{deadline.isoformat()}{error}",
                ),
                changes=changes,
                delete_rule=delete,
            )
        since = rule.pending_since or self.obs.now
        delay = poll_delay((self.obs.now - since).total_seconds(), self.timing)
        if deadline is not None:
            delay = max(0.0, min(delay, (deadline - self.obs.now).total_seconds()))
        until = f"; failing at {deadline.isoformat()} unless OK" if deadline is not None else ""
        return self.result(
            Move(
                Phase.PREPARING,
                "RuleStuck" if state == "STUCK" else "Replicating",
                f"Rucio rule {rule.id} is {state}{error}{until}",
                requeue=delay,
            ),
            changes=changes,
            delete_rule=delete,
        )

    # -- release ---------------------------------------------------------------------------

    def release(self) -> DataDecision:
        """The object is being deleted: wait for users, stop the download, delete per policy."""
        obs, st = self.obs, self.status
        users = in_use(obs.users)
        if users is not None:
            return self._hold(users)
        rule = marker(st.rule)
        if (sent(st.job) or sent(st.rule)) and not obs.reachable:
            return self._blocked()
        step = job_release(
            st.job, obs.job, obs.now, self.timing, tag=JOB_TAG, uid=_uid(self.data), what=DOWNLOAD
        )
        if sent(st.job) and step.next != Next.RELEASED:
            return self._hold(releasing(step), jobs=step.delete)
        done = DataDecision(st, released=True, write=False)
        spec = self.data.spec
        if spec.release_policy != ReleasePolicy.DELETE:
            return done
        if spec.http is not None:
            if st.location and sent(st.job):
                return DataDecision(
                    st, delete_tree=node_of_mount(st.location), released=True, write=False
                )
            return done
        if not sent(st.rule) or obs.rule_shared:
            return done
        if rule.id:
            return DataDecision(st, delete_rule=rule.id, released=True, write=False)
        # A create was sent but its id never recorded: remove what appears under our name, and
        # wait through the grace period of the last request before saying nothing is left.
        rstep = release_launch(st.rule, obs.rule, obs.now, rule_policy(self.data, self.timing))
        if rstep.next == Next.RELEASED:
            return done
        return self._hold(releasing(rstep), rule=rstep.delete[0] if rstep.delete else None)

    def _left_behind(self) -> str:
        st, spec = self.status, self.data.spec
        job, rule = marker(st.job), marker(st.rule)
        parts = []
        if sent(st.job):
            parts.append(f"download job {job.id or job.name}")
        if sent(st.rule):
            parts.append(f"Rucio rule {rule.id or rule.name}")
        deletes = spec.release_policy == ReleasePolicy.DELETE and spec.http is not None
        if deletes and st.location and sent(st.job):
            parts.append(f"file {st.location}")
        return ", ".join(parts)

    def _blocked(self) -> DataDecision:
        blocked = release_blocked(
            self._left_behind(),
            self.data.spec.platform_ref,
            abandon=self.obs.abandon,
            reason=self.status.reason,
            terminal=self._terminal,
            wording=BLOCKED_WORDS,
        )
        if blocked.released:
            return DataDecision(self.status, released=True, write=False, warning=blocked.warning)
        return self._hold(blocked.hold, warning=blocked.warning)

    @property
    def _terminal(self) -> bool:
        return (self.status.phase or Phase.INITIALIZING) in TERMINAL_PHASES

    def _hold(
        self,
        move: Move,
        *,
        jobs: tuple[str, ...] = (),
        rule: str | None = None,
        warning: str | None = None,
    ) -> DataDecision:
        """Release is not done: Releasing (a terminal status is kept, not written)."""
        if self._terminal:
            return DataDecision(
                self.status,
                delete_jobs=jobs,
                delete_rule=rule,
                requeue_after=move.requeue,
                warning=warning,
                write=False,
            )
        return self.result(move, delete_jobs=jobs, delete_rule=rule, warning=warning)


__all__ = [
    "ABANDON_ANNOTATION",
    "DEFAULT_DOWNLOADER_IMAGE",
    "JOB_TAG",
    "REFUSED",
    "DataDecision",
    "DataObservation",
    "RulePlan",
    "StorageView",
    "data_path",
    "decide_data",
    "download_job",
    "download_policy",
    "rule_deadline",
    "rule_policy",
]
