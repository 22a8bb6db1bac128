"""What the handlers share: one Kubernetes facade, the platform clients, timing knobs.

Created at startup, kept in kopf's `memo` (style.md §7: no module globals), closed at cleanup.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kopf

from skaha_operator.handlers.objects import ObjectCache
from skaha_operator.handlers.platforms import PlatformCache
from skaha_operator.handlers.requeue import Requeuer
from skaha_operator.k8s.api import Kube
from skaha_operator.reconcile.data import DEFAULT_DOWNLOADER_IMAGE
from skaha_operator.reconcile.timing import Timing


@dataclass
class OperatorConfig:
    """Settings chosen on the command line."""

    timing: Timing = field(default_factory=Timing)
    resync_interval: float = 60.0
    http_timeout: float = 30.0
    finalizer: str = "skaha.broker.dev/finalizer"
    # The small image of HTTP(S) download jobs; it needs sh, curl or wget, and sha256sum.
    # Set through the environment (like the resync interval) until the CLI has a flag for it.
    downloader_image: str = field(
        default_factory=lambda: os.environ.get(
            "SKAHA_OPERATOR_DOWNLOADER_IMAGE", DEFAULT_DOWNLOADER_IMAGE
        )
    )


@dataclass
class OperatorState:
    """Live objects the handlers use."""

    config: OperatorConfig
    kube: Kube
    platforms: PlatformCache
    cache: ObjectCache
    requeuer: Requeuer = field(default_factory=Requeuer)
    # kopf bookkeeping kept in memory (handlers/persistence.py): told when an object is deleted.
    forgetters: list[Callable[[str], None]] = field(default_factory=list)

    def forget(self, uid: str) -> None:
        """An object is gone: drop what we kept in memory about it."""
        for forget in self.forgetters:
            forget(uid)


def state(memo: Any) -> OperatorState:
    """The OperatorState kept in kopf's memo."""
    found = getattr(memo, "state", None)
    if not isinstance(found, OperatorState):
        raise kopf.PermanentError("operator state missing: the startup handler did not run")
    return found
