"""The simulator's clock: wall time plus an offset, or a frozen instant moved only by `advance`.

All session and rule state is computed lazily from this clock (`docs/platform-api.md` §9.5),
so advancing it is O(1) whatever the number of sessions. `wait_until` lets a reply wait for a
moment on this clock: on a running clock that is a wall-clock wait, on a frozen one it ends when a
test advances the clock past the moment.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime


class SimClock:
    """Seconds since the epoch, frozen or running, advanced by `advance`."""

    def __init__(self, *, frozen: bool, start: datetime | None = None) -> None:
        self.frozen = frozen
        origin = start.timestamp() if start is not None else float(int(time.time()))
        self._frozen_at = origin
        # A running clock keeps the same origin as a frozen one would have.
        self._offset = origin - time.time()

    def now(self) -> float:
        """Current simulated time in epoch seconds."""
        if self.frozen:
            return self._frozen_at
        return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward (never backward) and return the new time."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        if self.frozen:
            self._frozen_at += seconds
        else:
            self._offset += seconds
        return self.now()

    async def wait_until(self, moment: float) -> None:
        """Return once `now() >= moment`; checks every POLL_S so an `advance` is noticed."""
        # Polling, not an asyncio.Event: tests advance the clock from other threads too
        # (a simulator served by `start_in_thread`), and asyncio events are not thread-safe.
        while (remaining := moment - self.now()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(min(remaining, POLL_S))


# How often a waiting reply looks at the clock again (a frozen clock moves only by `advance`).
POLL_S = 0.05


def iso_utc(epoch: float) -> str:
    """Format as Skaha does, e.g. `2024-08-05T18:33:40Z` (§3)."""
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc1123_utc(epoch: float) -> str:
    """Format as Rucio does, e.g. `Wed, 06 Aug 2026 12:00:00 UTC` (§8)."""
    moment = datetime.fromtimestamp(int(epoch), UTC)
    # Names spelled out so the format does not depend on the process locale.
    day = _DAYS[moment.weekday()]
    month = _MONTHS[moment.month - 1]
    return f"{day}, {moment.day:02d} {month} {moment.year} {moment:%H:%M:%S} UTC"


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
