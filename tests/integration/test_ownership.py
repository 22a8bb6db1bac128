"""Release removes only what is provably ours (docs/design.md §4.6): the real operator, API server
and simulator.

What must hold:
- a Storage with `releasePolicy: Delete` on a directory that existed before (seeded into the
  simulator's Cavern) leaves the directory and the file in it when it goes; a Storage that created
  two levels removes exactly those two, not the level above (or the area root) nor a sibling;
- two Storages on the same path in two namespaces (each with its own SkahaPlatform on the same
  simulator and user), both Delete: deleting the one that created the directory leaves the
  other's data;
- two Data in two namespaces on the same DID and RSE share one Rucio rule: deleting either keeps
  it while the other exists, deleting both removes it (whichever goes first, or both at once); a
  rule made outside the operator (straight against the simulator's Rucio API) before the Data
  survives both; a Data on another Rucio that records the same rule id does not keep it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.simulator import Simulator
from skaha_operator.simulator.errors import SimError
from tests.integration.operator_harness import (
    create,
    delete,
    drain_namespace,
    get,
    platform_objects,
    status,
    wait_for,
)

pytestmark = pytest.mark.integration

AV = f"{GROUP}/{VERSION}"
RSE = "SRCNET_LOCAL"


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def other_namespace(api_client: client.ApiClient, namespace: str) -> Iterator[str]:
    """A second fresh namespace next to `namespace`, deleted afterwards."""
    name = f"{namespace[:50]}-b"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    drain_namespace(api_client, name)


def with_platform(api: client.ApiClient, ns: str, sim: Simulator, *, rucio: bool = False) -> None:
    for obj in platform_objects(ns, sim.base_url, rucio=rucio):  # type: ignore[attr-defined]
        create(api, ns, obj)


def storage(name: str, path: str, *, area: str = "home", policy: str = "Delete") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "platformRef": "local",
        "area": area,
        "path": path,
        "releasePolicy": policy,
    }
    if area == "project":
        spec["project"] = "survey"
    return {"apiVersion": AV, "kind": "Storage", "metadata": {"name": name}, "spec": spec}


def rucio_data(name: str, storage_ref: str, did: str) -> dict[str, Any]:
    return {
        "apiVersion": AV,
        "kind": "Data",
        "metadata": {"name": name},
        "spec": {
            "platformRef": "local",
            "storageRef": storage_ref,
            "releasePolicy": "Delete",
            "rucio": {"did": did, "rseExpression": RSE, "lifetime": "24h"},
        },
    }


def wait_phase(
    api: client.ApiClient, ns: str, kind: str, name: str, want: str, t: float = 120
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        st = status(api, ns, kind, name)
        return st if st.get("phase") == want else None

    found: dict[str, Any] = wait_for(f"{kind} {ns}/{name} {want}", probe, t)
    return found


def delete_and_wait(api: client.ApiClient, ns: str, kind: str, name: str, t: float = 90) -> None:
    delete(api, ns, kind, name)
    wait_for(f"{kind} {ns}/{name} gone", lambda: get(api, ns, kind, name) is None, t)


def nodes(sim: Simulator, under: str) -> list[dict[str, Any]]:
    """Every Cavern node at and below `under`, with sizes and digests ([] when it is gone)."""
    try:
        return sim.cavern_tree(under)
    except SimError:
        return []


def tree(sim: Simulator, under: str) -> dict[str, str]:
    """Cavern path -> node type at and below `under` ({} when `under` does not exist)."""
    return {n["path"]: n["type"] for n in nodes(sim, under)}


def rules_on(sim: Simulator, scope: str, name: str) -> list[str]:
    return [r.id for r in sim.state.rucio.rules() if (r.scope, r.name) == (scope, name)]


def rule_comment(sim: Simulator, rule_id: str) -> str | None:
    comment = sim.state.rucio.get(rule_id).options.get("comment")
    return str(comment) if comment is not None else None


def outside_rule(sim: Simulator, scope: str, name: str) -> str:
    """A rule made by a person with the same Rucio account, straight against Rucio's API."""
    base = sim.base_url  # type: ignore[attr-defined]
    login = httpx.get(
        f"{base}/rucio/auth/userpass",
        headers={
            "X-Rucio-Account": "alice",
            "X-Rucio-Username": "alice",
            "X-Rucio-Password": "secret",
        },
        timeout=10,
    )
    login.raise_for_status()
    made = httpx.post(
        f"{base}/rucio/rules/",
        headers={"X-Rucio-Auth-Token": login.headers["X-Rucio-Auth-Token"]},
        json={
            "dids": [{"scope": scope, "name": name}],
            "copies": 1,
            "rse_expression": RSE,
            "comment": "pinned by alice for the survey",
        },
        timeout=10,
    )
    assert made.status_code == 201, made.text
    rule_id: str = made.json()[0]
    return rule_id


