"""Cavern and Rucio contract, against the fakes and the simulator.

Facts: docs/platform-api.md §7–§8 and §9.11 l–m.
"""

from __future__ import annotations

import re

import pytest

from skaha_operator.platform.errors import AuthError, Conflict, NotFound, Rejected
from skaha_operator.platform.wire import Did, NodeKind, RuleSpec, RuleState, SessionParams
from tests.contract.conftest import REPLICATE_S, USER, Target

RULE_ID = re.compile(r"[0-9a-f]{32}")
HEADLESS_IMAGE = "images.canfar.net/skaha/terminal:1.1.2"


def spec(name: str = "vis.ms", rse: str = "UKSRC_RAL", lifetime: int | None = 86400) -> RuleSpec:
    return RuleSpec(dids=[Did(scope="ska", name=name)], rse_expression=rse, lifetime=lifetime)


# ---------------------------------------------------------------- Cavern


async def test_a_launch_allocates_the_user_home(target: Target) -> None:
    with pytest.raises(NotFound):
        await target.cavern.get_node(target.home)
    await target.skaha.create_session(SessionParams(name="j", image=HEADLESS_IMAGE))
    node = await target.cavern.get_node(target.home)
    assert node.kind is NodeKind.CONTAINER
    assert node.uri == f"vos://cadc.nrc.ca~arc/home/{USER}"
    assert node.children == []


async def test_writes_are_allowed_only_in_own_home_and_projects(target: Target) -> None:
    with pytest.raises(AuthError, match="PermissionDenied"):
        await target.cavern.make_dir("home/bob")
    with pytest.raises(AuthError, match="PermissionDenied"):
        await target.cavern.make_dir("scratch")
    with pytest.raises(AuthError, match="PermissionDenied"):
        await target.cavern.get_node("home/bob/x")
    assert await target.cavern.make_dir("projects/survey") is True


async def test_make_dir_needs_its_parent(target: Target) -> None:
    assert await target.cavern.make_dir(target.home) is True
    with pytest.raises(NotFound, match="ContainerNotFound"):  # (l) no mkdir -p
        await target.cavern.make_dir(f"{target.home}/a/b")
    assert await target.cavern.make_dir(f"{target.home}/a") is True
    assert await target.cavern.make_dir(f"{target.home}/a") is False
    assert await target.cavern.make_dir(f"{target.home}/a/b") is True


async def test_make_dirs_creates_every_level(target: Target) -> None:
    await target.cavern.make_dirs(f"{target.home}/x/y/z")
    await target.cavern.make_dirs(f"{target.home}/x/y/z")  # again: nothing to do, no error
    assert [c.name for c in await target.cavern.list_dir(f"{target.home}/x")] == ["y"]
    node = await target.cavern.get_node(f"{target.home}/x/y/z")
    assert node.kind is NodeKind.CONTAINER
    assert node.children == []


async def test_files_upload_overwrite_and_read_back(target: Target) -> None:
    folder = f"{target.home}/nb"
    await target.cavern.make_dirs(folder)
    await target.cavern.put_file(f"{folder}/requirements.txt", b"numpy\n", "text/plain")
    await target.cavern.put_file(f"{folder}/requirements.txt", b"numpy\nscipy\n", "text/plain")
    await target.cavern.put_file(f"{folder}/a.ipynb", b"{}", "application/x-ipynb+json", md5=False)
    assert await target.cavern.get_file(f"{folder}/requirements.txt") == b"numpy\nscipy\n"
    children = await target.cavern.list_dir(folder)
    assert sorted((c.name, c.kind) for c in children) == [
        ("a.ipynb", NodeKind.DATA),
        ("requirements.txt", NodeKind.DATA),
    ]
    node = await target.cavern.get_node(f"{folder}/requirements.txt")
    assert node.properties["ivo://ivoa.net/vospace/core#length"] == "12"


async def test_upload_needs_an_existing_parent(target: Target) -> None:
    with pytest.raises(NotFound):
        await target.cavern.put_file(f"{target.home}/missing/f.txt", b"x")


async def test_non_empty_container_cannot_be_deleted_directly(target: Target) -> None:
    await target.cavern.make_dirs(f"{target.home}/d/e")
    await target.cavern.put_file(f"{target.home}/d/f.txt", b"x")
    with pytest.raises(Rejected, match="container node 'd' is not empty"):  # (l)
        await target.cavern.delete(f"{target.home}/d")
    assert await target.cavern.delete_tree(f"{target.home}/d") == 3
    with pytest.raises(NotFound):
        await target.cavern.get_node(f"{target.home}/d")
    assert await target.cavern.delete(f"{target.home}/d") is False
    assert await target.cavern.delete_tree(f"{target.home}/d") == 0


# ---------------------------------------------------------------- Rucio


async def test_rule_create_returns_a_list_of_hex_ids(target: Target) -> None:
    ids = await target.rucio.create_rule(spec())
    assert len(ids) == 1  # (m) a JSON array, not an object
    assert RULE_ID.fullmatch(ids[0])


async def test_rule_replicates_then_is_ok(target: Target) -> None:
    (rule_id,) = await target.rucio.create_rule(spec())
    rule = await target.rucio.get_rule(rule_id)
    assert (rule.state, rule.locks_replicating_cnt, rule.locks_ok_cnt) == (
        RuleState.REPLICATING,
        1,
        0,
    )
    assert (rule.scope, rule.name, rule.rse_expression, rule.copies) == (
        "ska",
        "vis.ms",
        "UKSRC_RAL",
        1,
    )
    assert rule.account == USER
    assert rule.created_at is not None
    assert rule.created_at.tzinfo is not None  # (m) RFC 1123 dates parsed, in UTC
    assert rule.expires_at is not None
    assert (rule.expires_at - rule.created_at).total_seconds() == 86400
    target.advance(REPLICATE_S + 1)
    ok = await target.rucio.get_rule(rule_id)
    assert (ok.state, ok.locks_replicating_cnt, ok.locks_ok_cnt) == (RuleState.OK, 0, 1)


async def test_duplicate_rule_is_a_conflict(target: Target) -> None:
    await target.rucio.create_rule(spec())
    with pytest.raises(Conflict, match="DuplicateRule"):
        await target.rucio.create_rule(spec())
    other = await target.rucio.create_rule(spec(rse="UKSRC_MAN"))
    assert len(other) == 1


async def test_list_rules_for_a_did(target: Target) -> None:
    (a,) = await target.rucio.create_rule(spec(rse="RSE_A"))
    (b,) = await target.rucio.create_rule(spec(rse="RSE_B"))
    await target.rucio.create_rule(spec(name="other.ms"))
    rules = await target.rucio.list_rules_for_did("ska", "vis.ms")
    assert sorted(r.id for r in rules) == sorted([a, b])
    assert await target.rucio.list_rules_for_did("ska", "nothing.ms") == []


async def test_delete_rule_then_it_is_gone(target: Target) -> None:
    (rule_id,) = await target.rucio.create_rule(spec())
    assert await target.rucio.delete_rule(rule_id) is True
    with pytest.raises(NotFound, match="RuleNotFound"):
        await target.rucio.get_rule(rule_id)
    assert await target.rucio.delete_rule(rule_id) is False
    await target.rucio.create_rule(spec())  # no longer a duplicate


async def test_rule_disappears_after_its_lifetime(target: Target) -> None:
    (rule_id,) = await target.rucio.create_rule(spec(lifetime=600))
    target.advance(601)
    with pytest.raises(NotFound):
        await target.rucio.get_rule(rule_id)
