"""Test controls shared by the in-memory fakes: a manual clock and queued faults.

No I/O and no sleeping: time moves only when a test calls `FakeClock.advance`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from skaha_operator.platform.errors import SkahaError


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        """The current fake time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self._now += timedelta(seconds=seconds)


@dataclass
class Fault:
    """One queued error; with `commit` the call takes effect before it raises."""

    error: SkahaError
    commit: bool


class Faults:
    """Errors queued for the next calls of named operations (e.g. a 500 after commit)."""

    def __init__(self) -> None:
        self._queued: dict[str, list[Fault]] = {}
        self.calls: list[str] = []

    def fail_next(self, operation: str, error: SkahaError, *, commit: bool = False) -> None:
        """Make the next `operation` call raise `error`, after taking effect if `commit`."""
        self._queued.setdefault(operation, []).append(Fault(error, commit))

    def enter(self, operation: str) -> Fault | None:
        """Record a call; raise a queued pre-commit fault, or return a post-commit one."""
        self.calls.append(operation)
        queue = self._queued.get(operation)
        if not queue:
            return None
        fault = queue.pop(0)
        if not fault.commit:
            raise fault.error
        return fault
