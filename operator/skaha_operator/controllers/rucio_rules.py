"""The executor for Rucio replication rules: observe, create, delete (docs/platform-api.md §8).

A rule has no name of its own: Rucio keeps one rule per (account, DID, RSE expression) and answers
a second identical create with DuplicateRule, so "listed under our name" means the rules of our
account on the DID for the RSE expression. The launch protocol (reconcile/launch.py) decides.
"""

from __future__ import annotations

from skaha_operator.domain.launch import Launch
from skaha_operator.platform.errors import Conflict, NotFound
from skaha_operator.platform.rucio import RucioClient
from skaha_operator.platform.wire import Did, RuleSpec
from skaha_operator.reconcile.data import RulePlan
from skaha_operator.reconcile.launch import LaunchView, Seen


async def ours(
    rucio: RucioClient, scope: str, name: str, rse_expression: str, base: str
) -> tuple[Seen, ...]:
    """Rules of our account on the DID for the RSE expression (what DuplicateRule matches)."""
    rules = await rucio.list_rules_for_did(scope, name)
    account = rucio.account
    return tuple(
        Seen(id=r.id, name=base, state=str(r.state), live=True)
        for r in rules
        if r.rse_expression == rse_expression and (not r.account or r.account == account)
    )


async def observe(
    rucio: RucioClient, launch: Launch | None, plan: RulePlan, base: str, *, listing: bool
) -> tuple[LaunchView, str | None]:
    """The rules under our (DID, RSE) when `listing`, and the recorded rule with its error."""
    listed = None
    if listing:
        listed = await ours(rucio, plan.scope, plan.name, plan.rse_expression, base)
    rule_id = launch.id if launch is not None else None
    if not rule_id:
        return LaunchView(listed=listed), None
    try:
        rule = await rucio.get_rule(rule_id)
    except NotFound:
        return LaunchView(listed=listed, gone=True), None
    seen = Seen(id=rule.id, name=base, state=str(rule.state), live=True)
    return LaunchView(listed=listed, by_id=seen), rule.error


async def create(rucio: RucioClient, plan: RulePlan) -> str | None:
    """POST the rule (its marker is stored); its id, or None when DuplicateRule (the next step
    lists and adopts the existing one). Rejected and Unavailable propagate."""
    spec = RuleSpec(
        dids=[Did(scope=plan.scope, name=plan.name)],
        copies=1,
        rse_expression=plan.rse_expression,
        lifetime=plan.lifetime_s,
    )
    try:
        ids = await rucio.create_rule(spec)
    except Conflict:
        return None
    return ids[0] if len(ids) == 1 else None


async def delete(rucio: RucioClient, rule_id: str) -> None:
    """DELETE the rule; one already gone is fine."""
    try:
        await rucio.delete_rule(rule_id)
    except NotFound:
        return
