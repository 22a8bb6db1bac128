"""Transition tables: which phase may follow which, per kind (docs/design.md §3, docs/domain.md §3).

A decision that would make an illegal move raises `IllegalTransition`: a bug in a decision, which
the runtime logs and retries later rather than writing it. The CEL rule on the status schema backs
up the terminal part of this table on the API server.
"""

from __future__ import annotations

from skaha_operator.domain.common import Phase, SessionPhase

Table = dict[str, frozenset[str]]

_TERMINAL = frozenset({Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED})

COMPUTE_TRANSITIONS: Table = {
    # Releasing from any live phase: a deletion is released through the same decision.
    Phase.INITIALIZING: frozenset({Phase.WAITING, Phase.PREPARING, Phase.RELEASING, Phase.FAILED}),
    Phase.WAITING: frozenset({Phase.PREPARING, Phase.RELEASING, Phase.FAILED, Phase.CANCELLED}),
    Phase.PREPARING: frozenset(
        {Phase.AVAILABLE, Phase.RUNNING, Phase.RELEASING, Phase.COMPLETED, Phase.FAILED}
    ),
    Phase.AVAILABLE: frozenset({Phase.RELEASING, Phase.COMPLETED, Phase.FAILED}),
    Phase.RUNNING: frozenset({Phase.RELEASING, Phase.COMPLETED, Phase.FAILED}),
    Phase.RELEASING: _TERMINAL,
    Phase.COMPLETED: frozenset(),
    Phase.FAILED: frozenset(),
    Phase.CANCELLED: frozenset(),
}

# A check of an image or a platform probe: no launch, no release of its own.
CHECK_TRANSITIONS: Table = {
    Phase.INITIALIZING: frozenset({Phase.PREPARING, Phase.AVAILABLE, Phase.FAILED}),
    Phase.PREPARING: frozenset({Phase.AVAILABLE, Phase.FAILED}),
    Phase.AVAILABLE: frozenset({Phase.RELEASING, Phase.FAILED}),
    Phase.RELEASING: _TERMINAL,
    Phase.COMPLETED: frozenset(),
    Phase.FAILED: frozenset(),
    Phase.CANCELLED: frozenset(),
}

_SESSION_TERMINAL = frozenset(
    {SessionPhase.COMPLETED, SessionPhase.FAILED, SessionPhase.CANCELLED, SessionPhase.EXPIRED}
)
_SESSION_LIVE = frozenset(
    {
        SessionPhase.WAITING,
        SessionPhase.PREPARING,
        SessionPhase.AVAILABLE,
        SessionPhase.RUNNING,
        SessionPhase.RELEASING,
    }
)
# A Session's phase is derived from its parts, so among live phases any move is legal;
# only terminal phases are final.
SESSION_TRANSITIONS: Table = {
    **{p: _SESSION_LIVE | _SESSION_TERMINAL for p in _SESSION_LIVE | {SessionPhase.INITIALIZING}},
    **{p: frozenset() for p in _SESSION_TERMINAL},
}


class IllegalTransition(ValueError):
    """A decision tried a move its kind's table forbids."""


def check_transition(table: Table, old: str, new: str) -> None:
    """Raise IllegalTransition unless `old -> new` is allowed (staying put always is)."""
    if old != new and new not in table.get(old, frozenset()):
        raise IllegalTransition(f"illegal transition {old} -> {new}")