@contextmanager
def fast_replication(sim: Simulator) -> Iterator[None]:
    """Rucio rules replicate in 1 s while the block runs (the module's simulator is shared)."""
    old = sim.config.replicate_s
    sim.configure(replicate_s=1.0)
    try:
        yield
    finally:
        sim.configure(replicate_s=old)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- Storage -------------------------------------------------------------------------------------


def test_delete_storage_on_a_directory_that_existed_keeps_it_and_its_file(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Any
) -> None:
    path = unique("existing")
    node = f"home/alice/{path}"
    sim.seed_cavern(files={f"{node}/notes.txt": "written before the operator saw it\n"})
    before = sim.cavern_tree(node)
    with_platform(api_client, namespace, sim)
    create(api_client, namespace, storage("st", path))
    st = wait_phase(api_client, namespace, "Storage", "st", "Available")
    assert st["mountPath"] == f"/arc/{node}"
    assert not st.get("createdPaths")  # it made nothing: the directory was there

    delete_and_wait(api_client, namespace, "Storage", "st")
    # Nothing seeded was removed or changed.
    assert nodes(sim, node) == before
    assert tree(sim, node) == {node: "container", f"{node}/notes.txt": "data"}


def test_delete_storage_removes_exactly_the_two_levels_it_created(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Any
) -> None:
    top = f"home/alice/{unique('area')}"
    sim.seed_cavern(files={f"{top}/sibling/keep.txt": "a neighbour's file\n"})
    with_platform(api_client, namespace, sim)
    rel = top.removeprefix("home/alice/")
    create(api_client, namespace, storage("st", f"{rel}/run/out"))
    st = wait_phase(api_client, namespace, "Storage", "st", "Available")
    assert st["createdPaths"] == [f"{top}/run", f"{top}/run/out"]
    # The session's own results in the leaf go with it.
    sim.seed_cavern(files={f"{top}/run/out/result.fits": "science\n"})

    delete_and_wait(api_client, namespace, "Storage", "st")
    assert tree(sim, top) == {
        top: "container",
        f"{top}/sibling": "container",
        f"{top}/sibling/keep.txt": "data",
    }
    assert tree(sim, "home/alice").get("home/alice") == "container"


def test_storage_on_a_path_another_namespace_uses_keeps_their_data(
    api_client: client.ApiClient,
    namespace: str,
    other_namespace: str,
    sim: Simulator,
    operator: Any,
) -> None:
    path = unique("shared")
    node = f"home/alice/{path}"
    # The first namespace's Storage creates the directory; the second finds it there.
    with_platform(api_client, namespace, sim)
    create(api_client, namespace, storage("st", path))
    first = wait_phase(api_client, namespace, "Storage", "st", "Available")
    assert first["createdPaths"] == [node]
    with_platform(api_client, other_namespace, sim)
    create(api_client, other_namespace, storage("st", path))
    second = wait_phase(api_client, other_namespace, "Storage", "st", "Available")
    assert not second.get("createdPaths")
    assert second["uri"] == first["uri"]
    sim.seed_cavern(files={f"{node}/theirs.txt": "the other namespace's results\n"})

    # The creator goes first: with Delete it would remove the directory, but the other
    # namespace's Storage resolves to the same location, so it is kept whole.
    delete_and_wait(api_client, namespace, "Storage", "st")
    assert tree(sim, node) == {node: "container", f"{node}/theirs.txt": "data"}
    assert status(api_client, other_namespace, "Storage", "st")["phase"] == "Available"

    # The second created nothing there: it removes nothing either (docs/troubleshooting.md).
    delete_and_wait(api_client, other_namespace, "Storage", "st")
    assert tree(sim, node) == {node: "container", f"{node}/theirs.txt": "data"}


# -- Rucio rules ---------------------------------------------------------------------------------


def two_data_on_one_did(
    api: client.ApiClient, sim: Simulator, namespaces: tuple[str, str], did_name: str
) -> list[str]:
    """A Storage and a Rucio Data on `user.alice:<did_name>` in each namespace, one after the
    other; both Available. Returns the rule id each records."""
    ids = []
    for ns in namespaces:
        with_platform(api, ns, sim, rucio=True)
        create(api, ns, storage("st", f"rules/{did_name}", area="project", policy="Retain"))
        create(api, ns, rucio_data("obs", "st", f"user.alice:{did_name}"))
        st = wait_phase(api, ns, "Data", "obs", "Available", 150)
        ids.append(st["rule"]["id"])
    return ids


@pytest.mark.parametrize("first", ["creator", "adopter"])
def test_rule_shared_by_two_namespaces_is_kept_until_the_last_data_goes(
    api_client: client.ApiClient,
    namespace: str,
    other_namespace: str,
    sim: Simulator,
    operator: Any,
    first: str,
) -> None:
    did_name = unique("obs")
    with fast_replication(sim):
        ids = two_data_on_one_did(api_client, sim, (namespace, other_namespace), did_name)
    # One rule (Rucio refuses a duplicate): made by the first Data, adopted by the second.
    assert rules_on(sim, "user.alice", did_name) == [ids[0]] == [ids[1]]
    creator_uid = get(api_client, namespace, "Data", "obs")["metadata"]["uid"]  # type: ignore[index]
    assert rule_comment(sim, ids[0]) == f"skaha-operator {creator_uid}"

    order = (namespace, other_namespace) if first == "creator" else (other_namespace, namespace)
    delete_and_wait(api_client, order[0], "Data", "obs")
    assert rules_on(sim, "user.alice", did_name) == [ids[0]]  # the other Data still uses it
    assert status(api_client, order[1], "Data", "obs")["phase"] == "Available"

    delete_and_wait(api_client, order[1], "Data", "obs")
    wait_for("the rule deleted", lambda: not rules_on(sim, "user.alice", did_name), 60)


