"""The interactive-session cap as an admission queue per platform (docs/design.md §4.9).

Skaha refuses a user's launch of a non-headless session while that user has `maxInteractiveSessions`
of them Pending or Running (docs/platform-api.md §2.4). Every Compute on a platform shares one
Skaha user, so the operator counts that user's live interactive sessions — those it did not
launch too (the listing) — plus its own launches not listed yet, and lets a Compute launch only
when a slot is free for it and for every Compute ahead of it in the queue (requested start, then
creation time). The count and the launch marker are taken under one lock per platform, so the
Computes of one operator never race each other past the cap. One listing per platform is shared
for a moment between the Computes that check it.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

from skaha_operator.domain.common import TERMINAL_PHASES
from skaha_operator.domain.compute import Compute
from skaha_operator.platform.clients import PlatformClients
from skaha_operator.platform.wire import SkahaSession
from skaha_operator.reconcile.compute import QUEUE_REASON, Slots, queue_key

LISTING_TTL = 2.0  # seconds one platform's session listing is shared between queue checks
COUNTED = frozenset({"Pending", "Running"})  # what Skaha counts toward the cap


class SlotBook:
    """Per platform: a lock for count-then-mark, and a short-lived shared session listing."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self._listings: dict[tuple[str, str], tuple[float, list[SkahaSession]]] = {}

    def lock(self, namespace: str, platform: str) -> asyncio.Lock:
        """The lock a Compute holds while it counts the slots and writes its launch marker."""
        return self._locks[(namespace, platform)]

    def forget_listing(self, namespace: str, platform: str) -> None:
        """A session ended or was refused for the cap: count afresh next time."""
        self._listings.pop((namespace, platform), None)

    async def listing(
        self, namespace: str, platform: str, clients: PlatformClients
    ) -> list[SkahaSession]:
        """The platform user's sessions, shared for LISTING_TTL seconds."""
        slot = (namespace, platform)
        found = self._listings.get(slot)
        if found is None or time.monotonic() - found[0] >= LISTING_TTL:
            found = (time.monotonic(), await clients.skaha.list_sessions())
            self._listings[slot] = found
        return found[1]


async def count_slots(
    book: SlotBook, compute: Compute, clients: PlatformClients, computes: list[dict[str, Any]]
) -> Slots:
    """Slots in use for this Compute's platform user, and how many queued Computes are ahead."""
    ns = str(compute.metadata["namespace"])
    ref = compute.spec.platform_ref
    listed = await book.listing(ns, ref, clients)
    used = {s.id for s in listed if s.type != "headless" and str(s.status) in COUNTED}
    pending = 0
    ahead = 0
    mine = queue_key(compute)
    for body in computes:
        other = Compute.model_validate(body)
        meta = other.metadata
        if meta.get("uid") == compute.metadata.get("uid") or str(meta.get("namespace")) != ns:
            continue
        status = other.status
        if other.spec.platform_ref != ref or other.spec.type == "headless" or status is None:
            continue
        if status.phase in TERMINAL_PHASES:
            continue
        launch = status.launch
        if launch is not None and launch.pending_since is not None:
            if launch.id:
                if launch.observed in COUNTED or launch.observed is None:
                    used.add(launch.id)
            else:
                pending += 1  # launched, not listed yet: it will take a slot
        elif status.reason == QUEUE_REASON and queue_key(other) < mine:
            ahead += 1
    return Slots(used=len(used) + pending, ahead=ahead)
