"""The DockerContainer image check and the SkahaPlatform probe decision, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from skaha_operator.domain.common import Phase, SessionType
from skaha_operator.domain.docker_container import DockerContainer
from skaha_operator.domain.skaha_platform import (
    ResourceOptions,
    SkahaApiVersion,
    SkahaPlatform,
)
from skaha_operator.reconcile.checks import (
    ImageView,
    ProbeResult,
    decide_docker_container,
    decide_platform,
    normalise_image,
    platform_view,
    registry_host,
)
from skaha_operator.reconcile.compute import PlatformView
from skaha_operator.reconcile.conditions import condition_status
from skaha_operator.reconcile.timing import Timing

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
T = Timing()
IMAGE = "images.canfar.net/skaha/astroml:latest"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
READY = PlatformView(ready=True)
LISTING = (
    ImageView(IMAGE, ("notebook", "headless"), D1),
    ImageView("images.canfar.net/skaha/other:1.0", ("desktop-app",), None),
)


def container(status: dict[str, Any] | None = None, **spec: Any) -> DockerContainer:
    return DockerContainer.model_validate(
        {
            "metadata": {"name": "img", "namespace": "ns", "generation": 1},
            "spec": {"platformRef": "local", "image": IMAGE, **spec},
            "status": status,
        }
    )


@pytest.mark.parametrize(
    ("spec", "images", "phase", "reason", "message"),
    [
        (
            {},
            LISTING,
            Phase.AVAILABLE,
            "ImageListed",
            f"image {IMAGE} is listed by Skaha for headless, notebook",
        ),
        ({"sessionTypes": ["notebook"]}, LISTING, Phase.AVAILABLE, "ImageListed", None),
        (
            {"sessionTypes": ["notebook", "headless"], "digest": D1},
            LISTING,
            Phase.AVAILABLE,
            "ImageListed",
            None,
        ),
        (
            {"sessionTypes": ["notebook", "carta"]},
            LISTING,
            Phase.FAILED,
            "ImageNotFound",
            f"Skaha does not list image {IMAGE} for session type carta "
            "(listed for headless, notebook)",
        ),
        (
            {"image": "images.canfar.net/skaha/missing:1"},
            LISTING,
            Phase.FAILED,
            "ImageNotFound",
            "Skaha does not list image images.canfar.net/skaha/missing:1",
        ),
        (
            {"digest": D2},
            LISTING,
            Phase.FAILED,
            "DigestMismatch",
            f"image {IMAGE}: expected digest {D2}, Skaha lists {D1}",
        ),
        (
            {"image": "images.canfar.net/skaha/other:1.0", "digest": D2},
            LISTING,
            Phase.FAILED,
            "DigestMismatch",
            f"image images.canfar.net/skaha/other:1.0: expected digest {D2}, Skaha lists no digest",
        ),
        # No tag means :latest, as Skaha and the canfar client read it.
        (
            {"image": "images.canfar.net/skaha/astroml"},
            LISTING,
            Phase.AVAILABLE,
            "ImageListed",
            None,
        ),
        # A private image with credentials is accepted without listing.
        (
            {"image": "images.canfar.net/private/x:2", "registrySecretRef": {"name": "reg"}},
            LISTING,
            Phase.AVAILABLE,
            "PrivateImage",
            "image images.canfar.net/private/x:2 accepted without listing: "
            "credentials from Secret reg",
        ),
        (
            {"image": "images.canfar.net/private/x:2", "registrySecretRef": {"name": "reg"}},
            None,
            Phase.AVAILABLE,
            "PrivateImage",
            None,
        ),
    ],
)
def test_image_check(
    spec: dict[str, Any],
    images: tuple[ImageView, ...] | None,
    phase: Phase,
    reason: str,
    message: str | None,
) -> None:
    d = decide_docker_container(container(**spec), READY, images, NOW, T)
    assert (d.status.phase, d.status.reason) == (phase, reason)
    if message is not None:
        assert d.status.message == message
    assert d.requeue_after is None  # settled: nothing to poll
    assert d.events == (f"Initializing->{phase}: {reason}",)
    assert condition_status(d.status.conditions, "Ready") is (phase == Phase.AVAILABLE)
    assert condition_status(d.status.conditions, "Stalled") is (
        True if phase == Phase.FAILED else None  # abnormal-true: absent unless True
    )


def test_image_listed_records_digest_and_types() -> None:
    d = decide_docker_container(container(), READY, LISTING, NOW, T)
    assert d.status.resolved_digest == D1
    assert d.status.listed_types == [SessionType.HEADLESS, SessionType.NOTEBOOK]
    assert d.status.observed_generation == 1
    assert d.status.phase_times == {Phase.AVAILABLE: NOW}


@pytest.mark.parametrize(
    ("platform", "images", "message"),
    [
        (None, None, "waiting for SkahaPlatform local"),
        (
            PlatformView(ready=False, reason="Unauthorized"),
            None,
            "waiting for SkahaPlatform local (Unauthorized)",
        ),
        (READY, None, "waiting for SkahaPlatform local"),
    ],
)
def test_image_check_waits_for_the_platform(
    platform: PlatformView | None, images: tuple[ImageView, ...] | None, message: str
) -> None:
    d = decide_docker_container(container(), platform, images, NOW, T)
    assert (d.status.phase, d.status.reason, d.status.message) == (
        Phase.PREPARING,
        "WaitingForPlatform",
        message,
    )
    assert d.requeue_after == T.dependency_recheck


def test_available_is_not_checked_again_for_the_same_generation() -> None:
    first = decide_docker_container(container(), READY, LISTING, NOW, T)
    again = container(status=first.status.to_wire())
    d = decide_docker_container(again, READY, (), NOW + timedelta(hours=1), T)
    assert d.status == again.status
    assert (d.requeue_after, d.events) == (None, ())


def test_a_changed_digest_is_checked_again() -> None:
    first = decide_docker_container(container(), READY, LISTING, NOW, T)
    edited = container(status=first.status.to_wire(), digest=D2)
    edited.metadata["generation"] = 2
    d = decide_docker_container(edited, READY, LISTING, NOW, T)
    assert (d.status.phase, d.status.reason) == (Phase.FAILED, "DigestMismatch")
    # An unready platform during that re-check is no reason to step back to Preparing.
    d = decide_docker_container(edited, None, None, NOW, T)
    assert d.status.phase == Phase.AVAILABLE
    assert d.requeue_after == T.dependency_recheck


@pytest.mark.parametrize("phase", [Phase.FAILED, Phase.RELEASING, Phase.COMPLETED])
def test_image_check_keeps_a_settled_phase(phase: Phase) -> None:
    dc = container(status={"phase": phase, "reason": "ImageNotFound"})
    d = decide_docker_container(dc, READY, LISTING, NOW, T)
    assert d.status == dc.status


def test_normalise_image() -> None:
    assert normalise_image("images.canfar.net/skaha/x") == "images.canfar.net/skaha/x:latest"
    assert normalise_image("images.canfar.net/skaha/x:1") == "images.canfar.net/skaha/x:1"
    assert normalise_image("host:5000/skaha/x") == "host:5000/skaha/x:latest"


# -- SkahaPlatform -------------------------------------------------------------------------------


def platform(status: dict[str, Any] | None = None, version: str | None = None) -> SkahaPlatform:
    skaha: dict[str, Any] = {"url": "http://127.0.0.1:9/skaha"}
    if version:
        skaha["apiVersion"] = version
    return SkahaPlatform.model_validate(
        {
            "metadata": {"name": "local", "namespace": "ns", "generation": 2},
            "spec": {
                "skaha": skaha,
                "cavern": {"url": "http://127.0.0.1:9/arc", "user": "alice"},
                "tokenSecretRef": {"name": "token"},
            },
            "status": status,
        }
    )


GOOD = ProbeResult(
    ok=True,
    api_version="v1",
    cores=(1, 2, 4, 8),
    cores_default=2,
    ram=(1, 2, 4, 8, 16),
    ram_default=8,
    gpus=(1, 2),
    max_interactive=5,
)


def test_probe_ok_is_available_with_options() -> None:
    d = decide_platform(platform(), GOOD, NOW, T)
    s = d.status
    assert (s.phase, s.reason, s.message) == (
        Phase.AVAILABLE,
        "PlatformReady",
        "Skaha API v1 at http://127.0.0.1:9/skaha",
    )
    assert s.api_version == SkahaApiVersion.V1
    assert s.cores == ResourceOptions(default=2, options=[1, 2, 4, 8])
    assert s.memory_gb == ResourceOptions(default=8, options=[1, 2, 4, 8, 16])
    assert s.gpus == ResourceOptions(options=[1, 2])
    assert (s.max_interactive_sessions, s.last_probe_time, s.observed_generation) == (5, NOW, 2)
    assert condition_status(s.conditions, "Ready") is True
    assert d.requeue_after == T.resync
    assert d.events == ("Initializing->Available: PlatformReady",)
    assert platform_view(platform(s.to_wire())) == PlatformView(
        ready=True, cores_options=(1, 2, 4, 8), ram_options=(1, 2, 4, 8, 16), max_interactive=5
    )


@pytest.mark.parametrize(
    ("probe", "reason", "stalled"),
    [
        (
            ProbeResult(ok=False, reason="PlatformUnreachable", message="connect refused"),
            "PlatformUnreachable",
            False,
        ),
        (
            ProbeResult(ok=False, reason="Unauthorized", message="401 from Skaha"),
            "Unauthorized",
            True,
        ),
        (
            ProbeResult(ok=False, reason="SecretNotFound", message="no Secret token"),
            "SecretNotFound",
            True,
        ),
        (ProbeResult(ok=False, reason="TokenSecretMissing"), "TokenSecretMissing", True),
        (ProbeResult(ok=False), "PlatformUnreachable", False),
        (ProbeResult(ok=True, api_version="v9"), "UnsupportedApiVersion", True),
    ],
)
def test_probe_failure_is_not_ready_and_not_terminal(
    probe: ProbeResult, reason: str, stalled: bool
) -> None:
    d = decide_platform(platform(), probe, NOW, T)
    s = d.status
    assert (s.phase, s.reason) == (Phase.PREPARING, reason)
    assert s.message
    assert condition_status(s.conditions, "Ready") is False
    assert condition_status(s.conditions, "Stalled") is (True if stalled else None)
    assert d.requeue_after == T.poll_base
    view = platform_view(platform(s.to_wire()))
    assert (view.ready, view.reason) == (False, reason)


def test_probe_backs_off_while_the_outage_lasts_and_recovers() -> None:
    down = ProbeResult(ok=False, reason="PlatformUnreachable", message="timeout")
    first = decide_platform(platform(), down, NOW, T)
    later = decide_platform(platform(first.status.to_wire()), down, NOW + timedelta(seconds=20), T)
    assert later.requeue_after == 10.0  # half of 20 s
    much_later = decide_platform(
        platform(first.status.to_wire()), down, NOW + timedelta(hours=1), T
    )
    assert much_later.requeue_after == T.poll_cap
    up = decide_platform(platform(later.status.to_wire()), GOOD, NOW + timedelta(seconds=30), T)
    assert (up.status.phase, up.events) == (
        Phase.AVAILABLE,
        ("Preparing->Available: PlatformReady",),
    )
    # A new outage restarts the backoff clock.
    again = NOW + timedelta(hours=2)
    down2 = decide_platform(platform(up.status.to_wire()), down, again, T)
    assert down2.requeue_after == T.poll_base
    assert down2.status.phase_times is not None
    assert down2.status.phase_times[Phase.PREPARING] == again


def test_forced_api_version_wins_over_the_probe() -> None:
    probe = ProbeResult(ok=True, api_version=None, cores=(1,), cores_default=1)
    d = decide_platform(platform(version="v0"), probe, NOW, T)
    assert (d.status.phase, d.status.api_version) == (Phase.AVAILABLE, SkahaApiVersion.V0)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (None, "NotYetProbed"),
        # Probed for generation 1, but the spec is now at generation 2.
        ({"phase": "Available", "observedGeneration": 1}, "NotYetProbed"),
        ({"phase": "Preparing", "observedGeneration": 2, "reason": "Unauthorized"}, "Unauthorized"),
        # Available but without a Ready condition: not ready.
        ({"phase": "Available", "observedGeneration": 2}, "NotReady"),
    ],
)
def test_platform_view_not_ready(status: dict[str, Any] | None, reason: str) -> None:
    view = platform_view(platform(status))
    assert view == PlatformView(ready=False, reason=reason)


# -- short names, as canfar users write them ------------------------------------------------------


def test_a_short_name_listed_under_one_registry_is_expanded() -> None:
    d = decide_docker_container(container(image="skaha/astroml:latest"), READY, LISTING, NOW, T)
    assert (d.status.phase, d.status.reason) == (Phase.AVAILABLE, "ImageListed")
    assert d.status.resolved_image == IMAGE
    assert d.status.message == (
        f"image skaha/astroml:latest is listed by Skaha as {IMAGE} for headless, notebook"
    )
    untagged = decide_docker_container(container(image="skaha/astroml"), READY, LISTING, NOW, T)
    assert untagged.status.resolved_image == IMAGE


def test_a_full_name_resolves_to_itself_with_its_tag() -> None:
    d = decide_docker_container(
        container(image="images.canfar.net/skaha/astroml"), READY, LISTING, NOW, T
    )
    assert d.status.resolved_image == IMAGE


def test_a_short_name_listed_under_two_registries_is_refused_naming_both() -> None:
    two = (*LISTING, ImageView("harbor.example.org/skaha/astroml:latest", ("notebook",), None))
    d = decide_docker_container(container(image="skaha/astroml:latest"), READY, two, NOW, T)
    assert (d.status.phase, d.status.reason) == (Phase.FAILED, "AmbiguousImage")
    assert d.status.message == (
        "image skaha/astroml:latest is listed under more than one registry: write one of "
        f"harbor.example.org/skaha/astroml:latest, {IMAGE}"
    )


def test_an_unlisted_short_name_fails_suggesting_the_full_name() -> None:
    d = decide_docker_container(container(image="skaha/nothere:1"), READY, LISTING, NOW, T)
    assert (d.status.phase, d.status.reason) == (Phase.FAILED, "ImageNotFound")
    assert d.status.message == (
        "Skaha does not list image skaha/nothere:1; write the full name with its registry "
        "host, e.g. images.canfar.net/skaha/nothere:1"
    )


@pytest.mark.parametrize(
    ("image", "host"),
    [
        ("images.canfar.net/skaha/astroml:1", "images.canfar.net"),
        ("localhost:5000/x/y", "localhost:5000"),
        ("localhost/x", "localhost"),
        ("skaha/astroml:latest", None),
        ("astroml", None),
    ],
)
def test_registry_host(image: str, host: str | None) -> None:
    assert registry_host(image) == host
