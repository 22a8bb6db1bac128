"""What the Storage, Data and JupyterNotebook handlers share: platform, storage and job I/O.

Observation helpers only read; `launch_job` POSTs a headless job whose create-pending marker is
already stored and records its id with a second guarded write (design §4.3). A launch whose
outcome is unknown leaves the marker in place, so the next step looks the job up by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf

from skaha_operator.domain.common import TERMINAL_PHASES, Phase
from skaha_operator.domain.skaha_platform import SkahaPlatform
from skaha_operator.handlers.common import post_events
from skaha_operator.handlers.state import OperatorState
from skaha_operator.k8s.api import SecretError
from skaha_operator.platform.clients import PlatformClients
from skaha_operator.platform.errors import NotFound, Rejected, Unavailable
from skaha_operator.platform.wire import SessionParams, SessionType
from skaha_operator.reconcile.checks import platform_view
from skaha_operator.reconcile.data import StorageView
from skaha_operator.reconcile.jobs import JobPlan, JobStatus, JobView, with_phase
from skaha_operator.reconcile.storage import CavernLayout

LOG_TAIL_LINES = 10
LOG_TAIL_CHARS = 2000


@dataclass(frozen=True)
class PlatformAccess:
    """A platform as a preparing part sees it: ready or why not, and its clients."""

    ready: bool
    reason: str | None
    platform: SkahaPlatform | None
    clients: PlatformClients | None


async def platform_access(st: OperatorState, namespace: str, name: str) -> PlatformAccess:
    """The platform's readiness (its probe status) and clients; never raises for a missing one."""
    body = await st.cache.get("skahaplatforms", namespace, name)
    if body is None:
        return PlatformAccess(False, "NotFound", None, None)
    platform = SkahaPlatform.model_validate(body)
    view = platform_view(platform)
    try:
        found = await st.platforms.get(namespace, name)
    except SecretError:
        return PlatformAccess(False, "TokenSecretMissing", platform, None)
    clients = found[1] if found is not None else None
    ready = view.ready and clients is not None
    return PlatformAccess(ready, view.reason, platform, clients)


def cavern_layout(platform: SkahaPlatform) -> CavernLayout:
    """The Cavern user, top-level directories and node authority of a platform."""
    cavern = platform.spec.cavern
    prefix = cavern.node_uri_prefix
    return CavernLayout(
        user=cavern.user,
        home_directory=cavern.home_directory,
        projects_directory=cavern.projects_directory,
        **({"authority": prefix.removeprefix("vos://")} if prefix else {}),
    )


async def storage_view(st: OperatorState, namespace: str, name: str) -> StorageView | None:
    """The Storage a part goes into, or None when it does not exist."""
    body = await st.cache.get("storages", namespace, name)
    if body is None:
        return None
    status = body.get("status") or {}
    return StorageView(name, status.get("phase"), status.get("mountPath"), status.get("reason"))


async def observe_job(clients: PlatformClients | None, job: JobStatus) -> JobView | None:
    """The job by id, or the candidates by name when only the marker is stored."""
    if clients is None or job.job_pending_since is None:
        return None
    if not job.job_session_id:
        name = (job.job_session_name or "").lower()
        listed = await clients.skaha.list_sessions()
        return JobView(candidates=tuple(s.id for s in listed if name and s.name == name))
    try:
        seen = await clients.skaha.get_session(job.job_session_id)
    except NotFound:
        return JobView(gone=True)
    status = str(seen.status)
    detail = None
    if status in {"Failed", "Error"}:
        detail = await log_tail(clients, job.job_session_id)
    return JobView(status=status, detail=detail)


async def log_tail(clients: PlatformClients, session_id: str) -> str | None:
    """The last log lines of a job (its pod events when the log is empty)."""
    try:
        text = (await clients.skaha.logs(session_id)).strip()
        if not text:
            text = (await clients.skaha.events(session_id)).strip()
    except (Unavailable, Rejected):
        return None
    return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])[-LOG_TAIL_CHARS:] or None


async def launch_job(
    st: OperatorState,
    plural: str,
    kind: str,
    body: dict[str, Any],
    clients: PlatformClients,
    plan: JobPlan,
    status_type: type[Any],
) -> None:
    """POST the headless job (its marker is stored in `body`) and record its id."""
    params = SessionParams(
        name=plan.name,
        image=plan.image,
        type=SessionType.HEADLESS,
        cmd=plan.cmd,
        args=plan.args,
        env=plan.env,
    )
    status = dict(body.get("status") or {})
    try:
        session_id = await clients.skaha.create_session(params)
    except Rejected as exc:
        # Nothing was created: a plain failure a scientist can act on.
        await write_failed(
            st, plural, kind, body, status_type, "JobRejected", f"Skaha refused the job: {exc}"
        )
        return
    except Unavailable as exc:
        raise kopf.TemporaryError(
            f"job launch outcome unknown, will look up by name: {exc}", delay=2
        ) from None
    await st.kube.write_status(
        plural,
        body,
        {**status, "jobSessionId": session_id, "message": f"job {plan.name} is {session_id}"},
    )


async def write_failed(
    st: OperatorState,
    plural: str,
    kind: str,
    body: dict[str, Any],
    status_type: type[Any],
    reason: str,
    message: str,
) -> None:
    """Write Failed with a reason after an action was refused (the decision could not know)."""
    current = status_type.model_validate(body.get("status") or {})
    gen = (body.get("metadata") or {}).get("generation")
    new, events = with_phase(current, Phase.FAILED, reason, message, datetime.now(UTC), gen)
    await st.kube.write_status(
        plural, body, new.model_dump(by_alias=True, exclude_none=True, mode="json")
    )
    post_events(body, kind, events, str(Phase.FAILED), reason)


async def stop_job(clients: PlatformClients, job: JobStatus) -> bool:
    """Delete the job if it still runs; True while Skaha has not let go of it yet."""
    ids = [job.job_session_id] if job.job_session_id else []
    if not ids and job.job_pending_since is not None and job.job_session_name:
        name = job.job_session_name.lower()
        ids = [s.id for s in await clients.skaha.list_sessions() if s.name == name]
    busy = False
    for session_id in ids:
        try:
            seen = await clients.skaha.get_session(session_id)
        except NotFound:
            continue
        if str(seen.status) in {"Pending", "Running"}:
            await clients.skaha.delete_session(session_id)
            busy = True
        elif str(seen.status) == "Terminating":
            busy = True
    return busy


async def live_users(st: OperatorState, namespace: str, plural: str, match: Any) -> list[str]:
    """Names of live objects of `plural` for which `match(spec)` holds (reference tracking)."""
    return [
        o["metadata"]["name"]
        for o in await st.kube.list(plural, namespace)
        if match(o.get("spec") or {})
        and (o.get("status") or {}).get("phase") not in TERMINAL_PHASES
        and not o["metadata"].get("deletionTimestamp")
    ]


def dump(status: Any) -> dict[str, Any]:
    """A status model as the API server stores it."""
    out: dict[str, Any] = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    return out


__all__ = [
    "PlatformAccess",
    "cavern_layout",
    "dump",
    "launch_job",
    "live_users",
    "log_tail",
    "observe_job",
    "platform_access",
    "stop_job",
    "storage_view",
    "write_failed",
]
