"""Checks without a launch: the DockerContainer image check and the SkahaPlatform probe.

Pure: imports neither kopf, kubernetes nor httpx. The handler lists Skaha's images or probes
`/capabilities` and `/context`, then calls one `decide_*` here and writes the status it returns.
Facts: the image list and context payloads (docs/platform-api.md §4), image normalisation to
`:latest` (§6), private images and `x-skaha-registry-auth` (§2), API versions (§1);
docs/design.md §2.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from skaha_operator.domain.common import Phase, SessionType
from skaha_operator.domain.docker_container import DockerContainer, DockerContainerStatus
from skaha_operator.domain.skaha_platform import (
    ResourceOptions,
    SkahaApiVersion,
    SkahaPlatform,
    SkahaPlatformStatus,
)
from skaha_operator.domain.status import PhasedStatus
from skaha_operator.reconcile.compute import PlatformView
from skaha_operator.reconcile.conditions import READY, condition_status, summary_conditions
from skaha_operator.reconcile.timing import Timing, poll_delay
from skaha_operator.reconcile.transitions import CHECK_TRANSITIONS, check_transition

S = TypeVar("S", bound=PhasedStatus)

# Probe failures only a human can fix (a wrong token, a missing Secret): also Stalled (kstatus).
NEEDS_HUMAN = frozenset(
    {
        "Unauthorized",
        "Forbidden",
        "SecretNotFound",
        "TokenSecretMissing",
        "UnsupportedApiVersion",
        "CaBundleSecretMissing",
        "CaBundleInvalid",
    }
)


@dataclass(frozen=True)
class CheckDecision(Generic[S]):
    """The next status and when to look again (None: only on the next event)."""

    status: S
    requeue_after: float | None = None
    events: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageView:
    """One entry of Skaha's `GET /v1/image` (docs/platform-api.md §4)."""

    id: str
    types: tuple[str, ...]
    digest: str | None


@dataclass(frozen=True)
class ProbeResult:
    """What a probe of `/capabilities` and `/context` found; `ok` False with a reason otherwise."""

    ok: bool
    api_version: str | None = None
    cores: tuple[int, ...] = ()
    cores_default: int | None = None
    ram: tuple[int, ...] = ()
    ram_default: int | None = None
    gpus: tuple[int, ...] = ()
    max_interactive: int | None = None
    reason: str | None = None
    message: str | None = None


def normalise_image(image: str) -> str:
    """The image id as Skaha lists it: a missing tag means `:latest` (docs/platform-api.md §6)."""
    last = image.rsplit("/", 1)[-1]
    return image if ":" in last else f"{image}:latest"


def registry_host(image: str) -> str | None:
    """The registry host of an image reference, None for a short name (`skaha/astroml:latest`).

    Docker's rule: the first path component is a host when it has a dot or a port, or is
    `localhost`; otherwise the reference is relative to a default registry.
    """
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def expand_short_name(image: str, listed_ids: list[str]) -> list[str]:
    """The listed full names a short name stands for: `<host>/<image>` for every host that lists
    it (a full name stands for itself, with its tag)."""
    if registry_host(image) is not None:
        return [normalise_image(image)]
    wanted = normalise_image(image)
    found = {
        normalise_image(i)
        for i in listed_ids
        if registry_host(i) is not None and normalise_image(i).split("/", 1)[1] == wanted
    }
    return sorted(found)


def _with_phase(
    status: S,
    phase: Phase,
    reason: str,
    message: str | None,
    now: datetime,
    generation: int | None,
    *,
    stalled: bool = False,
    reenter: bool = False,
    changes: dict[str, object] | None = None,
) -> tuple[S, tuple[str, ...]]:
    """`status` moved to `phase` with conditions, phase time and observedGeneration set."""
    old = status.phase or Phase.INITIALIZING
    conditions = summary_conditions(
        list(status.conditions or []), phase, reason, message, now, generation, stalled=stalled
    )
    times = dict(status.phase_times or {})
    if phase != old:
        # A check's phase may come back (a platform recovers): `reenter` restarts its clock.
        if reenter:
            times[phase] = now
        else:
            times.setdefault(phase, now)
    new = status.model_copy(
        update={
            "phase": phase,
            "reason": reason,
            "message": message,
            "conditions": conditions,
            "observed_generation": generation,
            "phase_times": times,
            **(changes or {}),
        }
    )
    events = (f"{old}->{phase}: {reason}",) if phase != old else ()
    return new, events


