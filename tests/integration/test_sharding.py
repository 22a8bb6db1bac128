"""Two operator replicas on the same namespace split the work by shard Leases (runtime/shards.py):
each launches about half of 40 Sessions, every launch is made by the holder of the Session's
shard, and no Skaha name is launched twice.

Who launched a Compute is read from the replicas' own logs: the Compute controller logs the
launch right after its marker is stored, in the log of the process that stored it.

The Session names are chosen so that every one of the 16 shards gets two or three of them; then
any even split of the shards (8 each) gives each replica 16 to 24 of the 40 (50% ± 10%), and the
test cannot fail on a lucky draw. With random names the share per replica is binomial around
50% (about ± 8% for one standard deviation at 40 Sessions).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from skaha_operator.controlplane import ControlPlane
from skaha_operator.runtime.shards import default_group, shard_of
from skaha_operator.simulator import Simulator, SimulatorConfig
from tests.integration.operator_harness import (
    create,
    operator_process,
    phase,
    platform_objects,
    wait_for,
)

pytestmark = pytest.mark.integration

N = 40
SHARDS = 16
IDENTITIES = ("replica-a", "replica-b")


@pytest.fixture(scope="module")
def long_sim() -> Iterator[Simulator]:
    """Headless sessions start in half a second and run for ten minutes; no interactive cap."""
    simulator = Simulator(
        SimulatorConfig(
            tokens={"tok-alice": "alice"}, pending_s=0.5, run_s=600, max_sessions=100_000
        )
    )
    handle = simulator.start_in_thread()
    simulator.base_url = handle.base_url  # type: ignore[attr-defined]
    try:
        yield simulator
    finally:
        handle.stop()
        simulator.close()


def spread_names(namespace: str, count: int, shards: int) -> list[str]:
    """`count` Session names, as evenly spread over the shards as the count allows."""
    per_shard: Counter[int] = Counter()
    names: list[str] = []
    i = 0
    while len(names) < count:
        name = f"s{i}"
        i += 1
        shard = shard_of(namespace, {"metadata": {"name": name}}, shards)
        if per_shard[shard] < -(-count // shards) and per_shard[shard] <= min(
            per_shard[s] for s in range(shards)
        ):
            per_shard[shard] += 1
            names.append(name)
    return names


def headless(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "skaha.broker.dev/v1alpha1",
        "kind": "Session",
        "metadata": {"name": name},
        "spec": {
            "platformRef": "local",
            "executable": {
                "template": {"dockerContainer": {"image": "images.canfar.net/skaha/terminal:1.1.2"}}
            },
            "compute": {"template": {"type": "headless", "command": "run.sh"}},
        },
    }


def shard_holders(api: client.ApiClient, namespace: str) -> dict[int, str | None]:
    """shard -> holder, from the group's Leases."""
    group = default_group([namespace])
    leases = client.CoordinationV1Api(api).list_namespaced_lease(namespace).items
    prefix = f"{group}-shard-"
    return {
        int(lease.metadata.name[len(prefix) :]): lease.spec.holder_identity
        for lease in leases
        if lease.metadata.name.startswith(prefix)
    }


LAUNCH_LOG = re.compile(r"Compute [^/ ]+/(\S+): marker stored, launching Skaha session")


def launchers(logs: dict[str, Path]) -> dict[str, list[str]]:
    """Compute name -> the replicas whose logs show them launching its Skaha session."""
    out: dict[str, list[str]] = {}
    for identity, log in logs.items():
        for match in LAUNCH_LOG.finditer(log.read_text(errors="replace")):
            out.setdefault(match.group(1), []).append(identity)
    return out


def test_two_replicas_split_the_sessions_and_launch_each_once(
    controlplane: ControlPlane,
    api_client: client.ApiClient,
    crds: list[str],
    namespace: str,
    long_sim: Simulator,
    tmp_path: Path,
) -> None:
    for obj in platform_objects(namespace, long_sim.base_url):  # type: ignore[attr-defined]
        create(api_client, namespace, obj)
    names = spread_names(namespace, N, SHARDS)
    with (
        operator_process(
            controlplane, tmp_path / "a.log", "-n", namespace, "--identity", IDENTITIES[0]
        ) as a,
        operator_process(
            controlplane, tmp_path / "b.log", "-n", namespace, "--identity", IDENTITIES[1]
        ) as b,
    ):

        def balanced() -> dict[str, int] | None:
            held = Counter(shard_holders(api_client, namespace).values())
            return dict(held) if held == dict.fromkeys(IDENTITIES, SHARDS // 2) else None

        wait_for("an even split of the shards", balanced, timeout=90)
        holders = shard_holders(api_client, namespace)
        for name in names:
            create(api_client, namespace, headless(name))
        wait_for(
            f"{N} Sessions Running",
            lambda: all(phase(api_client, namespace, "Session", n) == "Running" for n in names),
            timeout=180,
        )
        assert a.poll() is None, (tmp_path / "a.log").read_text()[-3000:]
        assert b.poll() is None, (tmp_path / "b.log").read_text()[-3000:]
        # The split did not move while the Sessions ran: every launch below is a holder's.
        assert shard_holders(api_client, namespace) == holders

    by_compute = launchers({IDENTITIES[0]: tmp_path / "a.log", IDENTITIES[1]: tmp_path / "b.log"})
    expected = {
        f"{n}-compute": holders[shard_of(namespace, {"metadata": {"name": n}}, SHARDS)]
        for n in names
    }
    assert {c: who for c, (who, *_) in by_compute.items()} == expected
    assert all(len(who) == 1 for who in by_compute.values()), by_compute
    share = Counter(who for (who, *_) in by_compute.values())
    for identity in IDENTITIES:
        assert 0.35 * N <= share[identity] <= 0.65 * N, share
    launched = Counter(d["name"] for d in long_sim.launches())
    assert len(launched) == N
    assert [n for n, count in launched.items() if count > 1] == []
