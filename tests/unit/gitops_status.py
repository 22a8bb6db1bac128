"""Sample objects whose status is built by the operator's own condition logic, for every phase.

Shared by the Argo CD Lua health tests and the kstatus tests, so both read exactly the
conditions the operator writes (reconcile.conditions.summary_conditions).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from skaha_operator.domain.common import Phase, SessionPhase
from skaha_operator.reconcile.conditions import summary_conditions

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def sample(
    kind: str,
    phase: str,
    *,
    reason: str = "SomeReason",
    message: str | None = "some message",
    stalled: bool = False,
    generation: int = 3,
    observed: int | None = 3,
) -> dict[str, Any]:
    """An object of `kind` in `phase`, its conditions derived as the operator derives them."""
    conditions = summary_conditions([], phase, reason, message, NOW, observed, stalled=stalled)
    status: dict[str, Any] = {
        "phase": phase,
        "reason": reason,
        "conditions": [
            c.model_dump(by_alias=True, exclude_none=True, mode="json") for c in conditions
        ],
    }
    if message is not None:
        status["message"] = message
    if observed is not None:
        status["observedGeneration"] = observed
    return {
        "apiVersion": "skaha.broker.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "ns", "generation": generation},
        "status": status,
    }


KINDS = ("SkahaPlatform", "DockerContainer", "JupyterNotebook", "Storage", "Data", "Compute")


def every_phase() -> list[tuple[str, str]]:
    """(kind, phase) for every component kind and phase, and every Session phase."""
    pairs = [(kind, str(p)) for kind in KINDS for p in Phase]
    return pairs + [("Session", str(p)) for p in SessionPhase]
