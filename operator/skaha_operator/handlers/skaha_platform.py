"""SkahaPlatform handlers: probe /capabilities and /context; Ready with the API version and options.

A platform is never terminal: an unreachable or unauthorised one is re-probed with backoff and
recovers by itself. The token comes only from a Secret in the platform's namespace.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from skaha_operator import GROUP, VERSION
from skaha_operator.domain.skaha_platform import SkahaPlatform, SkahaPlatformStatus
from skaha_operator.handlers.common import (
    drive,
    post_events,
)
from skaha_operator.handlers.state import OperatorState, state
from skaha_operator.k8s.api import SecretError
from skaha_operator.platform.errors import AuthError, SkahaError, Unavailable
from skaha_operator.reconcile.checks import CheckDecision, ProbeResult, decide_platform

PLURAL = "skahaplatforms"
KIND = "SkahaPlatform"


@kopf.on.resume(GROUP, VERSION, PLURAL, id="probe")
@kopf.on.create(GROUP, VERSION, PLURAL, id="probe")
@kopf.on.update(GROUP, VERSION, PLURAL, id="probe", field="spec")
async def on_platform(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Probe until Ready; requeue with backoff while it is not."""
    await drive(KIND, PLURAL, step_platform, body, state(memo))


@kopf.timer(GROUP, VERSION, PLURAL, id="resync", interval=300.0, initial_delay=60.0)
async def resync_platform(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Re-probe now and then: options and API version can change under us."""
    await drive(KIND, PLURAL, step_platform, body, state(memo))


async def step_platform(
    body: dict[str, Any], st: OperatorState
) -> CheckDecision[SkahaPlatformStatus]:
    """Probe once, decide, write."""
    platform = SkahaPlatform.model_validate(body)
    probe = await probe_platform(platform, st)
    decision = decide_platform(platform, probe, datetime.now(UTC), st.config.timing)
    new = decision.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    await st.kube.write_status(PLURAL, body, new)
    s = decision.status
    post_events(body, KIND, decision.events, str(s.phase), s.reason or "")
    return decision


def _failed(reason: str, message: str) -> ProbeResult:
    return ProbeResult(
        ok=False,
        api_version=None,
        cores=(),
        cores_default=None,
        ram=(),
        ram_default=None,
        gpus=(),
        max_interactive=None,
        reason=reason,
        message=message,
    )


async def probe_platform(platform: SkahaPlatform, st: OperatorState) -> ProbeResult:
    """Capabilities (API version) and context (resource options), as a ProbeResult."""
    try:
        clients = await st.platforms.clients(platform)
        caps = await clients.skaha.capabilities()
        ctx = await clients.skaha.context()
    except SecretError as exc:
        return _failed("TokenSecretMissing", str(exc))
    except AuthError as exc:
        return _failed("Unauthorized", f"Skaha refused the token: {exc.message}")
    except Unavailable as exc:
        return _failed("PlatformUnreachable", f"Skaha did not answer: {exc.message}")
    except SkahaError as exc:
        return _failed("ProbeFailed", str(exc))
    return ProbeResult(
        ok=True,
        api_version=str(caps.api_version) if caps.api_version else None,
        cores=tuple(ctx.cores.options),
        cores_default=int(ctx.cores.default) if ctx.cores.default is not None else None,
        ram=tuple(ctx.memory_gb.options),
        ram_default=int(ctx.memory_gb.default) if ctx.memory_gb.default is not None else None,
        gpus=tuple(ctx.gpus.options),
        max_interactive=ctx.max_interactive_sessions,
        reason=None,
        message=None,
    )
