"""After a start or a shard take-over, running Computes look at Skaha spread out, not all at once.

A start steps every listed object at once (runtime/watch.py), a take-over every object of the
shards taken (runtime/startup.py). For a Compute in use the only work of that step is a look at
its Skaha session, so N running Computes would send N GETs together: a burst at the platform, and
an event loop so busy that shard Lease renewals lapsed (docs/performance.md, resume at N = 1000).
Instead the runtime gives each running Compute a moment within the poll cap (the resync's offset,
a hash of its key) and its first step waits until then before it looks. Nothing it would act on
waits: a Compute whose spec changed, that is being deleted, whose booked end or renewal falls
before that moment, or whose platform is not Ready looks at once (docs/design.md §4.12).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from skaha_operator.domain.common import Phase
from skaha_operator.domain.compute import Compute
from skaha_operator.reconcile.compute import PlatformView
from skaha_operator.reconcile.timing import Timing, schedule_bounds

IN_USE = frozenset({Phase.RUNNING, Phase.AVAILABLE})


def may_wait(
    compute: Compute, platform: PlatformView | None, now: datetime, wait: float, timing: Timing
) -> bool:
    """Whether this Compute's look at Skaha can wait `wait` seconds without missing anything."""
    status, meta = compute.status, compute.metadata
    if status is None or status.phase not in IN_USE or meta.get("deletionTimestamp"):
        return False
    if status.launch is None or not status.launch.id:
        return False
    if status.observed_generation != meta.get("generation"):
        return False  # a spec edit is applied (or refused) now
    if platform is None or not platform.ready:
        return False
    until = now + timedelta(seconds=wait)
    created = meta.get("creationTimestamp")
    if isinstance(created, str):
        _, end, _ = schedule_bounds(
            compute.spec.schedule, datetime.fromisoformat(created.replace("Z", "+00:00"))
        )
        if end is not None and end <= until:
            return False
    expiry = status.expiry_time
    return expiry is None or expiry - timedelta(seconds=timing.renew_before) > until


def first_look_wait(
    looks: dict[str, float], compute: Compute, platform: PlatformView | None, now: datetime,
    timing: Timing,
) -> float | None:  # fmt: skip
    """Seconds this step should wait before its look (None: look now). `looks` maps a Compute's
    uid to the monotonic time of its first look; the entry goes once the look is due or not
    allowed to wait."""
    uid = str(compute.metadata.get("uid") or "")
    due = looks.get(uid)
    if due is None:
        return None
    wait = due - time.monotonic()
    if wait > 0 and may_wait(compute, platform, now, wait, timing):
        return wait
    del looks[uid]
    return None
