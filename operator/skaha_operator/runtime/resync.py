"""The periodic resync: every cached object is stepped again about once per interval.

It covers what a lost watch event or a lost wake-up would leave waiting (docs/kubernetes-notes.md
§3). One sweep over the watch-fed cache per interval schedules each object at a fixed offset
within the interval (a hash of its key), so the steps spread evenly instead of arriving together,
and an earlier wake-up already scheduled is kept (runtime/requeue.py). It replaces a kopf timer per
object: no task per object, and no finalizer kopf would otherwise keep for its timers. Objects in
shards this replica does not hold are left to their holder (runtime/shards.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Iterable
from typing import Any

from skaha_operator.controllers.first_look import IN_USE
from skaha_operator.runtime.requeue import Key
from skaha_operator.runtime.state import OperatorState

logger = logging.getLogger(__name__)


def offset(key: Key, interval: float) -> float:
    """Where in the interval this object's resync falls (stable for the object)."""
    return (zlib.crc32("/".join(key).encode()) % 1000) / 1000 * interval


def spread_first_looks(st: OperatorState, computes: Iterable[dict[str, Any]]) -> int:
    """Give each running Compute among `computes` a moment within the poll cap for its first look
    at Skaha, its step being due at once (controllers/first_look.py); how many."""
    cap, now, count = st.ctx.config.timing.poll_cap, time.monotonic(), 0
    for body in computes:
        meta = body["metadata"]
        if ((body.get("status") or {}).get("phase")) not in IN_USE or not meta.get("uid"):
            continue
        key = ("computes", str(meta["namespace"]), str(meta["name"]))
        st.ctx.first_looks[str(meta["uid"])] = now + offset(key, cap)
        count += 1
    if count:
        logger.info(
            "the first Skaha looks of %d running Computes are spread over %.0fs", count, cap
        )
    return count


def sweep(st: OperatorState, plural: str, interval: float) -> int:
    """Schedule one resync of every cached object of `plural` in a held shard; how many."""
    count = 0
    for body in st.ctx.cache.each(plural):
        meta = body["metadata"]
        if not st.shards.holds(str(meta["namespace"]), body):
            continue
        key = (plural, str(meta["namespace"]), str(meta["name"]))
        st.requeuer.schedule(key, offset(key, interval))
        count += 1
    return count


async def resync_forever(st: OperatorState, plural: str, interval: float) -> None:
    """Sweep `plural` every `interval` seconds until cancelled."""
    while True:
        await asyncio.sleep(interval)
        sweep(st, plural, interval)