# -- DockerContainer ---------------------------------------------------------------------------


def decide_docker_container(
    dc: DockerContainer,
    platform: PlatformView | None,
    images: tuple[ImageView, ...] | None,
    now: datetime,
    timing: Timing,
) -> CheckDecision[DockerContainerStatus]:
    """Available when Skaha lists the image for each requested type (and digest); else Failed."""
    status = dc.status or DockerContainerStatus()
    old = status.phase or Phase.INITIALIZING
    generation = dc.metadata.get("generation")
    if old in {Phase.RELEASING, Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED}:
        return CheckDecision(status)  # release is the handler's (reference-tracked) business
    if old == Phase.AVAILABLE and status.observed_generation == generation:
        return CheckDecision(status)  # checked for this spec; nothing to poll

    def result(
        phase: Phase,
        reason: str,
        message: str,
        requeue: float | None = None,
        changes: dict[str, object] | None = None,
    ) -> CheckDecision[DockerContainerStatus]:
        check_transition(CHECK_TRANSITIONS, old, phase)
        new, events = _with_phase(status, phase, reason, message, now, generation, changes=changes)
        return CheckDecision(new, requeue, events)

    spec = dc.spec
    image = normalise_image(spec.image)
    # A short name (`skaha/astroml:latest`, as canfar users write it) stands for the one listed
    # image with that path under a registry host; two hosts listing it is ambiguous.
    full = expand_short_name(spec.image, [i.id for i in images or ()])
    if registry_host(spec.image) is None and len(full) > 1:
        return result(
            Phase.FAILED,
            "AmbiguousImage",
            f"image {spec.image} is listed under more than one registry: write one of "
            + ", ".join(full),
        )
    if len(full) == 1:
        image = full[0]
    listed = [i for i in images or () if normalise_image(i.id) == image]
    if not listed and spec.registry_secret_ref is not None:
        # Skaha accepts an unlisted image when the launch carries registry credentials (§2).
        return result(
            Phase.AVAILABLE,
            "PrivateImage",
            f"image {spec.image} accepted without listing: credentials from Secret "
            f"{spec.registry_secret_ref.name}",
        )
    if platform is None or not platform.ready or images is None:
        if old == Phase.AVAILABLE:
            # A spec change re-checks, but an unready platform is no reason to step back.
            return CheckDecision(status, timing.dependency_recheck)
        why = f" ({platform.reason})" if platform is not None and platform.reason else ""
        return result(
            Phase.PREPARING,
            "WaitingForPlatform",
            f"waiting for SkahaPlatform {spec.platform_ref}{why}",
            requeue=timing.dependency_recheck,
        )
    types = sorted({t for i in listed for t in i.types})
    wanted = [str(t) for t in spec.session_types or []]
    missing = [t for t in wanted if t not in types]
    if not listed or missing:
        hint = ""
        if not listed and registry_host(spec.image) is None:
            hosts = sorted({h for i in images or () if (h := registry_host(i.id))})
            example = f"{hosts[0]}/{image}" if hosts else f"<registry host>/{image}"
            hint = f"; write the full name with its registry host, e.g. {example}"
        return result(
            Phase.FAILED,
            "ImageNotFound",
            f"Skaha does not list image {spec.image}"
            + (f" for session type {', '.join(missing)}" if listed else "")
            + (f" (listed for {', '.join(types)})" if listed and types else "")
            + hint,
        )
    digests = {i.digest for i in listed if i.digest}
    digest = next(iter(sorted(digests)), None)
    if spec.digest is not None and spec.digest not in digests:
        return result(
            Phase.FAILED,
            "DigestMismatch",
            f"image {spec.image}: expected digest {spec.digest}, Skaha lists "
            + (", ".join(sorted(digests)) if digests else "no digest"),
        )
    known = [SessionType(t) for t in types if t in set(SessionType)]
    expanded = image if image != normalise_image(spec.image) else None
    return result(
        Phase.AVAILABLE,
        "ImageListed",
        f"image {spec.image} is listed by Skaha"
        + (f" as {expanded}" if expanded else "")
        + f" for {', '.join(types) or 'no session type'}",
        changes={
            "resolved_digest": spec.digest or digest,
            "listed_types": known or None,
            "resolved_image": expanded or normalise_image(spec.image),
        },
    )


