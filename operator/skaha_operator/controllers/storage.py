"""The Storage controller: create the Cavern directory level by level; release what it made.

Cavern has no mkdir -p and will not delete a non-empty container (docs/platform-api.md §7):
creation PUTs each level (409 on an existing one is success) and records the levels it created;
release (reconcile/storage.py `decide_storage_release`) removes only those, never a directory
that existed before. A Storage used by a live Compute, Data or JupyterNotebook waits for them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from skaha_operator.controllers.access import cavern_layout, live_users, platform_access
from skaha_operator.controllers.base import Outcome, tell, write
from skaha_operator.controllers.context import Context
from skaha_operator.domain.storage import Storage
from skaha_operator.platform.clients import PlatformClients
from skaha_operator.platform.errors import AuthError, NotFound, Rejected, Unavailable
from skaha_operator.reconcile.storage import (
    CavernLayout,
    StorageAct,
    StorageObservation,
    StorageRelease,
    area_root,
    decide_storage,
    decide_storage_release,
    levels,
    storage_failed,
)


class StorageController:
    """Drives Storages."""

    kind = "Storage"
    plural = "storages"

    async def step(self, body: dict[str, Any], ctx: Context) -> Outcome:
        """Observe the platform and the directory, decide, create it if asked, write."""
        storage = Storage.model_validate(body)
        ns = str(storage.metadata["namespace"])
        access = await platform_access(ctx, ns, storage.spec.platform_ref)
        if storage.metadata.get("deletionTimestamp"):
            users = await _users(ctx, ns, str(storage.metadata["name"]))
            shared = _same_location(ctx, storage)

            def decide(reachable: bool) -> StorageRelease:
                return decide_storage_release(
                    storage, users, reachable, access.abandon(body), shared
                )

            release = decide(access.clients is not None)
            if access.clients is not None:
                try:
                    await _remove(access.clients, release)
                except (Unavailable, AuthError):
                    if not access.gives_up(body):
                        raise
                    release = decide(False)  # blocked, or abandoned: said, never retried blind
            if release.warning:
                ctx.post(
                    body,
                    "Warning",
                    "ReleaseBlocked" if not release.released else "Abandoned",
                    release.warning,
                )
            return Outcome(release.requeue_after, release.released)
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
        decision = decide_storage(storage, obs, ctx.config.timing)
        stored = await write(ctx, self.plural, body, decision.status)
        if decision.action == StorageAct.MAKE_DIRS and layout is not None and access.clients:
            await self._make(storage, layout, access.clients, stored, ctx)
        tell(ctx, body, self.kind, decision.status, decision.events)
        return Outcome(decision.requeue_after)

    async def _make(
        self,
        storage: Storage,
        layout: CavernLayout,
        clients: PlatformClients,
        body: dict[str, Any],
        ctx: Context,
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
            failed = storage_failed(
                Storage.model_validate(body), "CavernRejected", f"Cavern refused: {exc}",
                datetime.now(UTC),
            )  # fmt: skip
            await write(ctx, self.plural, body, failed)
            tell(ctx, body, self.kind, failed, (f"Preparing->Failed: Cavern refused: {exc}",))
            return
        if created:
            current = Storage.model_validate(body).status
            assert current is not None
            await write(
                ctx, self.plural, body, current.model_copy(update={"created_paths": created})
            )


def _same_location(ctx: Context, storage: Storage) -> list[str]:
    """Other Storages, in any watched namespace, on the same Cavern location (vos URI)."""
    uri = storage.status.uri if storage.status else None
    uid = storage.metadata.get("uid")
    if not uri:
        return []
    return [
        f"Storage {o['metadata']['namespace']}/{o['metadata']['name']}"
        for o in ctx.cache.each("storages")
        if o["metadata"].get("uid") != uid and (o.get("status") or {}).get("uri") == uri
    ]


async def _users(ctx: Context, ns: str, name: str) -> list[str]:
    users = await live_users(ctx, ns, "computes", lambda s: name in (s.get("storageRefs") or []))
    for plural in ("data", "jupyternotebooks"):
        users += await live_users(ctx, ns, plural, lambda s: s.get("storageRef") == name)
    return users


async def _remove(clients: PlatformClients, release: StorageRelease) -> None:
    """Empty a leaf this Storage created, then remove the levels it created, deepest first."""
    if release.delete_tree:
        await clients.cavern.delete_tree(release.delete_tree)
    for level in release.delete_levels:
        try:
            await clients.cavern.delete(level)
        except NotFound:
            continue
        except Rejected:
            break  # not empty: something else lives there now; leave it and its parents
