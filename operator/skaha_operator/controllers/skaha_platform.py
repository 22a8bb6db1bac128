"""The SkahaPlatform controller: probe /capabilities and /context; hold what release needs.

A platform is never terminal: an unreachable or unauthorised one is re-probed with backoff and
recovers by itself. The token comes only from a Secret in the platform's namespace that is
labelled `skaha.broker.dev/credentials: "true"`, and only for URLs within the operator's allowed
hosts; otherwise the platform is Stalled (`CredentialsNotMarked`, `HostNotAllowed`) until a
person fixes it (docs/threat-model.md). While the
platform exists its Secrets carry our finalizer, and the platform itself is released only when
nothing in its namespace refers to it any more: so `kubectl delete namespace` or a GitOps prune
that removes everything at once still leaves the Computes, Data and Storages the platform and
token they need to release what they launched (docs/design.md §4.6).
"""

from __future__ import annotations

import ssl
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from skaha_operator.controllers.base import Outcome, tell, write
from skaha_operator.controllers.context import Context
from skaha_operator.controllers.credentials import credential_secret_names
from skaha_operator.domain.kinds import DEPENDENCY_KIND_NAMES, plural_of
from skaha_operator.domain.skaha_platform import SkahaPlatform
from skaha_operator.k8s.api import CredentialsNotMarked, SecretError
from skaha_operator.platform.errors import (
    AuthError,
    CredentialsRefused,
    HostNotAllowed,
    SkahaError,
    Unavailable,
)
from skaha_operator.reconcile.checks import ProbeResult, decide_held_release, decide_platform

# Kinds that name a platform in spec.platformRef (every part but the Session).
DEPENDENT_PLURALS = tuple(plural_of(k) for k in (*DEPENDENCY_KIND_NAMES, "Compute"))


class SkahaPlatformController:
    """Drives SkahaPlatforms."""

    kind = "SkahaPlatform"
    plural = "skahaplatforms"

    def __init__(self) -> None:
        # (namespace, Secret) this process has put its finalizer on: held once, not per probe.
        self._held: set[tuple[str, str]] = set()

    async def step(self, body: dict[str, Any], ctx: Context) -> Outcome:
        """Hold the Secrets, probe once, decide, write; or release once nothing uses it.

        The Secrets are held first: a probe of a platform that answers 503 retries for seconds,
        and whoever reads the status then may rely on the Secret being kept.
        """
        platform = SkahaPlatform.model_validate(body)
        if platform.metadata.get("deletionTimestamp"):
            users = await _dependents(platform, ctx)
            requeue, released = decide_held_release(users)
            if released:
                await self._hold_secrets(platform, ctx, hold=False)
            return Outcome(requeue, released)
        await self._hold_secrets(platform, ctx, hold=True)
        probe = await probe_platform(platform, ctx)
        decision = decide_platform(platform, probe, datetime.now(UTC), ctx.config.timing)
        await write(ctx, self.plural, body, decision.status)
        tell(ctx, body, self.kind, decision.status, decision.events)
        return Outcome(decision.requeue_after)

    async def _hold_secrets(self, platform: SkahaPlatform, ctx: Context, *, hold: bool) -> None:
        ns, name = str(platform.metadata["namespace"]), str(platform.metadata["name"])
        wanted = [(ns, secret) for secret in _secret_names(platform)]
        if hold:
            wanted = [w for w in wanted if w not in self._held]
            if not wanted:
                return
            # A step may run on a stale view of a platform that was just released: hold only
            # what a platform that still exists and is not being deleted names.
            fresh = await ctx.kube.get(self.plural, ns, name)
            if fresh is None or fresh.get("metadata", {}).get("deletionTimestamp"):
                return
        for key in wanted:
            await ctx.kube.hold_secret(key[0], key[1], ctx.config.finalizer, hold)
            (self._held.add if hold else self._held.discard)(key)


def _secret_names(platform: SkahaPlatform) -> list[str]:
    names = credential_secret_names(platform)
    rucio = platform.spec.rucio
    if rucio is not None and rucio.credentials_secret_ref is not None:
        names.append(rucio.credentials_secret_ref.name)
    return names


async def _dependents(platform: SkahaPlatform, ctx: Context) -> list[str]:
    """Objects in the platform's namespace that still name it (deleting ones included)."""
    ns, name = str(platform.metadata["namespace"]), str(platform.metadata["name"])
    found = []
    for plural in DEPENDENT_PLURALS:
        for obj in await ctx.kube.list(plural, ns):
            if (obj.get("spec") or {}).get("platformRef") == name:
                found.append(f"{obj.get('kind', plural)} {obj['metadata']['name']}")
    return found


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


async def probe_platform(platform: SkahaPlatform, ctx: Context) -> ProbeResult:
    """Capabilities (API version) and context (resource options), and the credential in use.

    Nothing is read or sent for a platform naming a host outside the allowed hosts, and
    nothing is sent with a Secret that is not marked for the operator (docs/threat-model.md).
    """
    probe = await _probe(platform, ctx)
    return replace(probe, credentials=ctx.platforms.credentials.view(platform))


async def _probe(platform: SkahaPlatform, ctx: Context) -> ProbeResult:
    refused = ctx.platforms.refusal(platform)
    if refused is not None:
        return _failed("HostNotAllowed", f"{refused}; no request was sent")
    try:
        clients = await ctx.platforms.clients(platform)
        caps = await clients.skaha.capabilities()
        skaha_ctx = await clients.skaha.context()
    except CredentialsNotMarked as exc:
        return _failed("CredentialsNotMarked", f"{exc}; no request was sent")
    except SecretError as exc:
        ca = platform.spec.ca_bundle_secret_ref
        if ca is not None and f"/{ca.name} " in f"{exc} ":
            return _failed("CaBundleSecretMissing", f"CA bundle: {exc}")
        return _failed("TokenSecretMissing", str(exc))
    except CredentialsRefused as exc:
        # The OIDC issuer's own `error: error_description` (platform/oidc.py), bounded, scrubbed.
        await ctx.platforms.token_changed(platform)
        return _failed("Unauthorized", f"OIDC issuer: {exc.message}")
    except ssl.SSLError as exc:  # the CA bundle is not PEM
        return _failed("CaBundleInvalid", f"the CA bundle cannot be loaded: {exc}")
    except HostNotAllowed as exc:
        return _failed("HostNotAllowed", f"{exc.message}; no request was sent")
    except AuthError as exc:
        # A person fixes this by putting a new token into the Secret: read it for the next probe.
        await ctx.platforms.token_changed(platform)
        return _failed("Unauthorized", f"Skaha refused the token: {exc.message}")
    except Unavailable as exc:
        who = "the OIDC issuer" if exc.service == "oidc" else "Skaha"
        return _failed("PlatformUnreachable", f"{who} did not answer: {exc.message}")
    except SkahaError as exc:
        return _failed("ProbeFailed", str(exc))
    return ProbeResult(
        ok=True,
        api_version=str(caps.api_version) if caps.api_version else None,
        cores=tuple(skaha_ctx.cores.options),
        cores_default=int(skaha_ctx.cores.default) if skaha_ctx.cores.default is not None else None,
        ram=tuple(skaha_ctx.memory_gb.options),
        ram_default=(
            int(skaha_ctx.memory_gb.default) if skaha_ctx.memory_gb.default is not None else None
        ),
        gpus=tuple(skaha_ctx.gpus.options),
        max_interactive=skaha_ctx.max_interactive_sessions,
        reason=None,
        message=None,
    )
