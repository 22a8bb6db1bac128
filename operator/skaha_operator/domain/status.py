"""The status fields every kind shares: phase, phase times, conditions, observedGeneration, reason.

Conventions from docs/kubernetes-notes.md §5: `phase` is the summary for humans, `conditions`
(Ready, Reconciling, Stalled) the API for tools, `observedGeneration` tells kstatus/Flux which
spec the status describes. A CEL transition rule keeps terminal phases terminal
(docs/design.md §4.2).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from skaha_operator.domain.base import WireModel
from skaha_operator.domain.common import (
    CONDITIONS_EXTRA,
    REASON_PATTERN,
    TERMINAL_PHASES,
    TERMINAL_SESSION_PHASES,
    Condition,
    Phase,
    SessionPhase,
    Timestamp,
    terminal_rule,
)


def phase_times_field() -> Any:
    """The map phase -> time the object entered it."""
    return Field(None, description="When the object entered each phase (RFC 3339).")


class StatusBase(WireModel):
    """Fields common to every status."""

    conditions: list[Condition] | None = Field(
        None,
        description=(
            "Observations: Ready (always), Reconciling and Stalled (only while True) and"
            " per-dependency conditions."
        ),
        max_length=32,
        json_schema_extra=CONDITIONS_EXTRA,
    )
    observed_generation: int | None = Field(
        None, description="The metadata.generation the status was last computed from.", ge=0
    )
    reason: str | None = Field(
        None,
        description="CamelCase reason for the current phase, set on every failure.",
        pattern=REASON_PATTERN,
        max_length=1024,
    )
    message: str | None = Field(
        None, description="A human explanation of the current phase.", max_length=32768
    )


class PhasedStatus(StatusBase):
    """A status with a component phase that may change in any direction (SkahaPlatform)."""

    phase: Phase | None = Field(None, description="Lifecycle phase, a summary for humans.")
    phase_times: dict[Phase, Timestamp] | None = phase_times_field()


class ComponentStatus(PhasedStatus):
    """A component status: once Completed, Failed or Cancelled, the phase never changes."""

    cel_rules = (terminal_rule(TERMINAL_PHASES, tuple(Phase)),)


class SessionStatusBase(StatusBase):
    """A session status: SessionPhase, and terminal phases (incl. Expired) never change."""

    cel_rules = (terminal_rule(TERMINAL_SESSION_PHASES, tuple(SessionPhase)),)

    phase: SessionPhase | None = Field(
        None, description="Session phase, derived from its parts; a summary for humans."
    )
    phase_times: dict[SessionPhase, Timestamp] | None = phase_times_field()
