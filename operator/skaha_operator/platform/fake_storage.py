"""In-memory fakes of `CavernPort` and `RucioPort` (see `fake.py` for the Skaha one).

Cavern (`docs/platform-api.md` §7): a missing parent is 404 `ContainerNotFound`, an existing
node 409 `DuplicateNode`, a non-empty container cannot be deleted (400). Rucio (§8): create
answers a list of 32-hex ids, rules go REPLICATING -> OK after `replicate_s`, disappear after
their lifetime, and a second rule on the same DID, RSE expression and copies is DuplicateRule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from skaha_operator.platform.cavern import DEFAULT_AUTHORITY, clean_path, parent_path
from skaha_operator.platform.errors import AuthError, Conflict, NotFound, Rejected
from skaha_operator.platform.fake_support import FakeClock, Faults
from skaha_operator.platform.wire import CavernNode, NodeKind, RucioRule, RuleSpec, RuleState

LENGTH_PROPERTY = "ivo://ivoa.net/vospace/core#length"
TYPE_PROPERTY = "ivo://ivoa.net/vospace/core#type"


@dataclass
class _Node:
    kind: NodeKind
    data: bytes = b""
    content_type: str = ""


class FakeCavern:
    """An in-memory Cavern tree seen by one user: `home/` and `projects/` exist.

    Like the simulator, the user may write only under `home/<user>` and `projects/` (403
    `PermissionDenied` elsewhere), and `home/<user>` appears when a Skaha launch allocates it
    (`ensure_home`, §7) or when the user creates it.
    """

    def __init__(self, user: str = "alice", authority: str = DEFAULT_AUTHORITY) -> None:
        self.user = user
        self.authority = authority
        self.faults = Faults()
        self._nodes: dict[str, _Node] = {p: _Node(NodeKind.CONTAINER) for p in ("home", "projects")}

    def ensure_home(self) -> None:
        """Allocate `home/<user>` if missing (what Skaha does on every launch, §7)."""
        self._nodes.setdefault(f"home/{self.user}", _Node(NodeKind.CONTAINER))

    def _uri(self, path: str) -> str:
        return f"vos://{self.authority}/{path}"

    def _check_write(self, path: str) -> None:
        parts = path.split("/")
        own_home = len(parts) >= 2 and parts[:2] == ["home", self.user]
        if not (own_home or (len(parts) >= 2 and parts[0] == "projects")):
            raise AuthError(f"PermissionDenied: {self._uri(path)}", status=403, service="cavern")

    def _check_read(self, path: str) -> None:
        parts = path.split("/")
        if len(parts) >= 2 and parts[0] == "home" and parts[1] != self.user:
            raise AuthError(f"PermissionDenied: {self._uri(path)}", status=403, service="cavern")

    def _container(self, path: str, error: str) -> None:
        """Raise unless `path` is an existing container."""
        node = self._nodes.get(path)
        if node is None:
            raise NotFound(f"{error}: {self._uri(path)}", status=404, service="cavern")
        if node.kind is not NodeKind.CONTAINER:
            raise Rejected("parent is not a container node", status=400, service="cavern")

    async def make_dir(self, path: str) -> bool:
        """Create one container; the parent must exist (§7)."""
        self.faults.enter("make_dir")
        path = clean_path(path)
        self._check_write(path)
        if path in self._nodes:
            return False
        self._container(parent_path(path), "ContainerNotFound")
        self._nodes[path] = _Node(NodeKind.CONTAINER)
        return True

    async def make_dirs(self, path: str) -> None:
        """Like `CavernClient.make_dirs`: leaf first, walking up only on ContainerNotFound."""
        path = clean_path(path)
        try:
            await self.make_dir(path)
        except NotFound:
            parent = parent_path(path)
            if not parent:
                raise
            await self.make_dirs(parent)
            await self.make_dir(path)

    async def put_file(
        self,
        path: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        md5: bool = True,
    ) -> None:
        """Create or overwrite a data node; the parent must be a container (§7)."""
        self.faults.enter("put_file")
        path = clean_path(path)
        self._check_write(path)
        parent = parent_path(path)
        if parent not in self._nodes:
            raise NotFound(
                f"not found: parent container {self._uri(parent)}", status=404, service="cavern"
            )
        self._container(parent, "ContainerNotFound")
        existing = self._nodes.get(path)
        if existing is not None and existing.kind is NodeKind.CONTAINER:
            raise Rejected(f"not a data node: {self._uri(path)}", status=400, service="cavern")
        self._nodes[path] = _Node(NodeKind.DATA, bytes(data), content_type)

    async def get_file(self, path: str) -> bytes:
        """The bytes of a data node."""
        self.faults.enter("get_file")
        node = self._nodes.get(clean_path(path))
        if node is None or node.kind is not NodeKind.DATA:
            raise NotFound(
                f"not found: {self._uri(clean_path(path))}", status=404, service="cavern"
            )
        return node.data

    async def get_node(self, path: str) -> CavernNode:
        """The node with its immediate children."""
        self.faults.enter("get_node")
        path = clean_path(path)
        self._check_read(path)
        node = self._nodes.get(path)
        if node is None:
            raise NotFound(f"NodeNotFound: {self._uri(path)}", status=404, service="cavern")
        children = [self._describe(p, []) for p in self._children(path)]
        return self._describe(path, children)

    async def list_dir(self, path: str) -> list[CavernNode]:
        """The children of a container."""
        return (await self.get_node(path)).children

    async def delete(self, path: str) -> bool:
        """Delete one node; a non-empty container is refused (§7)."""
        self.faults.enter("delete")
        path = clean_path(path)
        self._check_write(path)
        if path not in self._nodes:
            return False
        if self._children(path):
            name = path.rsplit("/", 1)[-1]
            raise Rejected(f"container node '{name}' is not empty", status=400, service="cavern")
        del self._nodes[path]
        return True

    async def delete_tree(self, path: str) -> int:
        """Delete children first, then the node."""
        path = clean_path(path)
        if path not in self._nodes:
            return 0
        removed = 0
        for child in self._children(path):
            removed += await self.delete_tree(child)
        return removed + int(await self.delete(path))

    def _children(self, path: str) -> list[str]:
        return sorted(p for p in self._nodes if parent_path(p) == path)

    def _describe(self, path: str, children: list[CavernNode]) -> CavernNode:
        node = self._nodes[path]
        props = {LENGTH_PROPERTY: str(len(node.data))}
        if node.kind is NodeKind.DATA and node.content_type:
            props[TYPE_PROPERTY] = node.content_type
        return CavernNode(uri=self._uri(path), kind=node.kind, properties=props, children=children)


@dataclass
class _Rule:
    spec: RuleSpec
    rule: RucioRule
    created_s: float


class FakeRucio:
    """In-memory Rucio rules for one account on a `FakeClock`."""

    def __init__(
        self, clock: FakeClock, account: str = "alice", replicate_s: float = 30.0, seed: int = 0
    ) -> None:
        self.clock = clock
        self.account = account
        self.replicate_s = replicate_s
        self.faults = Faults()
        self._rng = random.Random(seed)
        self._rules: dict[str, _Rule] = {}
        self._stuck: set[str] = set()

    def set_stuck(self, rule_id: str) -> None:
        """Make a rule report STUCK from now on (a transfer that keeps failing)."""
        self._stuck.add(rule_id)

    async def create_rule(self, spec: RuleSpec) -> list[str]:
        """One rule per DID; DuplicateRule if one exists for the DID, RSE expression, copies."""
        fault = self.faults.enter("create_rule")
        for did in spec.dids:
            if self._duplicate(did.scope, did.name, spec):
                raise Conflict(
                    "DuplicateRule: A duplicate rule for this account, did, rse_expression, "
                    "copies already exists",
                    status=409,
                    service="rucio",
                )
        ids = [self._add(spec, did.scope, did.name) for did in spec.dids]
        if fault is not None:
            raise fault.error
        return ids

    async def get_rule(self, rule_id: str) -> RucioRule:
        """The rule with its state as of now, or RuleNotFound."""
        self.faults.enter("get_rule")
        rule = self._current(rule_id)
        if rule is None:
            raise NotFound(
                f"RuleNotFound: No replication rule found with ID {rule_id}",
                status=404,
                service="rucio",
            )
        return rule

    async def list_rules_for_did(self, scope: str, name: str) -> list[RucioRule]:
        """Live rules on the DID."""
        self.faults.enter("list_rules_for_did")
        rules = [self._current(rid) for rid in list(self._rules)]
        return [r for r in rules if r is not None and (r.scope, r.name) == (scope, name)]

    async def delete_rule(self, rule_id: str, purge_replicas: bool = False) -> bool:
        """Remove a rule; False if it was already gone."""
        self.faults.enter("delete_rule")
        if self._current(rule_id) is None:
            return False
        del self._rules[rule_id]
        return True

    def _now_s(self) -> float:
        return self.clock.now().timestamp()

    def _duplicate(self, scope: str, name: str, spec: RuleSpec) -> bool:
        for rid in list(self._rules):
            rule = self._current(rid)
            if rule is None:
                continue
            same_did = (rule.scope, rule.name) == (scope, name)
            if same_did and (rule.rse_expression, rule.copies) == (
                spec.rse_expression,
                spec.copies,
            ):
                return True
        return False

    def _add(self, spec: RuleSpec, scope: str, name: str) -> str:
        rule_id = f"{self._rng.getrandbits(128):032x}"
        now = self.clock.now()
        expires = now + timedelta(seconds=spec.lifetime) if spec.lifetime else None
        rule = RucioRule(
            id=rule_id,
            account=self.account,
            scope=scope,
            name=name,
            did_type="DATASET",
            state=RuleState.REPLICATING,
            rse_expression=spec.rse_expression,
            copies=spec.copies,
            expires_at=expires,
            locks_replicating_cnt=1,
            grouping=spec.grouping,
            activity=spec.activity,
            created_at=now,
            updated_at=now,
        )
        self._rules[rule_id] = _Rule(spec, rule, self._now_s())
        return rule_id

    def _current(self, rule_id: str) -> RucioRule | None:
        entry = self._rules.get(rule_id)
        if entry is None:
            return None
        rule = entry.rule
        if rule.expires_at is not None and self.clock.now() >= rule.expires_at:
            del self._rules[rule_id]
            return None
        if rule_id in self._stuck:
            state, counts = RuleState.STUCK, (0, 0, 1)
        elif self._now_s() >= entry.created_s + self.replicate_s:
            state, counts = RuleState.OK, (1, 0, 0)
        else:
            state, counts = RuleState.REPLICATING, (0, 1, 0)
        return rule.model_copy(
            update={
                "state": state,
                "locks_ok_cnt": counts[0],
                "locks_replicating_cnt": counts[1],
                "locks_stuck_cnt": counts[2],
            }
        )
