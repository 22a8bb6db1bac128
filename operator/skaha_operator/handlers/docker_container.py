"""DockerContainer handlers: check Skaha lists the image; hold release while a Compute uses it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from skaha_operator import GROUP, VERSION
from skaha_operator.domain.common import TERMINAL_PHASES, Phase
from skaha_operator.domain.docker_container import DockerContainer, DockerContainerStatus
from skaha_operator.handlers.common import drive, post_events, reconciling
from skaha_operator.handlers.compute import platform_view_of
from skaha_operator.handlers.state import OperatorState, state
from skaha_operator.k8s.api import SecretError
from skaha_operator.platform.errors import SkahaError
from skaha_operator.reconcile.checks import CheckDecision, ImageView, decide_docker_container

PLURAL = "dockercontainers"
KIND = "DockerContainer"


@kopf.on.resume(GROUP, VERSION, PLURAL, id="check")
@kopf.on.create(GROUP, VERSION, PLURAL, id="check")
async def on_docker_container(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Check the image until Available or Failed (in-memory wake-ups meanwhile)."""
    await drive(KIND, PLURAL, step_docker_container, body, state(memo))


@kopf.on.delete(GROUP, VERSION, PLURAL, id="release")
async def release_docker_container(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Reference tracking: the image stays while any live Compute runs it."""
    async with reconciling(KIND):
        st = state(memo)
        ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
        users = [
            c["metadata"]["name"]
            for c in await st.kube.list("computes", ns)
            if c.get("spec", {}).get("executableRef") == {"kind": KIND, "name": name}
            and (c.get("status") or {}).get("phase") not in TERMINAL_PHASES
            and not c["metadata"].get("deletionTimestamp")
        ]
        if users:
            raise kopf.TemporaryError(f"still used by Compute {', '.join(users)}", delay=10)


async def _images(
    st: OperatorState, ns: str, platform_ref: str, fresh: bool
) -> tuple[ImageView, ...] | None:
    """The platform's image list (shared for a few seconds); None when it cannot be read."""
    found = await st.platforms.get(ns, platform_ref)
    if found is None:
        return None
    try:
        listed = await st.platforms.images(ns, platform_ref, found[1], fresh=fresh)
    except (SkahaError, SecretError):
        return None
    return tuple(ImageView(i.id, tuple(i.types), i.digest) for i in listed)


async def step_docker_container(
    body: dict[str, Any], st: OperatorState
) -> CheckDecision[DockerContainerStatus]:
    """Observe the platform and its image list, decide, write."""
    dc = DockerContainer.model_validate(body)
    ns = str(dc.metadata["namespace"])
    platform_body = await st.cache.get("skahaplatforms", ns, dc.spec.platform_ref)
    platform = platform_view_of(platform_body)
    images: tuple[ImageView, ...] | None = None
    done = dc.status is not None and dc.status.phase in TERMINAL_PHASES
    ready = platform is not None and platform.ready and not done and platform_body is not None
    if ready:
        images = await _images(st, ns, dc.spec.platform_ref, fresh=False)
    decision = decide_docker_container(dc, platform, images, datetime.now(UTC), st.config.timing)
    if ready and images is not None and decision.status.phase == Phase.FAILED:
        # Only a listed image is taken from the shared list; a miss is asked again, fresh.
        images = await _images(st, ns, dc.spec.platform_ref, fresh=True)
        decision = decide_docker_container(
            dc, platform, images, datetime.now(UTC), st.config.timing
        )
    new = decision.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    await st.kube.write_status(PLURAL, body, new)
    s = decision.status
    post_events(body, KIND, decision.events, str(s.phase), s.reason or "")
    return decision
