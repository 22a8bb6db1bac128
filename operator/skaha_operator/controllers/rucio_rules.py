"""The executor for Rucio replication rules: observe, create, delete (docs/platform-api.md §8).

A rule has no name of its own: Rucio keeps one rule per (account, DID, RSE expression) and answers
a second identical create with DuplicateRule, so "listed under our name" means the rules of our
account on the DID for the RSE expression. What proves a rule is ours is its comment, which
carries the creating object's UID: a rule adopted through DuplicateRule is used, and deleted
only when its creator was one of ours that is gone and nothing else records it (a person's rule,
without our comment, never; docs/design.md §4.6). The launch protocol decides.
"""

from __future__ import annotations

import re

from skaha_operator.domain.launch import Launch
from skaha_operator.platform.errors import Conflict, NotFound
from skaha_operator.platform.rucio import RucioClient
from skaha_operator.platform.wire import Did, RucioRule, RuleSpec
from skaha_operator.reconcile.data import RulePlan
from skaha_operator.reconcile.launch import LaunchView, Seen

CREATOR = re.compile(r"skaha-operator ([0-9a-fA-F-]{36})")


def comment_of(uid: str) -> str:
    """The comment a rule we create carries: how it is recognised as ours later."""
    return f"skaha-operator {uid}"


def created_by(rule: RucioRule, uid: str) -> bool:
    """Whether the object with `uid` created this rule."""
    return bool(uid) and comment_of(uid) in (rule.comments or "")


def creator_of(rule: RucioRule) -> str | None:
    """The UID of the object of ours that created this rule; None for a rule we did not make."""
    match = CREATOR.search(rule.comments or "")
    return match.group(1) if match else None


async def ours(
    rucio: RucioClient, plan: RulePlan, base: str, uid: str, *, only_created: bool
) -> tuple[Seen, ...]:
    """Rules of our account on the DID for the RSE expression (what DuplicateRule matches);
    with `only_created`, just those this object created (what a release may remove)."""
    rules = await rucio.list_rules_for_did(plan.scope, plan.name)
    account = rucio.account
    return tuple(
        Seen(id=r.id, name=base, state=str(r.state), live=True)
        for r in rules
        if r.rse_expression == plan.rse_expression
        and (not r.account or r.account == account)
        and (created_by(r, uid) or not only_created)
    )


async def observe(
    rucio: RucioClient,
    launch: Launch | None,
    plan: RulePlan,
    base: str,
    uid: str,
    *,
    listing: bool,
    releasing: bool,
) -> tuple[LaunchView, RucioRule | None]:
    """The rules under our (DID, RSE) when `listing`, and the recorded rule."""
    listed = None
    if listing:
        listed = await ours(rucio, plan, base, uid, only_created=releasing)
    rule_id = launch.id if launch is not None else None
    if not rule_id:
        return LaunchView(listed=listed), None
    try:
        rule = await rucio.get_rule(rule_id)
    except NotFound:
        return LaunchView(listed=listed, gone=True), None
    seen = Seen(id=rule.id, name=base, state=str(rule.state), live=True)
    return LaunchView(listed=listed, by_id=seen), rule


async def create(rucio: RucioClient, plan: RulePlan, uid: str) -> str | None:
    """POST the rule (its marker is stored), marked as ours; its id, or None on DuplicateRule
    (the next step lists and adopts the existing one). Rejected and Unavailable propagate."""
    spec = RuleSpec(
        dids=[Did(scope=plan.scope, name=plan.name)],
        copies=1,
        rse_expression=plan.rse_expression,
        lifetime=plan.lifetime_s,
        comment=comment_of(uid),
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
