"""How big each campaign is: the CI size (default) and the full size (`CHAOS_SCALE=full`)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    """Counts per campaign; deadlines grow with them."""

    name: str
    crash_sessions: int
    crash_kills: int
    fault_sessions: int
    api_sessions: int
    api_restarts: int
    concurrency_sessions: int
    edits: int
    failover_sessions: int
    deadline: float  # seconds for a whole fleet of Sessions to settle


CI = Scale(
    name="ci",
    crash_sessions=20,
    crash_kills=5,
    fault_sessions=8,
    api_sessions=8,
    api_restarts=1,
    concurrency_sessions=10,
    edits=30,
    failover_sessions=30,
    deadline=180.0,
)
FULL = Scale(
    name="full",
    crash_sessions=100,
    crash_kills=30,
    fault_sessions=40,
    api_sessions=30,
    api_restarts=3,
    concurrency_sessions=40,
    edits=150,
    failover_sessions=100,
    deadline=600.0,
)


def scale_from_env() -> Scale:
    """CI unless CHAOS_SCALE=full."""
    return FULL if os.environ.get("CHAOS_SCALE", "ci").lower() == "full" else CI
