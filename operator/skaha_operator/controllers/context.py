"""What every controller is handed: settings, the Kubernetes facade, caches and an event poster.

Built by the runtime at start-up (runtime/startup.py) and passed as an argument: no module
globals. Controllers never import kopf; Events go through `post`, which the runtime provides.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from skaha_operator import FINALIZER
from skaha_operator.controllers.platforms import PlatformCache
from skaha_operator.controllers.slots import SlotBook
from skaha_operator.k8s.api import Kube
from skaha_operator.k8s.objects import ObjectCache
from skaha_operator.platform.hosts import PUBLIC_ONLY, HostPolicy
from skaha_operator.reconcile.data import DEFAULT_DOWNLOADER_IMAGE
from skaha_operator.reconcile.timing import Timing

# Annotation a person sets on an object (or its SkahaPlatform) to release it although its
# external resources cannot be deleted (a platform that is truly gone): docs/lifecycle.md.
ABANDON_ANNOTATION = "skaha.broker.dev/abandon"

# (object body, Event type "Normal" or "Warning", reason, message)
EventPoster = Callable[[dict[str, Any], str, str, str], None]


@dataclass
class OperatorConfig:
    """Settings chosen on the command line."""

    timing: Timing = field(default_factory=Timing)
    resync_interval: float = 60.0
    http_timeout: float = 30.0
    finalizer: str = FINALIZER
    # PEM CAs trusted for every platform on top of the public ones (--ca-bundle).
    ca_bundle: str | None = None
    # Hosts a SkahaPlatform may name (--allowed-hosts); the default allows public hosts only.
    allowed_hosts: HostPolicy = PUBLIC_ONLY
    # The small image of HTTP(S) download jobs; it needs sh, curl or wget, and sha256sum
    # (--downloader-image, else the environment variable, else the default).
    downloader_image: str = field(
        default_factory=lambda: os.environ.get(
            "SKAHA_OPERATOR_DOWNLOADER_IMAGE", DEFAULT_DOWNLOADER_IMAGE
        )
    )


def _no_events(body: dict[str, Any], type_: str, reason: str, message: str) -> None:
    return None


@dataclass
class Context:
    """Live objects the controllers use."""

    config: OperatorConfig
    kube: Kube
    platforms: PlatformCache
    cache: ObjectCache
    post: EventPoster = _no_events
    slots: SlotBook = field(default_factory=SlotBook)
    # Running Computes' first Skaha look after a start or take-over: uid -> monotonic time
    # (controllers/first_look.py).
    first_looks: dict[str, float] = field(default_factory=dict)


def abandoned(*bodies: dict[str, Any] | None) -> bool:
    """Whether a person asked (on the object or its platform) to leave external resources."""
    for body in bodies:
        notes = ((body or {}).get("metadata") or {}).get("annotations") or {}
        if str(notes.get(ABANDON_ANNOTATION, "")).lower() in {"true", "yes", "1"}:
            return True
    return False