# -- SkahaPlatform -----------------------------------------------------------------------------


CREDENTIALS_RECHECK = 5.0  # seconds between probes while the platform refuses our token


def decide_platform(
    platform: SkahaPlatform, probe: ProbeResult, now: datetime, timing: Timing
) -> CheckDecision[SkahaPlatformStatus]:
    """Available and Ready with the API version and options; Preparing (not terminal) on failure."""
    # No transition table: a platform has no lifecycle, it reports the last probe (domain docs).
    status = platform.status or SkahaPlatformStatus()
    generation = platform.metadata.get("generation")
    version = platform.spec.skaha.api_version or _api_version(probe.api_version)
    if probe.ok and version is None:
        probe = ProbeResult(
            ok=False,
            reason="UnsupportedApiVersion",
            message=f"Skaha reports API version {probe.api_version!r}; supported: v0, v1",
        )
    if not probe.ok:
        reason = probe.reason or "PlatformUnreachable"
        old = status.phase or Phase.INITIALIZING
        # Back off while the outage lasts: the clock starts when the platform entered Preparing.
        since = (status.phase_times or {}).get(Phase.PREPARING) if old == Phase.PREPARING else None
        elapsed = (now - since).total_seconds() if since else 0.0
        new, events = _with_phase(
            status,
            Phase.PREPARING,
            reason,
            probe.message or f"cannot use Skaha at {platform.spec.skaha.url}",
            now,
            generation,
            stalled=reason in NEEDS_HUMAN,
            reenter=True,
            changes={"last_probe_time": now},
        )
        delay = poll_delay(elapsed, timing)
        if reason in NEEDS_HUMAN:
            # A fixed or rotated token is noticed by the next probe: keep it near.
            delay = min(delay, CREDENTIALS_RECHECK)
        return CheckDecision(new, delay, events)
    new, events = _with_phase(
        status,
        Phase.AVAILABLE,
        "PlatformReady",
        f"Skaha API {version} at {platform.spec.skaha.url}",
        now,
        generation,
        reenter=True,
        changes={
            "api_version": version,
            "cores": _options(probe.cores, probe.cores_default),
            "memory_gb": _options(probe.ram, probe.ram_default),
            "gpus": _options(probe.gpus, None),
            "max_interactive_sessions": probe.max_interactive,
            "last_probe_time": now,
        },
    )
    # Re-probe now and then: /context may change and a token may be revoked.
    return CheckDecision(new, timing.resync, events)


def platform_view(platform: SkahaPlatform) -> PlatformView:
    """What a Compute needs of its platform: readiness and the resource options from /context."""
    status = platform.status
    generation = platform.metadata.get("generation")
    if status is None:
        return PlatformView(ready=False, reason="NotYetProbed")
    if generation is not None and status.observed_generation != generation:
        return PlatformView(ready=False, reason="NotYetProbed")
    ready = status.phase == Phase.AVAILABLE and condition_status(status.conditions, READY) is True
    return PlatformView(
        ready=ready,
        cores_options=tuple(status.cores.options or ()) if status.cores else (),
        ram_options=tuple(status.memory_gb.options or ()) if status.memory_gb else (),
        reason=None if ready else (status.reason or "NotReady"),
        max_interactive=status.max_interactive_sessions,
    )


def _api_version(text: str | None) -> SkahaApiVersion | None:
    return SkahaApiVersion(text) if text in set(SkahaApiVersion) else None


def _options(options: tuple[int, ...], default: int | None) -> ResourceOptions | None:
    if not options and default is None:
        return None
    return ResourceOptions(default=default, options=list(options) or None)


def decide_held_release(users: list[str]) -> tuple[float | None, bool]:
    """Release of an object others use (an image check, a platform): (requeue, released).

    Nothing external to delete; it is held while any user remains so that theirs can release.
    """
    if users:
        return 10.0, False
    return None, True


__all__ = [
    "CheckDecision",
    "ImageView",
    "ProbeResult",
    "decide_docker_container",
    "decide_held_release",
    "decide_platform",
    "expand_short_name",
    "normalise_image",
    "platform_view",
    "registry_host",
]
