"""Data handlers: a download job or a Rucio rule, launched once; released per policy.

Both external creations are guarded by a create-pending marker written with a resourceVersion-
guarded write before the POST (design §4.3): the download job has a name derived from the UID and
attempt and is adopted by name after a restart; the Rucio rule is adopted from the DID's rules
(a `DuplicateRule` answer, skaha-api.md §8, or a marker without an id). Release (behind the
finalizer, and only when no live Compute uses the Data) stops a running download, then deletes
the file or the rule when the policy is Delete; a rule another Data also recorded is kept.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from skaha_operator import GROUP, VERSION
from skaha_operator.domain.common import ReleasePolicy
from skaha_operator.domain.data import Data, DataStatus
from skaha_operator.handlers.common import (
    RESYNC_INTERVAL,
    drive,
    post_events,
    reconciling,
)
from skaha_operator.handlers.prepare import (
    dump,
    launch_job,
    live_users,
    observe_job,
    platform_access,
    stop_job,
    storage_view,
    write_failed,
)
from skaha_operator.handlers.state import OperatorState, state
from skaha_operator.platform.clients import PlatformClients
from skaha_operator.platform.errors import Conflict, NotFound, Rejected, Unavailable
from skaha_operator.platform.rucio import RucioClient
from skaha_operator.platform.wire import Did, RucioRule, RuleSpec
from skaha_operator.reconcile.data import (
    DataAct,
    DataDecision,
    DataObservation,
    RulePlan,
    RuleView,
    decide_data,
)
from skaha_operator.reconcile.storage import node_of_mount

PLURAL = "data"
KIND = "Data"


@kopf.on.resume(GROUP, VERSION, PLURAL, id="prepare")
@kopf.on.create(GROUP, VERSION, PLURAL, id="prepare")
async def on_data(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Place the data until Available or Failed."""
    await drive(KIND, PLURAL, step_data, body, state(memo))


