"""What every controller's step returns, and how it reports a decision (status, Events, metrics).

Conditions are derived in reconcile/ for every status a decision produces, terminal ones included;
this module only writes what the decision says and tells people: a Normal Event per transition,
a Warning Event when an object fails, stalls or a release is blocked or abandons something.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from skaha_operator import metrics
from skaha_operator.controllers.context import Context
from skaha_operator.domain.common import Phase, SessionPhase

FAILED_PHASES = frozenset({Phase.FAILED, SessionPhase.EXPIRED})


@dataclass(frozen=True)
class Outcome:
    """When to look at the object again (None: nothing to wait for); for a deleting object,
    whether everything it launched is released (then the finalizer may go)."""

    requeue_after: float | None = None
    released: bool = False


class Controller(Protocol):
    """One kind's controller."""

    kind: str
    plural: str

    async def step(self, body: dict[str, Any], ctx: Context) -> Outcome:
        """Observe, decide, act, write: one step of one object."""
        ...


def dump(status: Any) -> dict[str, Any]:
    """A status model as the API server stores it."""
    out: dict[str, Any] = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    return out


def tell(
    ctx: Context,
    body: dict[str, Any],
    kind: str,
    status: Any,
    events: tuple[str, ...],
    warning: str | None = None,
) -> None:
    """Events for a decision: one per transition (Warning when it failed), plus a warning.

    A failure's Event carries the status message, so `kubectl get events --field-selector
    type=Warning` shows the cause (the image not listed, the error tail) and not only a reason.
    """
    phase = str(getattr(status, "phase", "") or "")
    reason = str(getattr(status, "reason", "") or "Unknown")
    message = str(getattr(status, "message", "") or "")
    failed = phase in FAILED_PHASES
    for text in events:
        metrics.TRANSITIONS.labels(kind, phase).inc()
        if failed and message:
            text = f"{text}: {message}"
        ctx.post(body, "Warning" if failed else "Normal", reason, text)
    if warning:
        ctx.post(body, "Warning", reason, warning)


async def write(
    ctx: Context, plural: str, body: dict[str, Any], status: Any, *, strict: bool = False
) -> dict[str, Any]:
    """Guarded status write; the stored object (or `body` when nothing changed)."""
    stored = await ctx.kube.write_status(plural, body, dump(status), strict=strict)
    return stored or body
