"""Compute handlers: observe the platform, dependencies and Skaha session; decide; act once; write.

The create/resume handler is the requeue loop (TemporaryError(delay=...) until a terminal phase);
a resync timer covers lost watch events (kopf#1178); the delete handler releases the Skaha session
behind the finalizer. The launch is written as a create-pending marker with a resourceVersion-
guarded write BEFORE the POST (design §4.3), so two operators can never both launch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import SecretStr

from skaha_operator import GROUP, VERSION
from skaha_operator.domain.common import Phase, SessionType
from skaha_operator.domain.compute import Compute
from skaha_operator.domain.docker_container import DockerContainer
from skaha_operator.domain.jupyter_notebook import JupyterNotebook
from skaha_operator.domain.skaha_platform import SkahaPlatform
from skaha_operator.handlers.common import RESYNC_INTERVAL, drive, post_events, reconciling
from skaha_operator.handlers.state import OperatorState, state
from skaha_operator.k8s.api import SecretError
from skaha_operator.platform.clients import PlatformClients
from skaha_operator.platform.errors import NotFound, Rejected, Unavailable
from skaha_operator.platform.skaha import RegistryAuth
from skaha_operator.platform.wire import SessionParams, SkahaSession
from skaha_operator.platform.wire import SessionType as WireType
from skaha_operator.reconcile.checks import platform_view
from skaha_operator.reconcile.compute import (
    Act,
    ComputeDecision,
    ComputeObservation,
    DependencyView,
    LaunchPlan,
    PlatformView,
    SkahaView,
    decide_compute,
    make_skaha_session_name,
)

PLURAL = "computes"
KIND = "Compute"
_PLURALS = {
    "DockerContainer": "dockercontainers",
    "JupyterNotebook": "jupyternotebooks",
    "Storage": "storages",
    "Data": "data",
}


@kopf.on.resume(GROUP, VERSION, PLURAL, id="reconcile")
@kopf.on.create(GROUP, VERSION, PLURAL, id="reconcile")
async def on_compute(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Drive one Compute a step further; in-memory wake-ups until it is terminal."""
    await drive(KIND, PLURAL, step_compute, body, state(memo))


