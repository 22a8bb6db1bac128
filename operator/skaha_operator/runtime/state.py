"""What the runtime keeps for the operator's lifetime: the controllers' context, the wake-ups and
the shards this replica holds.

Created at start-up, kept in kopf's `memo` (no module globals), closed at clean-up.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import kopf

from skaha_operator.controllers.context import Context
from skaha_operator.k8s.events import EventPoster
from skaha_operator.k8s.watching import Streams
from skaha_operator.runtime.requeue import Requeuer
from skaha_operator.runtime.shards import AllShards, Shards
from skaha_operator.runtime.trace import Tracer


@dataclass
class OperatorState:
    """The controllers' context, the in-memory wake-ups and the shards held."""

    ctx: Context
    requeuer: Requeuer = field(default_factory=Requeuer)
    shards: Shards = field(default_factory=AllShards)
    # The spec generation each object last had in a list or watch event (runtime/watch.py).
    generations: dict[tuple[str, str, str], int] = field(default_factory=dict)
    # The Events poster and the watch connections (None until start-up built them).
    events: EventPoster | None = None
    streams: Streams | None = None
    # SKAHA_OPERATOR_TRACE (runtime/trace.py); None: nothing is recorded.
    tracer: Tracer | None = None
    # Long-running tasks of the runtime (watches, resync sweeps), cancelled at clean-up.
    background: list[asyncio.Task[None]] = field(default_factory=list)


def state(memo: Any) -> OperatorState:
    """The OperatorState kept in kopf's memo."""
    found = getattr(memo, "state", None)
    if not isinstance(found, OperatorState):
        raise kopf.PermanentError("operator state missing: the startup handler did not run")
    return found
