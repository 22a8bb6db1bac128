"""What every controller's step returns, and how it reports a decision (status, Events, metrics).

Conditions are derived in reconcile/ for every status a decision produces, terminal ones included;
this module only writes what the decision says and tells people: a Normal Event per transition,
a Warning Event when an object fails, stalls or a release is blocked or abandons something.
Messages are clipped to MAX_STATUS_MESSAGE on the way out: a platform's text is already cut
(platform/errors.py), this bounds what several of them put together can become.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from skaha_operator import metrics
from skaha_operator.controllers.context import Context
from skaha_operator.domain.common import Phase, SessionPhase

FAILED_PHASES = frozenset({Phase.FAILED, SessionPhase.EXPIRED})
#: Longest status or Event message written: room for a job's log tail (2000) and its context.
MAX_STATUS_MESSAGE = 3000


def clip(text: str, limit: int = MAX_STATUS_MESSAGE) -> str:
    """`text` shortened to `limit` characters in the middle: the start says what, the end why."""
    if len(text) <= limit:
        return text
    note = f" [... {len(text) - limit} characters left out ...] "
    head = (limit - len(note)) // 3
    return text[:head] + note + text[len(text) - (limit - len(note) - head) :]


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
    if isinstance(out.get("message"), str):
        out["message"] = clip(out["message"])
    for condition in out.get("conditions") or []:
        if isinstance(condition, dict) and isinstance(condition.get("message"), str):
            condition["message"] = clip(condition["message"])
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
        if failed and message and message not in text:
            text = f"{text}: {message}"
        ctx.post(body, "Warning" if failed else "Normal", reason, clip(text))
    if warning:
        ctx.post(body, "Warning", reason, clip(warning))


async def write(
    ctx: Context, plural: str, body: dict[str, Any], status: Any, *, strict: bool = False
) -> dict[str, Any]:
    """Guarded status write; the stored object (or `body` when nothing changed)."""
    stored = await ctx.kube.write_status(plural, body, dump(status), strict=strict)
    return stored or body
