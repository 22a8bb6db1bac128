"""Sharding and leader election on coordination.k8s.io Leases: which objects this replica steps.

Every replica watches every object (its cache stays whole: a Session on one replica reads parts
stepped by another), but steps only the objects of the shards it holds. An object's shard is a
stable hash (CRC-32) of its namespace and the name of its root: the Session that controls it, or
itself. A Session and its parts are in one shard, so one replica carries a Session from start to
end and its own writes wake it without a watch round trip.

Leases, in one namespace, labelled with the group (one group per set of watched namespaces):

- `<group>-shard-<i>`, one per shard, held by the replica stepping it;
- `<group>-member-<identity>`, one per live replica: how many are live, hence the fair share
  ceil(S / members).

Every `renew` seconds a replica renews its member Lease, lists the group's Leases, renews the
shards it keeps, releases those beyond its fair share (so a replica that joins gets its share)
and acquires free or expired ones up to it. Every write is a compare-and-swap on the Lease's
resourceVersion (k8s/leases.py), so a shard has at most one holder in the API server. A replica
stops stepping a shard `duration - margin` seconds after its last successful renewal, before any
other replica may take it over (a Lease is expired `duration` seconds after its renewTime; the
clocks of the replicas are assumed to agree to within the margin, as NTP keeps them, and the
guarded status writes stay the safety net if they do not). A replica that dies is taken over
within `duration + renew` seconds; one that stops cleanly releases its Leases at once.

When a shard is acquired every cached object in it is stepped at once (the takeover): wake-ups,
resyncs and first steps skipped while another replica held it are not lost. The rounds run in a
thread of their own, so a busy operator loop does not delay them; should a renewal still come too
late (the hold lapsed, though no one else took the shard), the steps refused meanwhile are taken
as soon as it lands. With election off (`--no-election`) every shard is held and no Lease is used.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import os
import re
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from skaha_operator import GROUP, metrics
from skaha_operator.k8s.leases import LeaseRecord, Leases

logger = logging.getLogger(__name__)

GROUP_LABEL = "skaha.broker.dev/lease-group"
ROLE_LABEL = "skaha.broker.dev/lease-role"
SHARD, MEMBER = "shard", "member"
DEFAULT_SHARDS = 16
DEFAULT_DURATION = 10.0
DEFAULT_RENEW = 3.0
# Stop stepping this long before the Lease can expire for the other replicas (at most a fifth of
# the duration, so short test durations still leave a replica most of its Lease).
MARGIN = 2.0


def default_identity() -> str:
    """The pod name (downward API) or, outside a cluster, host name and process id."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def default_group(namespaces: Iterable[str]) -> str:
    """Replicas watching the same namespaces share a group; other sets never mix with it."""
    watched = sorted(set(namespaces))
    if not watched:
        return "skaha-operator"
    return f"skaha-operator-{zlib.crc32(','.join(watched).encode()):08x}"


def default_lease_namespace(namespaces: Iterable[str]) -> str:
    """The operator's own namespace (downward API), else the first watched one, else default."""
    watched = list(namespaces)
    return os.environ.get("POD_NAMESPACE") or (watched[0] if watched else "default")


@dataclass(frozen=True)
class LeaseConfig:
    """How this replica takes part: its group, identity, shard count and timings."""

    namespace: str
    group: str
    identity: str
    shards: int = DEFAULT_SHARDS
    duration: float = DEFAULT_DURATION
    renew: float = DEFAULT_RENEW

    def shard_name(self, index: int) -> str:
        """The Lease of one shard."""
        return f"{self.group}-shard-{index}"

    def member_name(self) -> str:
        """This replica's member Lease: the identity made a valid name, plus a hash of it."""
        slug = re.sub(r"[^a-z0-9-]+", "-", self.identity.lower()).strip("-")[:40] or "replica"
        return f"{self.group}-member-{slug}-{zlib.crc32(self.identity.encode()):08x}"

    def labels(self, role: str) -> dict[str, str]:
        """Labels of the group's Leases (the group name is a label value: at most 63 chars)."""
        return {GROUP_LABEL: _label_value(self.group), ROLE_LABEL: role}

    def selector(self) -> str:
        """Selects every Lease of the group."""
        return f"{GROUP_LABEL}={_label_value(self.group)}"


