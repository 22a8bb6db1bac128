"""Rucio accounts, tokens and replication rules (`docs/platform-api.md` §8, §9.9).

A rule's state is derived from the clock: `INJECT` (asynchronous) → `REPLICATING` → `OK` after
`replicate_s`, or `STUCK` with probability `p_stuck`, returning to `REPLICATING` after
`stuck_recover_s` when set; `WAITING_APPROVAL` when `ask_approval`. Lock counters follow the
state. After `lifetime` the rule is removed (GET 404 `RuleNotFound`). Dates are RFC 1123.
A rule created under `commit_delay_s` has `created` in the future and is invisible until then
(GET 404, not listed), but already blocks a duplicate (409), as Rucio's unique constraint on
account, DID, RSE expression and copies would once the first transaction commits.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from skaha_operator.simulator.clock import SimClock, rfc1123_utc
from skaha_operator.simulator.config import SimulatorConfig
from skaha_operator.simulator.errors import SimError

INJECT_S = 1.0


class RuleState(StrEnum):
    """Rule states serialised by enum name (§8)."""

    REPLICATING = "REPLICATING"
    OK = "OK"
    STUCK = "STUCK"
    SUSPENDED = "SUSPENDED"
    WAITING_APPROVAL = "WAITING_APPROVAL"
    INJECT = "INJECT"


@dataclass
class SimRule:
    """One replication rule and its sampled schedule."""

    id: str
    account: str
    scope: str
    name: str
    rse_expression: str
    copies: int
    created: float
    replicate_s: float
    stuck: bool
    lifetime: float | None
    grouping: str
    activity: str | None
    asynchronous: bool
    ask_approval: bool
    priority: int
    notification: str
    updated: float
    options: dict[str, Any] = field(default_factory=dict)
    forced: RuleState | None = None

    def expires_at(self) -> float | None:
        """Creation (or last lifetime update) plus lifetime."""
        return None if self.lifetime is None else self.updated + self.lifetime

    def state_at(self, now: float, recover_s: float | None) -> RuleState:
        """The state at `now`; see the module docstring."""
        if self.forced is not None:
            return self.forced
        if self.ask_approval:
            return RuleState.WAITING_APPROVAL
        begin = self.created + (INJECT_S if self.asynchronous else 0.0)
        if now < begin:
            return RuleState.INJECT
        done = begin + self.replicate_s
        if now < done:
            return RuleState.REPLICATING
        if not self.stuck:
            return RuleState.OK
        if recover_s is None or now < done + recover_s:
            return RuleState.STUCK
        return RuleState.REPLICATING if now < done + recover_s + self.replicate_s else RuleState.OK


class RucioStore:
    """Tokens and rules, with the seeded schedule RNG."""

    def __init__(self, config: SimulatorConfig, clock: SimClock) -> None:
        self.config = config
        self.clock = clock
        self._rng = random.Random(f"{config.seed}-rucio")
        self._tokens: dict[str, tuple[str, float]] = {}
        self._rules: dict[str, SimRule] = {}

    # -- auth -----------------------------------------------------------------------------
    def login(
        self, account: str | None, username: str | None, password: str | None
    ) -> tuple[str, str]:
        """GET /auth/userpass: a token and its RFC 1123 expiry, or 401 CannotAuthenticate."""
        table = self.config.rucio_userpass
        ok = bool(account and username and password)
        if ok and table is not None:
            ok = table.get(username or "") == password
        if not ok:
            raise SimError(
                401,
                f"Cannot authenticate with given credentials for account {account}",
                exception_class="CannotAuthenticate",
            )
        token = f"{account}-{username}-sim-{uuid.UUID(int=self._rng.getrandbits(128)).hex}"
        expires = self.clock.now() + self.config.rucio_token_lifetime_s
        self._tokens[token] = (account or "", expires)
        return token, rfc1123_utc(expires)

    def peek_account(self, token: str) -> str | None:
        """The account behind a live token, or None (for request counting; never raises)."""
        entry = self._tokens.get(token)
        return entry[0] if entry is not None and entry[1] > self.clock.now() else None

    def revoke_tokens(self, account: str | None = None) -> int:
        """Forget issued tokens (of one account, or all); returns how many were revoked."""
        gone = [t for t, (acc, _) in self._tokens.items() if account is None or acc == account]
        for token in gone:
            del self._tokens[token]
        return len(gone)

    def account_for(self, token: str | None) -> str:
        """The account behind `X-Rucio-Auth-Token`, or 401."""
        entry = self._tokens.get(token or "")
        if entry is None or entry[1] <= self.clock.now():
            raise SimError(
                401,
                "Cannot authenticate to account with given token",
                exception_class="CannotAuthenticate",
            )
        return entry[0]

    # -- rules ----------------------------------------------------------------------------
    def add_rules(
        self, account: str, body: dict[str, Any], commit_delay_s: float = 0.0
    ) -> list[str]:
        """POST /rules/: one rule per DID; 409 DuplicateRule on same DID+RSE expression+copies.

        The rules are committed (visible) `commit_delay_s` from now on the simulator clock.
        """
        dids = body.get("dids")
        rse = body.get("rse_expression")
        copies = body.get("copies")
        if (
            not isinstance(dids, list)
            or not dids
            or not isinstance(rse, str)
            or not isinstance(copies, int)
        ):
            raise SimError(
                400, "dids, copies and rse_expression are required", exception_class="InvalidObject"
            )
        rses = self.config.rucio_rses
        if rses is not None and rse not in rses:
            raise SimError(
                409, f"Expression {rse} is not valid", exception_class="InvalidRSEExpression"
            )
        pairs = [self._did(did) for did in dids]
        for scope, name in pairs:
            if self._duplicate(scope, name, rse, copies):
                raise SimError(
                    409,
                    "A duplicate rule for this account, did, rse_expression, copies already exists",
                    exception_class="DuplicateRule",
                )
        lifetime = body.get("lifetime")
        comment = body.get("comment")  # kept and answered as `comments`, as Rucio does
        now = self.clock.now() + commit_delay_s
        ids = []
        for scope, name in pairs:
            rule = SimRule(
                id=uuid.UUID(int=self._rng.getrandbits(128)).hex,
                account=account,
                scope=scope,
                name=name,
                rse_expression=rse,
                copies=copies,
                created=now,
                replicate_s=self._draw_replicate(),
                stuck=self._rng.random() < self.config.p_stuck,
                lifetime=float(lifetime) if isinstance(lifetime, int | float) else None,
                grouping=str(body.get("grouping") or "DATASET"),
                activity=body.get("activity"),
                asynchronous=bool(body.get("asynchronous")),
                ask_approval=bool(body.get("ask_approval")),
                priority=int(body.get("priority") or 3),
                notification=str(body.get("notify") or "N"),
                updated=now,
                options={"comment": comment} if isinstance(comment, str) else {},
            )
            self._rules[rule.id] = rule
            ids.append(rule.id)
        return ids

    def _draw_replicate(self) -> float:
        drawn = self._rng.lognormvariate(math.log(self.config.replicate_median_s), 0.8)
        return drawn if self.config.replicate_s is None else self.config.replicate_s

    def _did(self, did: Any) -> tuple[str, str]:
        if (
            not isinstance(did, dict)
            or not isinstance(did.get("scope"), str)
            or not isinstance(did.get("name"), str)
        ):
            raise SimError(400, "a DID needs a scope and a name", exception_class="InvalidObject")
        scope, name = did["scope"], did["name"]
        known = self.config.rucio_known_dids
        if known is not None and f"{scope}:{name}" not in known:
            raise SimError(
                404,
                f"Data identifier '{scope}:{name}' not found",
                exception_class="DataIdentifierNotFound",
            )
        return scope, name

    def _duplicate(self, scope: str, name: str, rse: str, copies: int) -> bool:
        return any(
            (r.scope, r.name, r.rse_expression, r.copies) == (scope, name, rse, copies)
            for r in self._live_rules()
        )

    def _live_rules(self) -> list[SimRule]:
        """Rules not expired, committed or not; expired ones are removed on the way."""
        now = self.clock.now()
        for rule in list(self._rules.values()):
            expires = rule.expires_at()
            if expires is not None and expires <= now:
                del self._rules[rule.id]
        return list(self._rules.values())

    def rules(self, committed_before: float | None = None) -> list[SimRule]:
        """Visible rules: committed (by `committed_before`, default now) and not expired."""
        moment = self.clock.now() if committed_before is None else committed_before
        return [rule for rule in self._live_rules() if rule.created <= moment]

    def get(self, rule_id: str) -> SimRule:
        """One visible rule (committed, not expired), or 404 RuleNotFound."""
        now = self.clock.now()
        rule = self._rules.get(rule_id)
        expires = rule.expires_at() if rule is not None else None
        if expires is not None and expires <= now:
            del self._rules[rule_id]
            rule = None
        if rule is None or rule.created > now:
            raise SimError(
                404,
                f"No replication rule found with the id {rule_id}",
                exception_class="RuleNotFound",
            )
        return rule

    def update(self, rule_id: str, options: dict[str, Any]) -> None:
        """PUT /rules/{id} {"options": {...}}; `lifetime` restarts the expiry clock."""
        rule = self.get(rule_id)
        if "lifetime" in options:
            value = options["lifetime"]
            rule.lifetime = float(value) if isinstance(value, int | float) else None
        rule.options.update(options)
        rule.updated = self.clock.now()

    def delete(self, rule_id: str) -> None:
        """DELETE /rules/{id}."""
        self.get(rule_id)
        del self._rules[rule_id]

    def force(self, rule_id: str, state: RuleState) -> None:
        """Pin a rule's state (control API)."""
        self.get(rule_id).forced = state

    def to_json(self, rule: SimRule) -> dict[str, Any]:
        """The ReplicationRule fields a client reads (§8), states by name, dates RFC 1123."""
        now = self.clock.now()
        state = rule.state_at(now, self.config.stuck_recover_s)
        expires = rule.expires_at()
        locks = {RuleState.OK: 0, RuleState.REPLICATING: 0, RuleState.STUCK: 0}
        # INJECT, WAITING_APPROVAL and SUSPENDED hold no counted locks.
        if state in locks:
            locks[state] = rule.copies
        return {
            "id": rule.id,
            "subscription_id": None,
            "account": rule.account,
            "scope": rule.scope,
            "name": rule.name,
            "did_type": "DATASET",
            "state": state.value,
            "error": "transfer failed: simulated source unavailable"
            if state is RuleState.STUCK
            else None,
            "rse_expression": rule.rse_expression,
            "copies": rule.copies,
            "expires_at": rfc1123_utc(expires) if expires is not None else None,
            "weight": None,
            "locked": bool(rule.options.get("locked", False)),
            "locks_ok_cnt": locks[RuleState.OK],
            "locks_replicating_cnt": locks[RuleState.REPLICATING],
            "locks_stuck_cnt": locks[RuleState.STUCK],
            "source_replica_expression": None,
            "activity": rule.activity or "User Subscriptions",
            "grouping": rule.grouping,
            "notification": rule.notification,
            "stuck_at": rfc1123_utc(rule.created + rule.replicate_s)
            if state is RuleState.STUCK
            else None,
            "purge_replicas": False,
            "ignore_availability": False,
            "ignore_account_limit": False,
            "priority": rule.priority,
            "comments": rule.options.get("comment"),
            "child_rule_id": None,
            "eol_at": None,
            "split_container": False,
            "meta": None,
            "created_at": rfc1123_utc(rule.created),
            "updated_at": rfc1123_utc(rule.updated),
        }
