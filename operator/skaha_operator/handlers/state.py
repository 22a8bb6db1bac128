"""What the handlers share: one Kubernetes facade, the platform clients, timing knobs.

Created at startup, kept in kopf's `memo` (style.md §7: no module globals), closed at cleanup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import kopf

from skaha_operator.handlers.platforms import PlatformCache
from skaha_operator.k8s.api import Kube
from skaha_operator.reconcile.timing import Timing


@dataclass
class OperatorConfig:
    """Settings chosen on the command line."""

    timing: Timing = field(default_factory=Timing)
    resync_interval: float = 60.0
    http_timeout: float = 30.0
    finalizer: str = "skaha.broker.dev/finalizer"


@dataclass
class OperatorState:
    """Live objects the handlers use."""

    config: OperatorConfig
    kube: Kube
    platforms: PlatformCache


def state(memo: Any) -> OperatorState:
    """The OperatorState kept in kopf's memo."""
    found = getattr(memo, "state", None)
    if not isinstance(found, OperatorState):
        raise kopf.PermanentError("operator state missing: the startup handler did not run")
    return found
