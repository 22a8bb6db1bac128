"""What the runtime keeps for the operator's lifetime: the controllers' context, the wake-ups and
the shards this replica holds.

Created at start-up, kept in kopf's `memo` (no module globals), closed at clean-up.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kopf

from skaha_operator.controllers.context import Context
from skaha_operator.runtime.requeue import Requeuer
from skaha_operator.runtime.shards import AllShards, Shards
from skaha_operator.runtime.trace import Tracer


@dataclass
class OperatorState:
    """The controllers' context, the in-memory wake-ups, the shards held and kopf's in-memory
    bookkeeping."""

    ctx: Context
    requeuer: Requeuer = field(default_factory=Requeuer)
    shards: Shards = field(default_factory=AllShards)
    # Whether the cache was primed at start-up (runtime/watch.py `prime`); before it, events
    # fill the cache and wake no one.
    listed: bool = False
    # kopf's per-object processing context, to post Events from steps started outside it.
    event_context: contextvars.Context | None = None
    # SKAHA_OPERATOR_TRACE (runtime/trace.py); None: nothing is recorded.
    tracer: Tracer | None = None
    # Long-running tasks of the runtime (resync sweeps), cancelled at clean-up.
    background: list[asyncio.Task[None]] = field(default_factory=list)
    # kopf bookkeeping kept in memory (runtime/persistence.py): told when an object is deleted.
    forgetters: list[Callable[[str], None]] = field(default_factory=list)

    def forget(self, uid: str) -> None:
        """An object is gone: drop what we kept in memory about it."""
        for forget in self.forgetters:
            forget(uid)


def state(memo: Any) -> OperatorState:
    """The OperatorState kept in kopf's memo."""
    found = getattr(memo, "state", None)
    if not isinstance(found, OperatorState):
        raise kopf.PermanentError("operator state missing: the startup handler did not run")
    return found