def _label_value(text: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-_.")
    if len(clean) <= 63:
        return clean
    return f"{clean[:54].rstrip('-_.')}-{zlib.crc32(text.encode()):08x}"


def shard_key(namespace: str, body: dict[str, Any]) -> str:
    """namespace/root: the controlling owner of ours (a Session) if any, else the object."""
    meta = body.get("metadata") or {}
    root = meta.get("name")
    for owner in meta.get("ownerReferences") or []:
        if owner.get("controller") and str(owner.get("apiVersion", "")).startswith(f"{GROUP}/"):
            root = owner.get("name")
            break
    return f"{namespace}/{root}"


def shard_of(namespace: str, body: dict[str, Any], shards: int) -> int:
    """The shard of an object: stable across processes and restarts."""
    return zlib.crc32(shard_key(namespace, body).encode()) % shards


def fair_share(shards: int, members: int) -> int:
    """How many shards one of `members` live replicas holds at most."""
    return math.ceil(shards / max(1, members))


@dataclass(frozen=True)
class Plan:
    """One round's writes: shards to renew, to give up, to try to take."""

    keep: tuple[int, ...]
    release: tuple[int, ...]
    acquire: tuple[int, ...]


def plan_round(
    cfg: LeaseConfig, leases: dict[int, LeaseRecord], members: int, now: datetime
) -> Plan:
    """Pure: from the listed shard Leases and the live member count, what this round writes.

    Ours (including those a previous process with our identity held) are kept up to the fair
    share, the rest released; free shards are taken before expired ones, starting at a place
    that depends on the identity so replicas starting together do not all race for shard 0.
    """
    target = fair_share(cfg.shards, members)
    mine = sorted(i for i, rec in leases.items() if rec.holder == cfg.identity)
    keep, release = tuple(mine[:target]), tuple(mine[target:])
    start = zlib.crc32(cfg.identity.encode()) % cfg.shards
    order = [(start + k) % cfg.shards for k in range(cfg.shards)]
    free = [i for i in order if i not in mine and (i not in leases or not leases[i].holder)]
    expired = [
        i
        for i in order
        if i not in mine and i in leases and leases[i].holder and not leases[i].live(now)
    ]
    wanted = max(0, target - len(keep))
    return Plan(keep=keep, release=release, acquire=tuple((free + expired)[:wanted]))


def split_listing(
    cfg: LeaseConfig, listed: Iterable[LeaseRecord]
) -> tuple[dict[int, LeaseRecord], list[LeaseRecord]]:
    """The group's shard Leases by index, and its member Leases."""
    shards: dict[int, LeaseRecord] = {}
    members: list[LeaseRecord] = []
    prefix = f"{cfg.group}-shard-"
    for rec in listed:
        role = rec.labels.get(ROLE_LABEL)
        if role == MEMBER:
            members.append(rec)
        elif role == SHARD and rec.name.startswith(prefix):
            with contextlib.suppress(ValueError):
                index = int(rec.name[len(prefix) :])
                if 0 <= index < cfg.shards:
                    shards[index] = rec
    return shards, members


def live_members(records: Iterable[LeaseRecord], identity: str, now: datetime) -> int:
    """Live member Leases, this replica always counted."""
    others = {r.holder for r in records if r.holder and r.holder != identity and r.live(now)}
    return 1 + len(others)


class AllShards:
    """Election off: this replica steps every object."""

    enabled = False

    def holds(self, namespace: str, body: dict[str, Any], key: Key | None = None) -> bool:
        """Every object is ours."""
        return True

    def held(self) -> frozenset[int]:
        """No shards: everything."""
        return frozenset()

    async def start(self) -> None:
        """Nothing to do."""

    async def aclose(self) -> None:
        """Nothing to release."""


Key = tuple[str, str, str]  # (plural, namespace, name), as runtime/requeue.py
Takeover = Callable[[frozenset[int]], None]
Resume = Callable[[frozenset[Key]], None]


class LeaseShards:
    """Shards held through Leases, renewed by a thread of their own.

    The rounds run on their own event loop in their own thread, so a busy or stalled operator
    loop (hundreds of events at once, a slow import) never delays a renewal; the operator loop
    only reads which shards are held, and is handed takeovers with `call_soon_threadsafe`.
    """

    enabled = True

    def __init__(
        self, cfg: LeaseConfig, leases: Leases, on_takeover: Takeover, on_resume: Resume
    ) -> None:
        self.cfg = cfg
        self._leases = leases
        self._on_takeover = on_takeover
        self._on_resume = on_resume
        self._records: dict[int, LeaseRecord] = {}  # ours, as last written
        self._valid: dict[int, float] = {}  # shard -> monotonic time until which we step it
        self._skipped: dict[int, set[Key]] = {}  # steps refused while a hold had lapsed
        self._lock = threading.Lock()  # _skipped is written by both threads
        self._member: LeaseRecord | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the lease thread's
        self._main: asyncio.AbstractEventLoop | None = None  # the operator's
        self._stopping: asyncio.Event | None = None
        self._release = True
        self.members = 1

    # -- what the driver asks (operator thread) ------------------------------------------

    def shard(self, namespace: str, body: dict[str, Any]) -> int:
        """The shard of an object."""
        return shard_of(namespace, body, self.cfg.shards)

    def holds(self, namespace: str, body: dict[str, Any], key: Key | None = None) -> bool:
        """Whether this replica steps the object now.

        A step refused because a shard we still hold was not renewed in time (`key` given) is
        remembered, and stepped again as soon as the renewal lands.
        """
        index = self.shard(namespace, body)
        until = self._valid.get(index)
        if until is not None and time.monotonic() < until:
            return True
        if key is not None and index in self._records:
            with self._lock:  # the lease thread collects these under the same lock
                until = self._valid.get(index)
                if until is not None and time.monotonic() < until:
                    return True  # renewed meanwhile
                self._skipped.setdefault(index, set()).add(key)
        return False

    def held(self) -> frozenset[int]:
        """The shards stepped now."""
        now = time.monotonic()
        return frozenset(i for i, until in dict(self._valid).items() if now < until)

    # -- start and stop (operator thread) ------------------------------------------------

    async def start(self) -> None:
        """The lease thread; returns after its first round (before the objects are listed)."""
        self._main = asyncio.get_running_loop()
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._run(ready)), name="leases", daemon=True
        )
        self._thread.start()
        await asyncio.wrap_future(ready)

    def stop_renewing(self) -> None:
        """Stop the rounds and release nothing: what a crash leaves behind (for tests)."""
        self._release = False
        self._wake_to_stop()

    async def aclose(self) -> None:
        """Stop renewing; release every shard and the member Lease so others take over now."""
        self._valid.clear()  # step nothing more, before anyone else may start
        self._wake_to_stop()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, self.cfg.duration + 5)
        metrics.SHARDS_HELD.set(0)
        self._leases.close()

    def _wake_to_stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            with contextlib.suppress(RuntimeError):  # the thread has ended already
                self._loop.call_soon_threadsafe(self._stopping.set)

    # -- the lease thread ----------------------------------------------------------------

    async def _run(self, ready: concurrent.futures.Future[None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            await asyncio.wait_for(self.round(), timeout=self.cfg.duration)
        except Exception:
            logger.exception("the first lease round failed; retrying every %ss", self.cfg.renew)
            metrics.LEASE_ERRORS.inc()
        ready.set_result(None)
        next_at = self._loop.time() + self.cfg.renew
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), next_at - self._loop.time())
            if self._stopping.is_set():
                break
            started = self._loop.time()
            late = started - next_at
            next_at = started + self.cfg.renew  # a round's own time is in the period
            try:
                await asyncio.wait_for(self.round(), timeout=self.cfg.duration)
            except Exception:
                logger.exception("lease round failed")
                metrics.LEASE_ERRORS.inc()
            took = self._loop.time() - started
            if took + late > self.cfg.renew:
                logger.warning("lease round started %.1fs late and took %.1fs (renewed every %ss)",
                               late, took, self.cfg.renew)  # fmt: skip
        if self._release:
            await self._release_all()

    async def round(self) -> None:
        """Renew the member Lease, list the group, renew/release/acquire shards, take over."""
        cfg = self.cfg
        now = datetime.now(UTC)
        await self._renew_member(now)
        shard_leases, members = split_listing(cfg, await self._leases.list(cfg.selector()))
        now = datetime.now(UTC)
        self.members = live_members(members, cfg.identity, now)
        plan = plan_round(cfg, shard_leases, self.members, now)
        for index in plan.release:
            self._valid.pop(index, None)  # stop stepping before anyone else may start
        sent = time.monotonic()
        results = await asyncio.gather(
            *(self._take(i, shard_leases.get(i), now) for i in (*plan.keep, *plan.acquire)),
            *(self._give_up(i, shard_leases[i], now) for i in plan.release),
            return_exceptions=True,
        )
        gained: set[int] = set()
        resumed: set[Key] = set()
        for index, result in zip((*plan.keep, *plan.acquire), results, strict=False):
            if isinstance(result, LeaseRecord):
                if self._valid.get(index, 0.0) <= time.monotonic():
                    if index in self._records:
                        # Held all along, but renewed too late to go on stepping it: the steps
                        # refused meanwhile are taken now.
                        metrics.SHARD_LAPSES.inc()
                        logger.warning("shard %d renewed after its hold had lapsed", index)
                    else:
                        gained.add(index)
                self._records[index] = result
                self._valid[index] = sent + cfg.duration - min(MARGIN, cfg.duration / 5)
            elif isinstance(result, BaseException):
                # Not renewed: go on stepping only until the last renewal runs out.
                logger.warning("lease %s: %s", cfg.shard_name(index), result)
                metrics.LEASE_ERRORS.inc()
            else:
                if index in self._records:
                    logger.info("lost shard %d to another replica", index)
                self._valid.pop(index, None)
                self._records.pop(index, None)
        with self._lock:
            for index in [i for i in self._skipped if i in self.held() or i not in self._records]:
                keys = self._skipped.pop(index)
                if index in self._records:
                    resumed |= keys
        self._report(plan, gained)
        if gained:
            metrics.SHARD_TAKEOVERS.inc(len(gained))
            self._hand_over(self._on_takeover, frozenset(gained))
        if resumed:
            self._hand_over(self._on_resume, frozenset(resumed))

    def _hand_over(self, callback: Callable[[Any], None], arg: frozenset[Any]) -> None:
        if self._main is not None and not self._main.is_closed():
            self._main.call_soon_threadsafe(callback, arg)

    async def _renew_member(self, now: datetime) -> None:
        cfg = self.cfg
        if self._member is not None:
            renewed = await self._leases.update(self._member, cfg.identity, cfg.duration, now)
            if renewed is not None:
                self._member = renewed
                return
        made = await self._leases.create(
            cfg.member_name(), cfg.labels(MEMBER), cfg.identity, cfg.duration, now
        )
        if made is None:  # a previous process with our identity left it: take it back
            for rec in await self._leases.list(cfg.selector()):
                if rec.name == cfg.member_name():
                    made = await self._leases.update(rec, cfg.identity, cfg.duration, now)
        self._member = made

    async def _take(
        self, index: int, seen: LeaseRecord | None, now: datetime
    ) -> LeaseRecord | None:
        cfg = self.cfg
        if seen is None:
            return await self._leases.create(
                cfg.shard_name(index), cfg.labels(SHARD), cfg.identity, cfg.duration, now
            )
        current = self._records.get(index)
        # Renew from what we wrote last when it is newer than the listing (it always is, unless
        # the listing raced our previous round's write).
        base = current if current is not None and current.holder == cfg.identity else seen
        taken = await self._leases.update(base, cfg.identity, cfg.duration, now)
        if taken is None and base is not seen:
            taken = await self._leases.update(seen, cfg.identity, cfg.duration, now)
        return taken

    async def _give_up(self, index: int, seen: LeaseRecord, now: datetime) -> None:
        self._records.pop(index, None)
        await self._leases.update(seen, None, self.cfg.duration, now)

    async def _release_all(self) -> None:
        held = dict(self._records)
        self._valid.clear()
        self._records.clear()
        now = datetime.now(UTC)
        await asyncio.gather(
            *(self._leases.update(rec, None, self.cfg.duration, now) for rec in held.values()),
            return_exceptions=True,
        )
        if self._member is not None:
            with contextlib.suppress(Exception):
                await self._leases.delete(self._member.name)
        logger.info("released %d shards", len(held))

    def _report(self, plan: Plan, gained: set[int]) -> None:
        held = sorted(self.held())
        metrics.SHARDS_HELD.set(len(held))
        if gained or plan.release:
            logger.info(
                "holding %d of %d shards %s (%d live replicas; took %s, gave up %s)",
                len(held), self.cfg.shards, held, self.members,
                sorted(gained), list(plan.release),
            )  # fmt: skip


Shards = AllShards | LeaseShards
