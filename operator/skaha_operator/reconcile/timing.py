"""Time arithmetic for decisions: schedule bounds and poll backoff, all pure functions of `now`.

Requeue, never sleep (docs/design.md §4.4): every wait becomes a `requeue_after` in seconds, which
the runtime turns into an in-memory wake-up (or, for an object being deleted, a retry of the
delete handler).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from skaha_operator.domain.common import Schedule, parse_duration


@dataclass(frozen=True)
class Timing:
    """Operator-wide timing knobs (seconds); a Schedule or SkahaPlatform may override polls."""

    poll_base: float = 1.0
    poll_cap: float = 30.0
    resync: float = 60.0
    dependency_recheck: float = 5.0
    adopt_grace: float = 90.0  # longer than a launch POST may take (client timeout 30 s, x3)
    renew_before: float = 3600.0
    max_polls: int | None = None
    # Launches lost before Skaha committed them (500/503, a hang, a dropped connection) are sent
    # again under the same name; the cap only guards against a Skaha that commits but never
    # lists. 3 stalled 2 of 40 Sessions under 20% 5xx + 5% hangs + 5% resets (platform-faults
    # campaign, docs/reliability.md); 6 leaves about 1 in 1,400.
    max_launch_attempts: int = 6
    max_job_attempts: int = 2  # download / notebook-setup jobs: the first run and one retry


def schedule_bounds(
    schedule: Schedule | None, created: datetime
) -> tuple[datetime, datetime | None, datetime | None]:
    """(start, end of booking, prepare deadline) of a schedule; start defaults to creation."""
    start = (schedule.start if schedule else None) or created
    end = deadline = None
    if schedule and schedule.duration:
        end = start + parse_duration(schedule.duration)
    if schedule and schedule.prepare_deadline:
        deadline = start + parse_duration(schedule.prepare_deadline)
    return start, end, deadline


def poll_delay(elapsed: float, timing: Timing) -> float:
    """Back off in proportion to how long we have waited: half the elapsed time, within bounds."""
    return min(timing.poll_cap, max(timing.poll_base, elapsed / 2))
