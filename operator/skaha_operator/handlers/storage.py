"""Storage handlers: create the Cavern directory level by level; release it per policy.

Cavern has no mkdir -p and will not delete a non-empty container (skaha-api.md §7): creation PUTs
each level (409 on an existing one is success) and records the levels it created; a Delete
release removes the directory's tree children first, then the now-empty levels it created.
Retain (the default) keeps everything. A Storage in use by a live Compute, Data or
JupyterNotebook is not released until they are gone (reference tracking).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from skaha_operator import GROUP, VERSION
from skaha_operator.domain.common import ReleasePolicy
from skaha_operator.domain.storage import Storage, StorageStatus
from skaha_operator.handlers.common import (
    RESYNC_INTERVAL,
    drive,
    post_events,
    reconciling,
)
from skaha_operator.handlers.prepare import (
    cavern_layout,
    dump,
    live_users,
    platform_access,
    write_failed,
)
from skaha_operator.handlers.state import OperatorState, state
from skaha_operator.platform.clients import PlatformClients
from skaha_operator.platform.errors import NotFound, Rejected
from skaha_operator.reconcile.storage import (
    StorageAct,
    StorageDecision,
    StorageObservation,
    area_root,
    decide_storage,
    levels,
    node_of_mount,
)

PLURAL = "storages"
KIND = "Storage"


@kopf.on.resume(GROUP, VERSION, PLURAL, id="prepare")
@kopf.on.create(GROUP, VERSION, PLURAL, id="prepare")
async def on_storage(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Create the directory until Available or Failed."""
    await drive(KIND, PLURAL, step_storage, body, state(memo))


@kopf.timer(
    GROUP, VERSION, PLURAL, id="resync", interval=RESYNC_INTERVAL, initial_delay=RESYNC_INTERVAL / 2
)
async def resync_storage(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Level-based resync for lost events."""
    await drive(KIND, PLURAL, step_storage, body, state(memo))


@kopf.on.delete(GROUP, VERSION, PLURAL, id="release")
async def release_storage(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Wait until nothing uses the storage, then apply the release policy."""
    async with reconciling(KIND):
        st = state(memo)
        storage = Storage.model_validate(dict(body))
        ns, name = str(storage.metadata["namespace"]), str(storage.metadata["name"])
        users = await live_users(st, ns, "computes", lambda s: name in (s.get("storageRefs") or []))
        for plural in ("data", "jupyternotebooks"):
            users += await live_users(st, ns, plural, lambda s: s.get("storageRef") == name)
        if users:
            raise kopf.TemporaryError(f"still used by {', '.join(users)}", delay=10)
        status = storage.status
        if (
            storage.spec.release_policy != ReleasePolicy.DELETE
            or not status
            or not status.mount_path
        ):
            return  # Retain, or nothing was ever made
        access = await platform_access(st, ns, storage.spec.platform_ref)
        if access.clients is None:
            raise kopf.TemporaryError("platform unusable: cannot release yet", delay=10)
        await delete_storage_tree(access.clients, node_of_mount(status.mount_path), status)


async def delete_storage_tree(clients: PlatformClients, node: str, status: StorageStatus) -> None:
    """Remove the directory (children first), then the empty levels preparation created."""
    await clients.cavern.delete_tree(node)
    for created in reversed(status.created_paths or []):
        if created == node:
            continue
        try:
            await clients.cavern.delete(created)
        except Rejected:
            break  # not empty: something else lives there now; leave it and its parents


async def step_storage(body: dict[str, Any], st: OperatorState) -> StorageDecision:
    """Observe the platform and the directory, decide, create it if asked, write."""
    storage = Storage.model_validate(body)
    ns = str(storage.metadata["namespace"])
    access = await platform_access(st, ns, storage.spec.platform_ref)
    layout = cavern_layout(access.platform) if access.ready and access.platform else None
    exists: bool | None = None
    if layout is not None and access.clients is not None:
        node = f"{area_root(storage.spec, layout)}/{storage.spec.path.strip('/')}"
        try:
            await access.clients.cavern.get_node(node)
            exists = True
        except NotFound:
            exists = False
    obs = StorageObservation(datetime.now(UTC), layout, access.reason, exists)
    decision = decide_storage(storage, obs, st.config.timing)
    new = dump(decision.status)
    stored = await st.kube.write_status(PLURAL, body, new)
    if decision.action == StorageAct.MAKE_DIRS and layout is not None and access.clients:
        await _make(storage, layout, access.clients, stored or body, st)
    s = decision.status
    post_events(body, KIND, decision.events, str(s.phase), s.reason or "")
    return decision


async def _make(
    storage: Storage, layout: Any, clients: PlatformClients, body: dict[str, Any], st: OperatorState
) -> None:
    """PUT each level (409 is success) and record the levels this call created."""
    # The area root (a user's home, a project) is ensured, never recorded or released.
    created = list((storage.status.created_paths if storage.status else None) or [])
    try:
        await clients.cavern.make_dirs(area_root(storage.spec, layout))
        for level in levels(storage.spec, layout):
            if await clients.cavern.make_dir(level) and level not in created:
                created.append(level)
    except Rejected as exc:
        await write_failed(
            st, PLURAL, KIND, body, StorageStatus, "CavernRejected", f"Cavern refused: {exc}"
        )
        return
    if created:
        status = dict(body.get("status") or {})
        await st.kube.write_status(PLURAL, body, {**status, "createdPaths": created})
