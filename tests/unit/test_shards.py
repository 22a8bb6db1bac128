"""The pure parts of sharding (runtime/shards.py): which shard an object is in, the fair share,
and what one Lease round writes, one case per row."""

from __future__ import annotations

import collections
from datetime import UTC, datetime, timedelta

import pytest

from skaha_operator.k8s.leases import LeaseRecord, micro_time
from skaha_operator.runtime.shards import (
    LeaseConfig,
    default_group,
    fair_share,
    live_members,
    plan_round,
    shard_key,
    shard_of,
    split_listing,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
CFG = LeaseConfig(namespace="ops", group="g", identity="a", shards=8)


def lease(holder: str | None, age: float = 0.0, name: str = "x") -> LeaseRecord:
    return LeaseRecord(
        name=name,
        holder=holder,
        renewed=NOW - timedelta(seconds=age) if holder else None,
        duration=10.0,
        version="1",
    )


def owned(name: str, session: str) -> dict[str, object]:
    owner = {
        "apiVersion": "skaha.broker.dev/v1alpha1",
        "kind": "Session",
        "name": session,
        "uid": "u",
        "controller": True,
    }
    return {"metadata": {"name": name, "ownerReferences": [owner]}}


def test_a_session_and_its_parts_share_a_shard() -> None:
    session = {"metadata": {"name": "s1"}}
    parts = [owned("s1-compute", "s1"), owned("s1-executable", "s1")]
    assert shard_key("ns", session) == "ns/s1"
    assert {shard_of("ns", b, 16) for b in [session, *parts]} == {shard_of("ns", session, 16)}


def test_a_foreign_owner_does_not_move_an_object() -> None:
    body = {
        "metadata": {
            "name": "c",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "controller": True}
            ],
        }
    }
    assert shard_key("ns", body) == "ns/c"


def test_the_shard_is_stable_and_spreads_names() -> None:
    # CRC-32, not Python's per-process salted hash: every replica computes the same shard.
    assert shard_of("ns", {"metadata": {"name": "s1"}}, 16) == shard_of(
        "ns", {"metadata": {"name": "s1"}}, 16
    )
    counts = collections.Counter(
        shard_of("ns", {"metadata": {"name": f"s{i}"}}, 16) for i in range(1600)
    )
    assert set(counts) == set(range(16))
    assert max(counts.values()) < 2 * min(counts.values())


@pytest.mark.parametrize(
    ("shards", "members", "share"), [(16, 1, 16), (16, 2, 8), (16, 3, 6), (16, 0, 16), (5, 2, 3)]
)
def test_fair_share(shards: int, members: int, share: int) -> None:
    assert fair_share(shards, members) == share


def test_a_lone_replica_takes_every_shard() -> None:
    plan = plan_round(CFG, {}, 1, NOW)
    assert plan.keep == ()
    assert plan.release == ()
    assert sorted(plan.acquire) == list(range(8))


def test_a_second_member_makes_the_holder_give_up_half() -> None:
    leases = {i: lease("a") for i in range(8)}
    plan = plan_round(CFG, leases, 2, NOW)
    assert plan.keep == (0, 1, 2, 3)
    assert plan.release == (4, 5, 6, 7)
    assert plan.acquire == ()


def test_the_newcomer_takes_only_free_shards_up_to_its_share() -> None:
    b = LeaseConfig(namespace="ops", group="g", identity="b", shards=8)
    leases = {i: lease("a") for i in range(4)} | {i: lease(None) for i in range(4, 8)}
    assert sorted(plan_round(b, leases, 2, NOW).acquire) == [4, 5, 6, 7]
    # Nothing free yet: a live holder's shards are never taken.
    busy = {i: lease("a") for i in range(8)}
    assert plan_round(b, busy, 2, NOW).acquire == ()


def test_expired_shards_of_a_dead_replica_are_taken_after_free_ones() -> None:
    leases = {i: lease("a") for i in range(4)}
    leases |= {4: lease("dead", age=11), 5: lease("dead", age=11), 6: lease("dead", age=9)}
    plan = plan_round(CFG, leases, 1, NOW)
    assert plan.keep == (0, 1, 2, 3)
    # 7 has no Lease yet (free), 4 and 5 expired, 6 is still live.
    assert set(plan.acquire) == {7, 4, 5}
    assert plan.acquire[0] == 7


def test_shards_a_previous_process_with_our_identity_held_are_ours() -> None:
    leases = {i: lease("a", age=30) for i in range(8)}
    assert plan_round(CFG, leases, 1, NOW).keep == tuple(range(8))


def test_live_members_counts_ourselves_and_only_live_others() -> None:
    members = [lease("a"), lease("b", age=3), lease("c", age=12), lease(None)]
    assert live_members(members, "a", NOW) == 2
    assert live_members([], "a", NOW) == 1


def test_the_listing_splits_into_shards_and_members() -> None:
    def rec(name: str, role: str) -> LeaseRecord:
        return LeaseRecord(name, "a", NOW, 10, "1", labels={"skaha.broker.dev/lease-role": role})

    listed = [rec("g-shard-0", "shard"), rec("g-shard-7", "shard"), rec("g-shard-8", "shard"),
              rec("g-shard-x", "shard"), rec("g-member-a", "member")]  # fmt: skip
    shards, members = split_listing(CFG, listed)
    assert sorted(shards) == [0, 7]  # 8 is beyond --shards, x is not ours
    assert [m.name for m in members] == ["g-member-a"]


def test_groups_and_names() -> None:
    assert default_group([]) == "skaha-operator"
    assert default_group(["b", "a"]) == default_group(["a", "b"]) != default_group(["a"])
    cfg = LeaseConfig(namespace="ops", group="g", identity="Pod_Name.1", shards=4)
    assert cfg.shard_name(3) == "g-shard-3"
    assert cfg.member_name().startswith("g-member-pod-name-1-")
    long = LeaseConfig(namespace="ops", group="x" * 80, identity="a")
    assert len(long.labels("shard")["skaha.broker.dev/lease-group"]) <= 63


def test_micro_time_has_six_digits_even_on_a_whole_second() -> None:
    assert micro_time(NOW) == "2026-01-01T12:00:00.000000Z"
