"""What the preparing controllers (Storage, Data, JupyterNotebook, DockerContainer) share:
the platform as they see it, the Storage a part goes into, and who still uses an object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from skaha_operator.controllers.context import Context, abandoned
from skaha_operator.controllers.platforms import platform_model
from skaha_operator.domain.common import TERMINAL_PHASES
from skaha_operator.domain.skaha_platform import SkahaPlatform
from skaha_operator.k8s.api import CredentialsNotMarked, SecretError
from skaha_operator.platform.clients import PlatformClients
from skaha_operator.reconcile.checks import platform_view
from skaha_operator.reconcile.data import StorageView
from skaha_operator.reconcile.storage import CavernLayout


@dataclass(frozen=True)
class PlatformAccess:
    """A platform as a preparing part sees it: ready or why not, and its clients."""

    ready: bool
    reason: str | None
    platform: SkahaPlatform | None
    clients: PlatformClients | None
    body: dict[str, Any] | None = None

    def abandon(self, body: dict[str, Any]) -> bool:
        """Whether a person asked to leave this object's external resources behind."""
        return abandoned(body, self.body)

    def gives_up(self, body: dict[str, Any]) -> bool:
        """A platform call failed while `body` is released: True when the release should say
        it is blocked (or abandon) instead of retrying — the platform's own probe says it is
        unusable (gone, refusing our token), or a person abandoned. A passing fault on a ready
        platform is retried (docs/lifecycle.md, "Release")."""
        return self.abandon(body) or not self.ready


async def platform_access(ctx: Context, namespace: str, name: str) -> PlatformAccess:
    """The platform's readiness (its probe status) and clients; never raises for a missing one."""
    body = await ctx.cache.get("skahaplatforms", namespace, name)
    if body is None:
        return PlatformAccess(False, "NotFound", None, None)
    platform = platform_model(body)
    view = platform_view(platform)
    try:
        clients = await ctx.platforms.clients(platform)
    except CredentialsNotMarked:
        return PlatformAccess(False, "CredentialsNotMarked", platform, None, body)
    except SecretError:
        return PlatformAccess(False, "TokenSecretMissing", platform, None, body)
    return PlatformAccess(view.ready, view.reason, platform, clients, body)


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


async def storage_view(ctx: Context, namespace: str, name: str) -> StorageView | None:
    """The Storage a part goes into, or None when it does not exist."""
    body = await ctx.cache.get("storages", namespace, name)
    if body is None:
        return None
    status = body.get("status") or {}
    return StorageView(name, status.get("phase"), status.get("mountPath"), status.get("reason"))


async def live_users(ctx: Context, namespace: str, plural: str, match: Any) -> list[str]:
    """Names of live objects of `plural` for which `match(spec)` holds (reference tracking)."""
    return [
        o["metadata"]["name"]
        for o in await ctx.kube.list(plural, namespace)
        if match(o.get("spec") or {})
        and (o.get("status") or {}).get("phase") not in TERMINAL_PHASES
        and not o["metadata"].get("deletionTimestamp")
    ]