def test_two_datas_deleted_at_once_remove_their_shared_rule(
    api_client: client.ApiClient,
    namespace: str,
    other_namespace: str,
    sim: Simulator,
    operator: Any,
) -> None:
    """Both Data on one rule deleted at the same moment, neither used by a Compute: each release
    must not keep the rule for the other, which is going too. Rucio answers its rule reads 2 s
    late, so both releases are in flight together and each finds the other still there."""
    did_name = unique("both")
    with fast_replication(sim):
        ids = two_data_on_one_did(api_client, sim, (namespace, other_namespace), did_name)
    assert ids[0] == ids[1]
    sim.set_faults([{"route": "/rucio/rules/*", "method": "GET", "latency_ms": 2000}])
    try:
        delete(api_client, namespace, "Data", "obs")
        delete(api_client, other_namespace, "Data", "obs")
        for ns in (namespace, other_namespace):
            wait_for(
                f"Data {ns}/obs gone", lambda ns=ns: get(api_client, ns, "Data", "obs") is None, 90
            )
    finally:
        sim.clear_faults()
    wait_for("the rule deleted", lambda: not rules_on(sim, "user.alice", did_name), 60)


def test_same_rule_id_recorded_against_another_rucio_does_not_keep_the_rule(
    api_client: client.ApiClient,
    namespace: str,
    other_namespace: str,
    sim: Simulator,
    operator: Any,
) -> None:
    """A rule id names a rule only on its own Rucio server. A Data on another server (here one
    that no longer answers, as a namespace left terminating by an operator that has gone) that
    records the same id must not make the release keep ours: two simulators with the same seed
    hand out the same ids, and a clean-clone run kept a rule this way."""
    did_name = unique("solo")
    with fast_replication(sim):
        with_platform(api_client, namespace, sim, rucio=True)
        create(api_client, namespace, storage("st", f"rules/{did_name}", area="project"))
        create(api_client, namespace, rucio_data("obs", "st", f"user.alice:{did_name}"))
        rule_id = wait_phase(api_client, namespace, "Data", "obs", "Available", 150)["rule"]["id"]

    # The other namespace's platform points at a Rucio that does not answer; its Data records
    # the same rule id (as a Data of another simulator with the same seed would).
    for obj in platform_objects(other_namespace, "http://127.0.0.1:9", rucio=True):
        create(api_client, other_namespace, obj)
    create(api_client, other_namespace, rucio_data("obs", "st", f"user.alice:{did_name}"))
    custom = client.CustomObjectsApi(api_client)
    recorded = {"id": rule_id, "name": did_name, "pendingSince": "2026-01-01T00:00:00Z"}
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, other_namespace, "data", "obs", {"status": {"rule": recorded}}
    )
    wait_for(
        "the other Data recording the id",
        lambda: (
            (status(api_client, other_namespace, "Data", "obs").get("rule") or {}).get("id")
            == rule_id
        ),
        30,
    )
    try:
        delete_and_wait(api_client, namespace, "Data", "obs")
        wait_for("the rule deleted", lambda: not rules_on(sim, "user.alice", did_name), 60)
        # The window was open: the other Data still recorded the same id all along.
        assert status(api_client, other_namespace, "Data", "obs")["rule"]["id"] == rule_id
    finally:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, other_namespace, "data", "obs",
            {"metadata": {"annotations": {"skaha.broker.dev/abandon": "true"}}},
        )  # fmt: skip
        delete_and_wait(api_client, other_namespace, "Data", "obs")


def test_rule_made_outside_the_operator_survives_both_datas(
    api_client: client.ApiClient,
    namespace: str,
    other_namespace: str,
    sim: Simulator,
    operator: Any,
) -> None:
    did_name = unique("pinned")
    with fast_replication(sim):
        theirs = outside_rule(sim, "user.alice", did_name)
        ids = two_data_on_one_did(api_client, sim, (namespace, other_namespace), did_name)
    # Both Data use the person's rule (DuplicateRule, adopted); neither made one of its own.
    assert ids == [theirs, theirs]
    assert rules_on(sim, "user.alice", did_name) == [theirs]

    delete_and_wait(api_client, namespace, "Data", "obs")
    delete_and_wait(api_client, other_namespace, "Data", "obs")
    assert rules_on(sim, "user.alice", did_name) == [theirs]
    assert rule_comment(sim, theirs) == "pinned by alice for the survey"
