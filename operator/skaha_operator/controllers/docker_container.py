"""The DockerContainer controller: check Skaha lists the image; held while a Compute runs it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from skaha_operator.controllers.access import live_users
from skaha_operator.controllers.base import Outcome, tell, write
from skaha_operator.controllers.context import Context
from skaha_operator.controllers.platforms import platform_model
from skaha_operator.domain.common import TERMINAL_PHASES, Phase
from skaha_operator.domain.docker_container import DockerContainer
from skaha_operator.k8s.api import SecretError
from skaha_operator.platform.errors import SkahaError
from skaha_operator.reconcile.checks import (
    ImageView,
    decide_docker_container,
    decide_held_release,
    platform_view,
)


class DockerContainerController:
    """Drives DockerContainers."""

    kind = "DockerContainer"
    plural = "dockercontainers"

    async def step(self, body: dict[str, Any], ctx: Context) -> Outcome:
        """Observe the platform and its image list, decide, write; or release."""
        dc = DockerContainer.model_validate(body)
        ns, name = str(dc.metadata["namespace"]), str(dc.metadata["name"])
        if dc.metadata.get("deletionTimestamp"):
            ref = {"kind": self.kind, "name": name}
            users = await live_users(ctx, ns, "computes", lambda s: s.get("executableRef") == ref)
            return Outcome(*decide_held_release(users))
        platform_body = await ctx.cache.get("skahaplatforms", ns, dc.spec.platform_ref)
        platform = None
        if platform_body is not None:
            platform = platform_view(platform_model(platform_body))
        images: tuple[ImageView, ...] | None = None
        done = dc.status is not None and dc.status.phase in TERMINAL_PHASES
        ready = platform is not None and platform.ready and not done and platform_body is not None
        now = datetime.now(UTC)
        if ready:
            images = await _images(ctx, ns, dc.spec.platform_ref, fresh=False)
        decision = decide_docker_container(dc, platform, images, now, ctx.config.timing)
        if ready and images is not None and decision.status.phase == Phase.FAILED:
            # Only a listed image is taken from the shared list; a miss is asked again, fresh.
            images = await _images(ctx, ns, dc.spec.platform_ref, fresh=True)
            decision = decide_docker_container(dc, platform, images, now, ctx.config.timing)
        await write(ctx, self.plural, body, decision.status)
        tell(ctx, body, self.kind, decision.status, decision.events)
        return Outcome(decision.requeue_after)


async def _images(
    ctx: Context, ns: str, platform_ref: str, fresh: bool
) -> tuple[ImageView, ...] | None:
    """The platform's image list (shared for a few seconds); None when it cannot be read."""
    try:
        found = await ctx.platforms.get(ns, platform_ref)
        if found is None:
            return None
        listed = await ctx.platforms.images(ns, platform_ref, found[1], fresh=fresh)
    except (SkahaError, SecretError):  # the platform's own status says why (a Secret, a host)
        return None
    return tuple(ImageView(i.id, tuple(i.types), i.digest) for i in listed)