@kopf.timer(
    GROUP, VERSION, PLURAL, id="resync", interval=RESYNC_INTERVAL, initial_delay=RESYNC_INTERVAL / 2
)
async def resync_compute(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Level-based resync (lost events, lost wake-ups): the same step."""
    await drive(KIND, PLURAL, step_compute, body, state(memo))


@kopf.on.delete(GROUP, VERSION, PLURAL, id="release")
async def release_compute(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Before the object goes: delete its Skaha session(s) and wait until Skaha has let go."""
    async with reconciling(KIND):
        compute = Compute.model_validate(dict(body))
        status = compute.status
        if status is None or status.launch_pending_since is None:
            return  # nothing was ever launched
        clients = await _clients(compute, state(memo))
        if clients is None:
            raise kopf.TemporaryError("platform missing: cannot release yet", delay=10)
        ids = (
            [status.session_id]
            if status.session_id
            else await _by_name(clients, status.session_name)
        )
        left = []
        for session_id in ids:
            try:
                seen = await clients.skaha.get_session(session_id)
            except NotFound:
                continue
            if seen.status != "Terminating":
                await clients.skaha.delete_session(session_id)
            left.append(session_id)
        if left:
            raise kopf.TemporaryError(f"waiting for Skaha to remove {', '.join(left)}", delay=2)


async def step_compute(body: dict[str, Any], st: OperatorState) -> ComputeDecision:
    """Observe, decide once, act at most once, write the status with a guarded write."""
    compute = Compute.model_validate(body)
    clients = await _clients(compute, st)
    obs = await observe_compute(compute, clients, st)
    decision = decide_compute(compute, obs, st.config.timing)
    new_status = decision.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    if decision.action == Act.LAUNCH and decision.launch is not None and clients is not None:
        stored = await st.kube.write_status(PLURAL, body, new_status, strict=True)
        await _launch(compute, decision.launch, clients, stored or body, st)
    elif decision.action == Act.DELETE and clients is not None and compute.status:
        await st.kube.write_status(PLURAL, body, new_status)
        if compute.status.session_id:
            await clients.skaha.delete_session(compute.status.session_id)
    elif decision.action == Act.RENEW and clients is not None and compute.status:
        if compute.status.session_id:
            await clients.skaha.renew(compute.status.session_id)
        await st.kube.write_status(PLURAL, body, new_status)
    else:
        await st.kube.write_status(PLURAL, body, new_status)
    s = decision.status
    post_events(body, KIND, decision.events, str(s.phase), s.reason or "")
    return decision


async def observe_compute(
    compute: Compute, clients: PlatformClients | None, st: OperatorState
) -> ComputeObservation:
    """Read only what the decision for the current phase needs."""
    now = datetime.now(UTC)
    status = compute.status
    phase = (status.phase if status else None) or Phase.INITIALIZING
    if phase in {Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED}:
        return ComputeObservation(now=now, platform=None)
    if status is None or status.launch_pending_since is None:
        ns = str(compute.metadata["namespace"])
        platform_body = await st.cache.get("skahaplatforms", ns, compute.spec.platform_ref)
        platform = platform_view_of(platform_body)
        deps = await _dependencies(compute, st)
        return ComputeObservation(now=now, platform=platform, dependencies=deps)
    if clients is None:
        return ComputeObservation(now=now, platform=None)
    if not status.session_id:
        found = await _by_name(clients, status.session_name)
        return ComputeObservation(now=now, platform=None, candidates=tuple(found))
    return ComputeObservation(
        now=now,
        platform=None,
        skaha=await _look(clients, status.session_id),
        open_path=await _notebook_path(compute, st),
    )


async def _notebook_path(compute: Compute, st: OperatorState) -> str | None:
    """The placed notebook a notebook session should open (its JupyterNotebook's status)."""
    ref = compute.spec.executable_ref
    if str(ref.kind) != "JupyterNotebook" or compute.spec.type != SessionType.NOTEBOOK:
        return None
    body = await st.cache.get(
        _PLURALS["JupyterNotebook"], str(compute.metadata["namespace"]), ref.name
    )
    path = ((body or {}).get("status") or {}).get("notebookPath")
    return path if isinstance(path, str) and path else None


def platform_view_of(body: dict[str, Any] | None) -> PlatformView | None:
    """The PlatformView of a SkahaPlatform body, or None when absent."""
    return None if body is None else platform_view(SkahaPlatform.model_validate(body))


async def _dependencies(compute: Compute, st: OperatorState) -> tuple[DependencyView, ...]:
    ns = str(compute.metadata["namespace"])
    spec = compute.spec
    wanted = [(str(spec.executable_ref.kind), spec.executable_ref.name)]
    wanted += [("Storage", n) for n in spec.storage_refs or []]
    wanted += [("Data", n) for n in spec.data_refs or []]
    views = []
    for kind, name in wanted:
        body = await st.cache.get(_PLURALS[kind], ns, name)
        status = (body or {}).get("status") or {}
        views.append(
            DependencyView(kind, name, status.get("phase") if body else None, status.get("reason"))
        )
    return tuple(views)


async def _look(clients: PlatformClients, session_id: str) -> SkahaView:
    try:
        seen = await clients.skaha.get_session(session_id)
    except NotFound:
        return SkahaView(gone=True)
    detail = None
    if seen.status in {"Failed", "Error"}:
        detail = await _failure_detail(clients, session_id)
    return _view(seen, detail)


def _view(seen: SkahaSession, detail: str | None) -> SkahaView:
    return SkahaView(
        status=str(seen.status),
        connect_url=seen.connect_url or None,
        start_time=seen.start_time,
        expiry_time=seen.expiry_time,
        detail=detail,
    )


async def _failure_detail(clients: PlatformClients, session_id: str) -> str | None:
    # The tail a scientist needs to act on: last log lines, else the pod events.
    try:
        logs = (await clients.skaha.logs(session_id)).strip()
        if not logs:
            logs = (await clients.skaha.events(session_id)).strip()
    except (Unavailable, Rejected):
        return None
    return "\n".join(logs.splitlines()[-10:])[-2000:] or None


async def _by_name(clients: PlatformClients, name: str | None) -> list[str]:
    if not name:
        return []
    return [s.id for s in await clients.skaha.list_sessions() if s.name == name.lower()]


async def _clients(compute: Compute, st: OperatorState) -> PlatformClients | None:
    ns = str(compute.metadata["namespace"])
    try:
        found = await st.platforms.get(ns, compute.spec.platform_ref)
    except SecretError:
        return None  # the platform's own status reports the missing Secret
    return None if found is None else found[1]


async def _launch(
    compute: Compute,
    plan: LaunchPlan,
    clients: PlatformClients,
    body: dict[str, Any],
    st: OperatorState,
) -> None:
    """POST the session (the marker is already stored) and record its id with a guarded write."""
    image, auth = await _image(compute, st)
    spec = compute.spec
    params = SessionParams(
        name=plan.name,
        image=image,
        type=WireType(str(plan.type)),
        cores=plan.cores,
        ram=plan.ram_gib,
        gpus=plan.gpus,
        cmd=spec.command,
        args=" ".join(spec.args) if spec.args else None,
        env=dict(spec.env or {}),
    )
    status = dict(body.get("status") or {})
    try:
        session_id = await clients.skaha.create_session(params, registry_auth=auth)
    except Rejected as exc:
        # Nothing was created: a plain failure a scientist can act on.
        failed = {
            **status,
            "phase": "Failed",
            "reason": "LaunchRejected",
            "message": f"Skaha refused the launch: {exc.message}",
        }
        await st.kube.write_status(PLURAL, body, failed)
        post_events(
            body, KIND, (f"Preparing->Failed: {failed['message']}",), "Failed", "LaunchRejected"
        )
        return
    except Unavailable as exc:
        # Maybe committed (timeout, 500 after commit): the marker stays, the next step adopts.
        raise kopf.TemporaryError(
            f"launch outcome unknown, will look up by name: {exc}", delay=2
        ) from None
    await st.kube.write_status(
        PLURAL,
        body,
        {
            **status,
            "sessionId": session_id,
            "reason": "Launched",
            "message": f"launched Skaha session {session_id}",
        },
    )


async def _image(compute: Compute, st: OperatorState) -> tuple[str, RegistryAuth | None]:
    ns = str(compute.metadata["namespace"])
    ref = compute.spec.executable_ref
    body = await st.cache.get(_PLURALS[str(ref.kind)], ns, ref.name)
    if body is None:
        raise kopf.TemporaryError(f"{ref.kind} {ref.name} vanished before launch", delay=5)
    if str(ref.kind) == "JupyterNotebook":
        return JupyterNotebook.model_validate(body).spec.image, None
    dc = DockerContainer.model_validate(body)
    auth = None
    if dc.spec.registry_secret_ref is not None:
        name = dc.spec.registry_secret_ref.name
        auth = RegistryAuth(
            username=await st.kube.read_secret(ns, name, "username"),
            secret=SecretStr(await st.kube.read_secret(ns, name, "password")),
        )
    return dc.spec.image, auth


__all__ = ["make_skaha_session_name", "on_compute", "release_compute", "resync_compute"]
