"""The in-client retry policy: brief, for idempotent calls only (docs/design.md §4.8).

Only GET, DELETE and idempotent PUT are retried, and only on `Unavailable` (5xx, 429,
timeouts, connection errors). POST is never retried here: a lost POST reply may hide a
committed launch or rule (`docs/platform-api.md` §9.10 `fail_after_commit`), so the caller
looks the resource up instead. Backoff is exponential and honours `Retry-After`, capped so a
server cannot park the operator; kopf's requeue is the outer loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from skaha_operator.platform.errors import Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts an idempotent call gets and how long it waits between them."""

    max_attempts: int = 8
    base_delay: float = 0.2
    max_delay: float = 5.0
    retry_after_cap: float = 5.0
    jitter: float = 0.1
    sleep: Sleep = field(default=asyncio.sleep, compare=False)

    def delay(self, attempt: int, error: BaseException | None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        retry_after = error.retry_after if isinstance(error, Unavailable) else None
        if retry_after is not None:
            # The server said when to come back; believe it, up to our cap.
            return max(0.0, min(retry_after, self.retry_after_cap))
        backoff = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return backoff * (1.0 + random.uniform(0.0, self.jitter))  # jitter spreads retries apart


NO_RETRY = RetryPolicy(max_attempts=1)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    # str(error) is already scrubbed of secrets (errors.py).
    log.warning("platform call failed (attempt %d), retrying: %s", state.attempt_number, error)


async def call_with_retry(
    policy: RetryPolicy, idempotent: bool, attempt: Callable[[], Awaitable[T]]
) -> T:
    """Run `attempt`, retrying on `Unavailable` only when the call is idempotent."""
    if not idempotent or policy.max_attempts <= 1:
        return await attempt()

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return policy.delay(state.attempt_number, error)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts),
        wait=wait,
        retry=retry_if_exception_type(Unavailable),
        sleep=policy.sleep,
        before_sleep=_log_retry,
        reraise=True,
    )
    return await retrying(attempt)
