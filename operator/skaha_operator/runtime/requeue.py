"""In-memory requeue: a wake-up per object that costs no write to the object.

kopf's `TemporaryError(delay=...)` keeps the retry in the object (a progress write) and wakes itself
after the delay with a touch patch: two API writes per wait, per object (docs/performance.md). Here
a wait is an asyncio timer keyed by (plural, namespace, name). When it fires the object is read
fresh and the same idempotent step runs again, so correctness still rests on the guarded status
writes. Steps of one object never overlap inside this process (a lock per key), whichever of
a first sighting, a resync timer or a wake-up started them. A restart loses only the timers: the
start-up listing steps every object again and the resync timers cover anything missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

Key = tuple[str, str, str]  # (plural, namespace, name)
Runner = Callable[[Key], Awaitable[float | None]]

ERROR_BACKOFF = 5.0
logger = logging.getLogger(__name__)


class Requeuer:
    """Timers per object; the earliest requested wake-up wins."""

    def __init__(self) -> None:
        self._timers: dict[Key, tuple[float, asyncio.TimerHandle]] = {}
        self._locks: dict[Key, asyncio.Lock] = {}
        self._runners: dict[str, Runner] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        # Told of every wake-up that fires (key, how late in seconds): the runtime's trace.
        self.on_fire: Callable[[Key, float], None] | None = None

    def register(self, plural: str, runner: Runner) -> None:
        """How to step an object of `plural` given its key (returns the next delay or None)."""
        self._runners[plural] = runner

    def lock(self, key: Key) -> asyncio.Lock:
        """The lock that keeps steps of one object apart."""
        found = self._locks.get(key)
        if found is None:
            found = self._locks[key] = asyncio.Lock()
        return found

    def schedule(self, key: Key, delay: float | None) -> None:
        """Step `key` after `delay` seconds, unless an earlier wake-up is already due."""
        if delay is None or self._closed or key[0] not in self._runners:
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + max(0.0, delay)
        current = self._timers.get(key)
        if current is not None:
            if current[0] <= due:
                return
            current[1].cancel()
        self._timers[key] = (due, loop.call_at(due, self._fire, key))
        logger.debug("wake-up of %s %s/%s in %.1fs", *key, delay)

    def cancel(self, key: Key) -> None:
        """Drop a pending wake-up (the delete handler drives the object now)."""
        current = self._timers.pop(key, None)
        if current is not None:
            current[1].cancel()

    def forget(self, key: Key) -> None:
        """The object is gone: drop its timer and lock."""
        current = self._timers.pop(key, None)
        if current is not None:
            current[1].cancel()
        lock = self._locks.get(key)
        if lock is not None and not lock.locked():
            del self._locks[key]

    def pending(self) -> int:
        """How many wake-ups are scheduled."""
        return len(self._timers)

    def _fire(self, key: Key) -> None:
        logger.debug("waking %s %s/%s", *key)
        timer = self._timers.pop(key, None)
        if self.on_fire is not None and timer is not None:
            self.on_fire(key, asyncio.get_running_loop().time() - timer[0])
        task = asyncio.get_running_loop().create_task(self._run(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: Key) -> None:
        try:
            delay = await self._runners[key[0]](key)  # the runner takes the object's lock
        except asyncio.CancelledError:
            raise
        except Exception:
            # The step's own error mapping already turned conflicts and outages into delays;
            # anything else is a bug or a refusal we did not expect: log it and look again later.
            logger.exception("step of %s %s/%s failed", *key)
            delay = ERROR_BACKOFF
        self.schedule(key, delay)

    async def aclose(self) -> None:
        """Cancel every timer and running step (operator shutdown)."""
        self._closed = True
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
