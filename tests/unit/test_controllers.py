"""The controllers' act ordering, in milliseconds: one step against an in-memory Kube and Skaha.

Like sample-controller's action tests: every call a step makes (Kubernetes reads and guarded
status writes, Skaha requests, Events) goes into one ordered list, and each test asserts the
order that matters. For a launch, the create-pending marker is stored with a resourceVersion-
guarded write BEFORE the POST, and the id only after it (docs/design.md §4.3); a deletion
deletes what carries our name and says released only once nothing can still appear (§4.6).
The platform is `FakePlatform` (platform/fake.py), the Kubernetes API the `FakeKube` below.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from skaha_operator import GROUP, VERSION
from skaha_operator.controllers.base import Outcome
from skaha_operator.controllers.compute import ComputeController
from skaha_operator.controllers.context import ABANDON_ANNOTATION, Context, OperatorConfig
from skaha_operator.controllers.platforms import PlatformCache
from skaha_operator.controllers.skaha_platform import SkahaPlatformController
from skaha_operator.domain.skaha_platform import SkahaPlatform
from skaha_operator.k8s.api import ConflictError, Kube, SecretError, status_patch
from skaha_operator.k8s.objects import ObjectCache
from skaha_operator.platform.clients import PlatformClients
from skaha_operator.platform.errors import Unavailable
from skaha_operator.platform.fake import FakePlatform, FakeSkaha, FakeSkahaConfig
from skaha_operator.platform.ports import RegistryCredentials
from skaha_operator.platform.wire import (
    SessionParams,
    SessionType,
    SkahaSession,
    SkahaSessionStatus,
)
from skaha_operator.reconcile.checks import ProbeResult, decide_platform
from skaha_operator.reconcile.compute import make_skaha_session_name
from skaha_operator.reconcile.timing import Timing

API = f"{GROUP}/{VERSION}"
NS = "ns"
UID = "0b7c5a4e-1111-2222-3333-444455556666"
NAME = make_skaha_session_name(UID)
IMAGE = "images.canfar.net/skaha/terminal:1.1.2"
GRACE = Timing().adopt_grace
# Reads: what a step looks at. Everything else changes something and is what the tests order.
READS = ("get ", "list ", "read_secret ", "read_config_map ", "GET session", "list sessions")


# -- the fakes -------------------------------------------------------------------------------------


@dataclass
class FakeKube:
    """The Kube methods controllers call, in memory; every call goes into the shared `log`.

    `write_status` applies the same guarded JSON patch the real one sends (k8s/api.py
    status_patch): a failed `test` (resourceVersion when strict, else the phase) is a conflict.
    """

    log: list[str]
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    config_maps: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    held: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    writes: list[dict[str, Any]] = field(default_factory=list)  # each status as written
    revision: int = 100

    def put(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store an object as the API server would (with a resourceVersion); no log entry."""
        self.revision += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.revision)
        meta = body["metadata"]
        self.objects[(plural, meta["namespace"], meta["name"])] = body
        return copy.deepcopy(body)

    def stored(self, plural: str, name: str, namespace: str = NS) -> dict[str, Any]:
        return self.objects[(plural, namespace, name)]

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.log.append(f"get {plural}/{name}")
        found = self.objects.get((plural, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def list(
        self, plural: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        self.log.append(f"list {plural}")
        return [
            copy.deepcopy(b)
            for (p, ns, _), b in self.objects.items()
            if (p, ns) == (plural, namespace)
        ]

    async def create(self, plural: str, namespace: str, body: dict[str, Any]) -> bool:
        name = body["metadata"]["name"]
        self.log.append(f"create {plural}/{name}")
        if (plural, namespace, name) in self.objects:
            return False
        self.put(plural, {**body, "metadata": {**body["metadata"], "namespace": namespace}})
        return True

    async def delete(self, plural: str, namespace: str, name: str) -> bool:
        self.log.append(f"delete {plural}/{name}")
        return self.objects.pop((plural, namespace, name), None) is not None

    async def write_status(
        self,
        plural: str,
        observed: dict[str, Any],
        new_status: dict[str, Any],
        *,
        strict: bool = False,
    ) -> dict[str, Any] | None:
        meta = observed["metadata"]
        self.log.append(f"write_status {plural}/{meta['name']}" + (" strict" if strict else ""))
        ops = status_patch(observed, new_status, strict=strict)
        if not ops:
            return None
        key = (plural, meta["namespace"], meta["name"])
        current = self.objects[key]
        for op in ops:
            path = op["path"].split("/")[1:]
            if op["op"] == "test":
                here: Any = current
                for part in path:
                    here = (here or {}).get(part)
                if here != op["value"]:
                    raise ConflictError(f"{plural}/{meta['name']} changed while we decided")
            elif path == ["status"]:
                current["status"] = copy.deepcopy(op["value"])
            else:
                current.setdefault("status", {})[path[1]] = copy.deepcopy(op["value"])
        self.writes.append(copy.deepcopy(current["status"]))
        self.revision += 1
        current["metadata"]["resourceVersion"] = str(self.revision)
        return copy.deepcopy(current)

    async def read_secret(self, namespace: str, name: str, key: str) -> str:
        self.log.append(f"read_secret {name}")
        data = self.secrets.get((namespace, name))
        if data is None:
            raise SecretError(f"Secret {namespace}/{name} not found")
        if key not in data:
            raise SecretError(f"Secret {namespace}/{name} has no key {key!r}")
        return data[key]

    async def read_config_map(self, namespace: str, name: str, key: str) -> str | None:
        self.log.append(f"read_config_map {name}")
        return self.config_maps.get((namespace, name), {}).get(key)

    async def hold_secret(self, namespace: str, name: str, finalizer: str, hold: bool) -> None:
        self.log.append(f"hold_secret {name} {'on' if hold else 'off'}")
        held = self.held.setdefault((namespace, name), set())
        if hold:
            held.add(finalizer)
        else:
            held.discard(finalizer)


class LoggedSkaha(FakeSkaha):
    """The fake Skaha, writing each request into the shared log (ids and names included)."""

    def __init__(self, log: list[str]) -> None:
        super().__init__(FakePlatform().clock, FakeSkahaConfig())
        self.log = log

    async def list_sessions(
        self, type: SessionType | None = None, status: SkahaSessionStatus | None = None
    ) -> list[SkahaSession]:
        self.log.append("list sessions")
        return await super().list_sessions(type, status)

    async def get_session(self, session_id: str) -> SkahaSession:
        self.log.append(f"GET session {session_id}")
        return await super().get_session(session_id)

    async def create_session(
        self, params: SessionParams, registry_auth: RegistryCredentials | None = None
    ) -> str:
        self.log.append(f"POST session {params.name}")
        return await super().create_session(params, registry_auth)

    async def delete_session(self, session_id: str) -> None:
        self.log.append(f"DELETE session {session_id}")
        await super().delete_session(session_id)

    async def renew(self, session_id: str) -> None:
        self.log.append(f"renew {session_id}")
        await super().renew(session_id)


class FakePlatforms(PlatformCache):
    """Hands out the fake platform's clients for every SkahaPlatform (no token is read)."""

    def __init__(self, kube: Kube, clients: PlatformClients | None) -> None:
        super().__init__(kube)
        self.fake = clients

    async def clients(self, platform: SkahaPlatform) -> PlatformClients:
        if self.fake is None:
            raise SecretError("Secret ns/token not found")  # the platform is unusable
        return self.fake


@dataclass
class World:
    """One Context on the fakes, and the shared call log."""

    log: list[str]
    kube: FakeKube
    skaha: LoggedSkaha
    ctx: Context

    def acts(self) -> list[str]:
        """The calls that change something (writes, Skaha requests, Events), in order."""
        return [c for c in self.log if not c.startswith(READS)]

    def clear(self) -> None:
        self.log.clear()


def world(*, reachable: bool = True) -> World:
    log: list[str] = []
    kube = FakeKube(log)
    platform = FakePlatform()
    skaha = LoggedSkaha(log)
    platform.skaha = skaha
    clients = cast(PlatformClients, platform) if reachable else None
    as_kube = cast(Kube, kube)

    def post(body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        log.append(f"event {type_} {reason}")

    ctx = Context(
        config=OperatorConfig(),
        kube=as_kube,
        platforms=FakePlatforms(as_kube, clients),
        cache=ObjectCache(kube.get),
        post=post,
    )
    w = World(log, kube, skaha, ctx)
    seed(w)
    return w


# -- the objects -----------------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def seed(w: World) -> None:
    """An Available SkahaPlatform, DockerContainer and Storage in NS."""
    platform = SkahaPlatform.model_validate(
        {
            "metadata": {"name": "local", "namespace": NS, "generation": 1},
            "spec": {
                "skaha": {"url": "http://127.0.0.1:9/skaha"},
                "cavern": {"url": "http://127.0.0.1:9/arc", "user": "alice"},
                "tokenSecretRef": {"name": "token"},
            },
        }
    )
    probe = ProbeResult(ok=True, api_version="v1", cores=(1, 2, 4, 8), ram=(1, 2, 4, 8, 16))
    status = decide_platform(platform, probe, now(), Timing()).status
    body = platform.model_copy(update={"status": status}).to_wire()
    w.kube.put("skahaplatforms", body)
    w.kube.put(
        "dockercontainers",
        {
            "apiVersion": API,
            "kind": "DockerContainer",
            "metadata": {"name": "img", "namespace": NS},
            "spec": {"image": IMAGE, "platformRef": "local"},
            "status": {"phase": "Available"},
        },
    )
    w.kube.put(
        "storages",
        {
            "apiVersion": API,
            "kind": "Storage",
            "metadata": {"name": "work", "namespace": NS},
            "spec": {"platformRef": "local", "area": "home", "path": "w"},
            "status": {"phase": "Available"},
        },
    )


def compute(
    w: World,
    status: dict[str, Any] | None = None,
    *,
    deleting: bool = False,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A headless Compute created a minute ago, stored in the fake Kube; the body a step gets."""
    meta: dict[str, Any] = {
        "name": "c",
        "namespace": NS,
        "uid": UID,
        "generation": 1,
        "creationTimestamp": stamp(now() - timedelta(minutes=1)),
    }
    if deleting:
        meta["deletionTimestamp"] = stamp(now())
        meta["finalizers"] = ["skaha.broker.dev/finalizer"]
    if annotations:
        meta["annotations"] = annotations
    body: dict[str, Any] = {
        "apiVersion": API,
        "kind": "Compute",
        "metadata": meta,
        "spec": {
            "type": "headless",
            "cores": 2,
            "ramGiB": 8,
            "platformRef": "local",
            "executableRef": {"kind": "DockerContainer", "name": "img"},
            "storageRefs": ["work"],
        },
    }
    if status is not None:
        body["status"] = status
    return w.kube.put("computes", body)


def marker(*, ago: float, sid: str | None = None, attempts: int = 1) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": NAME,
        "pendingSince": stamp(now() - timedelta(seconds=ago)),
        "attempts": attempts,
    }
    if sid is not None:
        out["id"] = sid
    return out


async def step(w: World, body: dict[str, Any]) -> Outcome:
    return await ComputeController().step(body, w.ctx)


async def running_session(w: World) -> str:
    """A session under our name at the fake Skaha (not logged: it is the test's set-up)."""
    sid = await FakeSkaha.create_session(w.skaha, SessionParams(name=NAME, image=IMAGE))
    w.clear()
    return sid


# -- launching -------------------------------------------------------------------------------------


async def test_the_marker_is_stored_before_the_post_and_the_id_after_it() -> None:
    w = world()
    out = await step(w, compute(w))
    assert w.acts() == [
        "write_status computes/c strict",  # the marker, guarded by resourceVersion
        "event Normal Launching",
        f"POST session {NAME}",
        "write_status computes/c",  # the id, with a first look at the session
    ]
    sessions = await FakeSkaha.list_sessions(w.skaha)
    assert f"GET session {sessions[0].id}" in w.log  # looked at once, not a poll_base later
    marked, recorded = w.kube.writes
    assert marked["phase"] == "Preparing"
    assert marked["launch"]["name"] == NAME
    assert marked["launch"]["attempts"] == 1
    assert "pendingSince" in marked["launch"]
    assert "id" not in marked["launch"]
    sessions = await FakeSkaha.list_sessions(w.skaha)
    assert [s.name for s in sessions] == [NAME]
    assert recorded["launch"]["id"] == sessions[0].id
    assert recorded["launch"]["pendingSince"] == marked["launch"]["pendingSince"]
    # The fake Skaha keeps a new session Pending for 10 s: the look says so, and counts.
    assert recorded["reason"] == "SessionPending"
    assert recorded["polls"] == 1
    assert out == Outcome(Timing().poll_base)
    # The POST carried what the decision fitted: 2 cores, 8 GiB.
    assert (w.kube.stored("computes", "c")["status"]["launchedCores"], sessions[0].type) == (
        2,
        "headless",
    )


async def test_a_session_running_at_once_is_recorded_with_its_id_in_one_write() -> None:
    w = world()
    body = compute(w)
    body["spec"]["env"] = {"SIM_PENDING_SECONDS": "0"}  # the fake Skaha starts it at once
    await step(w, w.kube.put("computes", body))
    assert w.acts() == [
        "write_status computes/c strict",  # the marker
        "event Normal Launching",
        f"POST session {NAME}",
        "write_status computes/c",  # the id and Running together
        "event Normal SessionRunning",
    ]
    _, recorded = w.kube.writes
    assert recorded["phase"] == "Running"
    assert recorded["launch"]["id"]
    assert recorded["polls"] == 1


async def test_a_post_that_may_have_committed_keeps_the_marker_and_requeues() -> None:
    w = world()
    w.skaha.faults.fail_next("create_session", Unavailable("timed out", status=None))
    out = await step(w, compute(w))
    assert w.acts() == [
        "write_status computes/c strict",
        "event Normal Launching",
        f"POST session {NAME}",
    ]  # no id written: the next step adopts by name or sends again after the grace
    assert out == Outcome(2.0)
    launch = w.kube.stored("computes", "c")["status"]["launch"]
    assert "pendingSince" in launch
    assert "id" not in launch


async def test_a_refused_post_fails_the_compute_after_the_marker() -> None:
    w = world()
    body = compute(w)
    dc = w.kube.stored("dockercontainers", "img")
    dc["spec"]["image"] = "docker.io/someone/else:1"  # Skaha accepts only its registries
    out = await step(w, body)
    assert w.acts() == [
        "write_status computes/c strict",
        "event Normal Launching",
        f"POST session {NAME}",
        "write_status computes/c",
        "event Warning LaunchRejected",
    ]
    status = w.kube.stored("computes", "c")["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "LaunchRejected")
    assert status["launch"]["observed"] == "Refused"
    assert out == Outcome(None)
    assert await FakeSkaha.list_sessions(w.skaha) == []


async def test_a_missing_registry_secret_writes_no_marker_and_sends_nothing() -> None:
    w = world()
    w.kube.stored("dockercontainers", "img")["spec"]["registrySecretRef"] = {"name": "reg"}
    await step(w, compute(w))
    assert "read_secret reg" in w.log
    assert w.acts() == [
        "write_status computes/c",
        "event Normal RegistrySecretMissing",
        "event Warning RegistrySecretMissing",  # stalled: a person must fix the Secret
    ]
    status = w.kube.stored("computes", "c")["status"]
    assert (status["phase"], status["reason"]) == ("Preparing", "RegistrySecretMissing")
    assert "launch" not in status


async def test_a_marker_write_that_conflicts_sends_nothing() -> None:
    w = world()
    body = compute(w)
    w.kube.put("computes", body)  # someone else wrote in between: a newer resourceVersion
    with pytest.raises(ConflictError):
        await step(w, body)
    assert w.acts() == ["write_status computes/c strict"]
    assert not any(c.startswith("POST") for c in w.log)


# -- deleting --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ago", "released"), [(5.0, False), (GRACE + 10, True)])
async def test_deleting_during_an_in_flight_launch_waits_out_the_grace(
    ago: float, released: bool
) -> None:
    w = world()
    status = {"phase": "Preparing", "launch": marker(ago=ago)}
    out = await step(w, compute(w, status, deleting=True))
    assert "list sessions" in w.log  # it looked for the launch under our name
    assert not any(c.startswith(("DELETE", "POST")) for c in w.log)
    assert out.released is released
    if released:
        assert w.acts() == []  # nothing left to write: the finalizer goes
        assert out.requeue_after is None
    else:
        assert w.acts() == ["write_status computes/c", "event Normal WaitingForLaunch"]
        stored = w.kube.stored("computes", "c")["status"]
        assert (stored["phase"], stored["reason"]) == ("Releasing", "WaitingForLaunch")
        assert out.requeue_after is not None
        assert 0 < out.requeue_after <= 5.0


async def test_deleting_finds_a_launch_that_committed_and_deletes_it() -> None:
    w = world()
    sid = await running_session(w)  # the POST's answer was lost, but it committed
    status = {"phase": "Preparing", "launch": marker(ago=5.0)}
    out = await step(w, compute(w, status, deleting=True))
    assert w.acts() == [
        "write_status computes/c",
        f"DELETE session {sid}",
        "event Normal Releasing",
    ]
    assert out.released is False


async def test_deleting_with_a_recorded_id_deletes_it_then_waits_for_it_to_go() -> None:
    w = world()
    sid = await running_session(w)
    status = {"phase": "Running", "launch": marker(ago=60.0, sid=sid)}
    body = compute(w, status, deleting=True)
    out = await step(w, body)
    assert w.acts() == [
        "write_status computes/c",  # Releasing, before the request
        f"DELETE session {sid}",
        "event Normal Releasing",
    ]
    assert out.released is False
    # Terminating at Skaha: not deleted again, not released.
    w.clear()
    out = await step(w, w.kube.stored("computes", "c"))
    assert not any(c.startswith("DELETE") for c in w.log)
    assert out.released is False
    # Gone: released.
    w.skaha.clock.advance(60)
    w.clear()
    out = await step(w, w.kube.stored("computes", "c"))
    assert out.released is True
    assert w.acts() == []


async def test_deleting_with_the_platform_unusable_is_blocked_until_abandoned() -> None:
    w = world(reachable=False)
    status = {"phase": "Running", "launch": marker(ago=60.0, sid="abc12345")}
    out = await step(w, compute(w, status, deleting=True))
    assert out.released is False
    assert w.acts() == [
        "write_status computes/c",
        "event Normal ReleaseBlocked",
        "event Warning ReleaseBlocked",  # names the abandon annotation
    ]
    stored = w.kube.stored("computes", "c")["status"]
    assert (stored["phase"], stored["reason"]) == ("Releasing", "ReleaseBlocked")
    assert ABANDON_ANNOTATION in stored["message"]
    w.clear()
    body = compute(w, stored, deleting=True, annotations={ABANDON_ANNOTATION: "true"})
    out = await step(w, body)
    assert out.released is True
    assert w.acts() == ["event Warning ReleaseBlocked"]  # the abandoned session, told


# -- in use ----------------------------------------------------------------------------------------


async def test_an_adopted_session_is_recorded_without_a_second_post() -> None:
    w = world()
    sid = await running_session(w)
    status = {"phase": "Preparing", "launch": marker(ago=5.0)}
    await step(w, compute(w, status))
    assert w.log[0:1] == ["get skahaplatforms/local"]
    assert "list sessions" in w.log
    assert not any(c.startswith("POST") for c in w.log)
    assert w.acts() == ["write_status computes/c"]
    assert w.kube.stored("computes", "c")["status"]["launch"]["id"] == sid


# -- the platform ----------------------------------------------------------------------------------


@pytest.mark.parametrize("reachable", [True, False])
async def test_a_platform_holds_its_secret_before_its_status_tells_anything(
    reachable: bool,
) -> None:
    # A status a reader sees means the token Secret already carries our finalizer, however long
    # the probe took (a 503 is retried for seconds before the status is written).
    w = world(reachable=reachable)
    w.kube.secrets[(NS, "token")] = {"token": "t"}
    await SkahaPlatformController().step(w.kube.stored("skahaplatforms", "local"), w.ctx)
    acts = w.acts()
    assert acts[0] == "hold_secret token on"
    assert "write_status skahaplatforms/local" in acts[1:]
    assert w.kube.held[(NS, "token")] == {w.ctx.config.finalizer}
