"""The Data controller: a download job or a Rucio rule, launched once; released per policy.

Both go through the one launch protocol (reconcile/launch.py): the marker is written with a
resourceVersion-guarded write before the request, the job is found again by its UID-derived
name, the rule by (DID, RSE expression) — a DuplicateRule answer is adopted. A refused create is
fed back to the decision. Deletion is the same step: wait until no live Compute uses the data,
stop every download attempt, then delete the file or the rule when the policy says so and it is
provably ours (docs/design.md §4.3, §4.6).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from skaha_operator.controllers import rucio_rules, skaha_sessions
from skaha_operator.controllers.access import (
    PlatformAccess,
    live_users,
    platform_access,
    storage_view,
)
from skaha_operator.controllers.base import Outcome, tell, write
from skaha_operator.controllers.context import Context
from skaha_operator.controllers.jobs import launch_job, record
from skaha_operator.domain.common import Phase
from skaha_operator.domain.data import Data, DataStatus
from skaha_operator.domain.launch import Launch
from skaha_operator.platform.clients import PlatformClients
from skaha_operator.platform.errors import AuthError, Rejected, Unavailable
from skaha_operator.platform.wire import RucioRule
from skaha_operator.reconcile.data import (
    DataObservation,
    RulePlan,
    decide_data,
    download_policy,
    rule_policy,
)
from skaha_operator.reconcile.launch import LaunchView, needs_listing

# Phases in which nothing external is looked at until the object is deleted.
SETTLED = frozenset({Phase.AVAILABLE, Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED})


class DataController:
    """Drives Data."""

    kind = "Data"
    plural = "data"

    async def step(self, body: dict[str, Any], ctx: Context) -> Outcome:
        """Observe, decide once, act, write with a guarded write."""
        data = Data.model_validate(body)
        ns = str(data.metadata["namespace"])
        access = await platform_access(ctx, ns, data.spec.platform_ref)
        obs = await self.observe(data, body, access, ctx)
        decision = decide_data(data, obs, ctx.config.timing, ctx.config.downloader_image)
        clients = access.clients
        if decision.job is not None and clients is not None:
            stored = await write(ctx, self.plural, body, decision.status, strict=True)
            tell(ctx, body, self.kind, decision.status, decision.events, decision.warning)
            return await launch_job(
                ctx, self.plural, Data, stored, decision.job, clients,
                lambda why: self._refused(stored, obs, why, ctx), decision.requeue_after,
            )  # fmt: skip
        if decision.rule is not None and clients is not None and clients.rucio is not None:
            stored = await write(ctx, self.plural, body, decision.status, strict=True)
            tell(ctx, body, self.kind, decision.status, decision.events, decision.warning)
            return await self._create_rule(stored, decision.rule, clients, obs, ctx)
        if decision.write:
            await write(ctx, self.plural, body, decision.status)
        if clients is not None:
            await skaha_sessions.delete(clients, decision.delete_jobs)
            if decision.delete_rule and clients.rucio is not None:
                await rucio_rules.delete(clients.rucio, decision.delete_rule)
            if decision.delete_tree:
                await clients.cavern.delete_tree(decision.delete_tree)
        tell(ctx, body, self.kind, decision.status, decision.events, decision.warning)
        return Outcome(decision.requeue_after, decision.released)

    async def observe(
        self, data: Data, body: dict[str, Any], access: PlatformAccess, ctx: Context
    ) -> DataObservation:
        """Read what the decision needs: platform, storage, the job or rule, users on release."""
        now = datetime.now(UTC)
        ns, name = str(data.metadata["namespace"]), str(data.metadata["name"])
        status = data.status or DataStatus()
        clients = access.clients
        deleting = bool(data.metadata.get("deletionTimestamp"))
        reachable = clients is not None
        try:
            job, job_detail, rule, rule_error, shared = await _platform_reads(
                data, status, access, deleting, now, ctx
            )
        except (Unavailable, AuthError):
            if not deleting or not access.gives_up(body):
                raise
            job, job_detail, rule, rule_error = LaunchView(), None, LaunchView(), None
            shared, reachable = False, False
        users: tuple[str, ...] = ()
        if deleting:
            users = tuple(
                await live_users(ctx, ns, "computes", lambda s: name in (s.get("dataRefs") or []))
            )
        defaults = access.platform.spec.defaults if access.platform else None
        return DataObservation(
            now=now,
            platform_ready=access.ready,
            platform_reason=access.reason,
            storage=await storage_view(ctx, ns, data.spec.storage_ref),
            prepare_deadline=defaults.prepare_deadline if defaults else None,
            rucio_configured=clients is not None and clients.rucio is not None,
            job=job,
            job_detail=job_detail,
            rule=rule,
            rule_error=rule_error,
            deleting=deleting,
            reachable=reachable,
            abandon=access.abandon(body),
            users=users,
            rule_shared=shared,
        )

    async def _create_rule(
        self,
        stored: dict[str, Any],
        plan: RulePlan,
        clients: PlatformClients,
        obs: DataObservation,
        ctx: Context,
    ) -> Outcome:
        """POST the rule (its marker is stored); DuplicateRule is adopted at the next step."""
        assert clients.rucio is not None
        try:
            rule_id = await rucio_rules.create(clients.rucio, plan, str(stored["metadata"]["uid"]))
        except AuthError:
            raise
        except Rejected as exc:
            return await self._refused(stored, obs, f"Rucio refused the rule: {exc}", ctx)
        except Unavailable:
            return Outcome(2.0)
        if rule_id is None:
            return Outcome(0.5)  # DuplicateRule: list the DID's rules and adopt
        await record(
            ctx, self.plural, Data, stored, "rule", rule_id, f"Rucio rule {rule_id} created"
        )
        return Outcome(1.0)

    async def _refused(
        self, stored: dict[str, Any], obs: DataObservation, message: str, ctx: Context
    ) -> Outcome:
        data = Data.model_validate(stored)
        again = decide_data(
            data, dataclasses.replace(obs, refused=message), ctx.config.timing,
            ctx.config.downloader_image,
        )  # fmt: skip
        await write(ctx, self.plural, stored, again.status)
        tell(ctx, stored, self.kind, again.status, again.events, again.warning)
        return Outcome(again.requeue_after)


async def _platform_reads(
    data: Data,
    status: DataStatus,
    access: PlatformAccess,
    deleting: bool,
    now: datetime,
    ctx: Context,
) -> tuple[LaunchView, str | None, LaunchView, str | None, bool]:
    """The download job (and its log tail when it failed) and the Rucio rule (its error, and
    whether it must be kept on release), as far as the phase needs them."""
    clients = access.clients
    timing = ctx.config.timing
    # Placed (or ended) data needs no look at its job or rule until it is released.
    settled = status.phase in SETTLED and not deleting
    job, job_detail = LaunchView(), None
    rule, rule_error, shared = LaunchView(), None, False
    if clients is not None and data.spec.http is not None and _sent(status.job) and not settled:
        policy = download_policy(data, timing)
        listing = deleting or needs_listing(status.job, now, policy)
        job, session = await skaha_sessions.observe(
            clients, status.job, policy.base, listing=listing
        )
        if session is not None and str(session.status) in skaha_sessions.FAILED:
            job_detail = await skaha_sessions.log_tail(clients, session.id)
    plan = _rule_plan(data)
    if (
        clients is not None
        and clients.rucio is not None
        and plan
        and _sent(status.rule)
        and not settled
    ):
        policy = rule_policy(data, timing)
        listing = deleting or needs_listing(status.rule, now, policy)
        uid = str(data.metadata.get("uid", ""))
        rule, found = await rucio_rules.observe(
            clients.rucio, status.rule, plan, policy.base, uid,
            listing=listing, releasing=deleting,
        )  # fmt: skip
        rule_error = found.error if found is not None else None
        if deleting and found is not None:
            # Keep a rule that is not ours to remove, or one another Data records.
            shared = not await _ours_to_remove(ctx, found, uid) or await _rule_shared(
                ctx, data, found.id
            )
    return job, job_detail, rule, rule_error, shared


def _rule_plan(data: Data) -> RulePlan | None:
    rucio = data.spec.rucio
    if rucio is None:
        return None
    scope, name = rucio.did.split(":", 1)
    return RulePlan(scope, name, rucio.rse_expression, None)


def _sent(launch: Launch | None) -> bool:
    return launch is not None and launch.pending_since is not None


async def _ours_to_remove(ctx: Context, rule: RucioRule, uid: str) -> bool:
    """Made by this Data; or adopted from another Data of ours that has gone (or is going), which
    left the rule to the Data still using it: the last of them removes it. A rule without our
    comment (a person's) is never ours."""
    if rucio_rules.created_by(rule, uid):
        return True
    creator = rucio_rules.creator_of(rule)
    if creator is None:
        return False
    for other in ctx.cache.each("data"):
        meta = other["metadata"]
        live = meta.get("uid") == creator and not meta.get("deletionTimestamp")
        if live and await _still_there(ctx, other):
            return False
    return True


async def _rule_shared(ctx: Context, data: Data, rule_id: str) -> bool:
    """Whether another Data, in any namespace the operator watches, records the same rule on the
    same Rucio server. A rule id names a rule only on its own server: a Data of another Rucio
    that happens to record the same id does not share it. One whose server cannot be told (its
    platform not found) counts as sharing: keeping is the safe side."""
    uid = data.metadata.get("uid")
    server = await _rucio_url(ctx, str(data.metadata["namespace"]), data.spec.platform_ref)
    for other in ctx.cache.each("data"):
        meta = other["metadata"]
        if meta.get("uid") == uid:
            continue
        if (((other.get("status") or {}).get("rule")) or {}).get("id") != rule_id:
            continue
        ref = str((other.get("spec") or {}).get("platformRef", ""))
        theirs = await _rucio_url(ctx, str(meta["namespace"]), ref)
        if theirs is not None and server is not None and theirs != server:
            continue
        if await _still_needs(ctx, other):
            return True
    return False


async def _rucio_url(ctx: Context, namespace: str, platform_ref: str) -> str | None:
    """The Rucio server a platform names (compared without a trailing slash), or None."""
    body = await ctx.cache.get("skahaplatforms", namespace, platform_ref) if platform_ref else None
    url = (((body or {}).get("spec") or {}).get("rucio") or {}).get("url")
    return str(url).rstrip("/") if url else None


async def _still_there(ctx: Context, cached: dict[str, Any]) -> bool:
    """Whether a Data the cache shows still exists, read afresh: the watch may lag a deletion,
    and a release must not keep a rule for a Data already gone."""
    return await _fresh(ctx, cached) is not None


async def _still_needs(ctx: Context, cached: dict[str, Any]) -> bool:
    """Whether another Data still needs the rule kept: it exists (read afresh) and is not being
    deleted, or is being deleted but waits for a live Compute that reads it. One being deleted
    with no user left is released too and needs nothing kept: were it counted, two Data deleted
    at the same moment would each keep the rule for the other and it would outlive both."""
    fresh = await _fresh(ctx, cached)
    if fresh is None:
        return False
    meta = fresh["metadata"]
    if not meta.get("deletionTimestamp"):
        return True
    name = str(meta["name"])
    users = await live_users(
        ctx, str(meta["namespace"]), "computes", lambda s: name in (s.get("dataRefs") or [])
    )
    return bool(users)


async def _fresh(ctx: Context, cached: dict[str, Any]) -> dict[str, Any] | None:
    meta = cached["metadata"]
    fresh = await ctx.kube.get("data", str(meta["namespace"]), str(meta["name"]))
    if fresh is None or fresh["metadata"].get("uid") != meta.get("uid"):
        return None
    return fresh
