"""The demo's live table: one row per applied object, and whether each is usable or failed.

Pure: takes the objects as the API server returns them, returns strings. A row is usable when
its Ready condition is True, or when it completed (a finished headless job); it failed when its
phase is terminal without success or Stalled is True (the kstatus reading, see docs/gitops.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

FAILED_PHASES = frozenset({"Failed", "Expired", "Cancelled"})
HEADERS = ("KIND/NAME", "PHASE", "READY", "REASON", "AGE", "CONNECT URL")


class Outcome(StrEnum):
    """Where one object stands for the demo."""

    WAITING = "waiting"
    USABLE = "usable"
    FAILED = "failed"


@dataclass(frozen=True)
class Row:
    """One object's line in the table."""

    kind: str
    name: str
    phase: str
    ready: str
    reason: str
    age: str
    url: str
    outcome: Outcome

    def cells(self) -> tuple[str, ...]:
        """The printed cells, in HEADERS order."""
        return (f"{self.kind}/{self.name}", self.phase, self.ready, self.reason, self.age, self.url)


def _condition(status: dict[str, Any], type_: str) -> str:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            return str(cond.get("status", "Unknown"))
    return "-"


def outcome(obj: dict[str, Any]) -> Outcome:
    """Usable, failed, or still on its way."""
    status = obj.get("status") or {}
    phase = status.get("phase")
    if phase in FAILED_PHASES or _condition(status, "Stalled") == "True":
        return Outcome.FAILED
    if _condition(status, "Ready") == "True" or phase == "Completed":
        return Outcome.USABLE
    return Outcome.WAITING


def age(created: str | None, now: datetime) -> str:
    """kubectl-style age: 42s, 3m5s, 2h4m, 3d."""
    if not created:
        return "-"
    seconds = max(0, int((now - datetime.fromisoformat(created)).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60}m"
    return f"{seconds // 86400}d"


def row(obj: dict[str, Any], now: datetime | None = None) -> Row:
    """The table row of one object."""
    now = now or datetime.now(UTC)
    status = obj.get("status") or {}
    connectors = status.get("connectors") or []
    return Row(
        kind=str(obj.get("kind", "?")),
        name=str(obj["metadata"]["name"]),
        phase=str(status.get("phase") or "-"),
        ready=_condition(status, "Ready"),
        reason=str(status.get("reason") or "-"),
        age=age(obj["metadata"].get("creationTimestamp"), now),
        url=str(connectors[0]["url"]) if connectors else "-",
        outcome=outcome(obj),
    )


def render(rows: list[Row]) -> str:
    """A fixed-width table with a header, like `kubectl get`."""
    lines = [HEADERS, *(r.cells() for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADERS))]
    return "\n".join(
        "   ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def settled(rows: list[Row], expected: int) -> bool:
    """True once all `expected` objects are listed and none is still on its way."""
    return len(rows) >= expected and all(r.outcome != Outcome.WAITING for r in rows)