@kopf.timer(
    GROUP, VERSION, PLURAL, id="resync", interval=RESYNC_INTERVAL, initial_delay=RESYNC_INTERVAL / 2
)
async def resync_data(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Level-based resync for lost events."""
    await drive(KIND, PLURAL, step_data, body, state(memo))


@kopf.on.delete(GROUP, VERSION, PLURAL, id="release")
async def release_data(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Wait until no live Compute uses the data; stop a download; delete file or rule per policy."""
    async with reconciling(KIND):
        st = state(memo)
        data = Data.model_validate(dict(body))
        ns, name = str(data.metadata["namespace"]), str(data.metadata["name"])
        users = await live_users(st, ns, "computes", lambda s: name in (s.get("dataRefs") or []))
        if users:
            raise kopf.TemporaryError(f"still used by Compute {', '.join(users)}", delay=10)
        status = data.status
        if status is None or (
            status.job_pending_since is None and status.rule_pending_since is None
        ):
            return  # nothing was ever started
        access = await platform_access(st, ns, data.spec.platform_ref)
        if access.clients is None:
            raise kopf.TemporaryError("platform unusable: cannot release yet", delay=10)
        if await stop_job(access.clients, status):
            raise kopf.TemporaryError("waiting for the download job to stop", delay=2)
        if data.spec.release_policy != ReleasePolicy.DELETE:
            return
        if data.spec.http is not None and status.location:
            await access.clients.cavern.delete_tree(node_of_mount(status.location))
        if data.spec.rucio is not None:
            await _delete_rule(st, data, access.clients)


async def _delete_rule(st: OperatorState, data: Data, clients: PlatformClients) -> None:
    status = data.status
    rucio = data.spec.rucio
    if status is None or rucio is None:
        return
    if clients.rucio is None:
        raise kopf.TemporaryError("Rucio credentials missing: cannot delete the rule", delay=30)
    rule_id = status.rule_id
    if not rule_id:
        scope, did_name = rucio.did.split(":", 1)
        ours = await _our_rules(clients.rucio, scope, did_name, rucio.rse_expression)
        rule_id = ours[0] if len(ours) == 1 else None
    if not rule_id:
        return
    ns = str(data.metadata["namespace"])
    others = [
        o["metadata"]["name"]
        for o in await st.kube.list(PLURAL, ns)
        if o["metadata"]["name"] != data.metadata["name"]
        and (o.get("status") or {}).get("ruleId") == rule_id
    ]
    if not others:  # the same DID on the same RSE is one rule: keep it while another Data has it
        await clients.rucio.delete_rule(rule_id)


async def step_data(body: dict[str, Any], st: OperatorState) -> DataDecision:
    """Observe, decide once, act at most once, write the status with a guarded write."""
    data = Data.model_validate(body)
    ns = str(data.metadata["namespace"])
    access = await platform_access(st, ns, data.spec.platform_ref)
    status = data.status or DataStatus()
    clients = access.clients
    rule = None
    if data.spec.rucio is not None and clients is not None and clients.rucio is not None:
        rule = await _observe_rule(clients.rucio, data, status)
    defaults = access.platform.spec.defaults if access.platform else None
    obs = DataObservation(
        now=datetime.now(UTC),
        platform_ready=access.ready,
        platform_reason=access.reason,
        storage=await storage_view(st, ns, data.spec.storage_ref),
        prepare_deadline=defaults.prepare_deadline if defaults else None,
        rucio_configured=clients is not None and clients.rucio is not None,
        job=await observe_job(clients, status) if data.spec.http is not None else None,
        rule=rule,
    )
    decision = decide_data(data, obs, st.config.timing, st.config.downloader_image)
    new = dump(decision.status)
    if decision.action == DataAct.LAUNCH_JOB and decision.job and clients is not None:
        stored = await st.kube.write_status(PLURAL, body, new, strict=True)
        await launch_job(st, PLURAL, KIND, stored or body, clients, decision.job, DataStatus)
    elif decision.action == DataAct.CREATE_RULE and decision.rule and clients and clients.rucio:
        stored = await st.kube.write_status(PLURAL, body, new, strict=True)
        await _create_rule(st, stored or body, clients.rucio, decision.rule)
    else:
        await st.kube.write_status(PLURAL, body, new)
    s = decision.status
    post_events(body, KIND, decision.events, str(s.phase), s.reason or "")
    return decision


async def _observe_rule(rucio: RucioClient, data: Data, status: DataStatus) -> RuleView | None:
    spec = data.spec.rucio
    assert spec is not None
    if status.rule_pending_since is None:
        return None
    if not status.rule_id:
        scope, name = spec.did.split(":", 1)
        return RuleView(candidates=tuple(await _our_rules(rucio, scope, name, spec.rse_expression)))
    try:
        rule = await rucio.get_rule(status.rule_id)
    except NotFound:
        return RuleView(gone=True)
    return RuleView(state=str(rule.state), error=rule.error)


async def _our_rules(rucio: RucioClient, scope: str, name: str, rse_expression: str) -> list[str]:
    """Rules of our account on the DID for the RSE expression (what DuplicateRule matches, §8)."""
    rules: list[RucioRule] = await rucio.list_rules_for_did(scope, name)
    account = rucio.account
    return [
        r.id
        for r in rules
        if r.rse_expression == rse_expression and (not r.account or r.account == account)
    ]


async def _create_rule(
    st: OperatorState, body: dict[str, Any], rucio: RucioClient, plan: RulePlan
) -> None:
    """POST the rule (the marker is stored); DuplicateRule adopts the existing one."""
    spec = RuleSpec(
        dids=[Did(scope=plan.scope, name=plan.name)],
        copies=1,
        rse_expression=plan.rse_expression,
        lifetime=plan.lifetime_s,
    )
    status = dict(body.get("status") or {})
    try:
        ids = await rucio.create_rule(spec)
        how = "created"
    except Conflict:
        ids = await _our_rules(rucio, plan.scope, plan.name, plan.rse_expression)
        how = "adopted (DuplicateRule)"
    except Rejected as exc:
        await write_failed(st, PLURAL, KIND, body, DataStatus, "RuleRejected", f"Rucio: {exc}")
        return
    except Unavailable as exc:
        raise kopf.TemporaryError(
            f"rule creation outcome unknown, will look on the DID: {exc}", delay=2
        ) from None
    if len(ids) != 1:
        return  # the next step lists the DID's rules and adopts or stalls
    await st.kube.write_status(
        PLURAL, body, {**status, "ruleId": ids[0], "message": f"Rucio rule {ids[0]} {how}"}
    )
