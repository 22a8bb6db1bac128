"""What a watch event or a fresh list does to the cache and which objects it steps
(runtime/watch.py), and the order Events are posted in (k8s/events.py)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from kubernetes.client import ApiException

from skaha_operator.controllers.context import Context, OperatorConfig
from skaha_operator.k8s.events import EventPoster, shorten
from skaha_operator.k8s.objects import ObjectCache
from skaha_operator.k8s.watching import Scope, _lines
from skaha_operator.runtime import watch
from skaha_operator.runtime.state import OperatorState
from skaha_operator.runtime.watch import on_relist, on_watch_event

Key = tuple[str, str, str]


def body(name: str, rv: int, spec: Any = None, generation: int = 1, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "skaha.broker.dev/v1alpha1",
        "kind": "SkahaPlatform",
        "metadata": {"namespace": "ns", "name": name, "resourceVersion": str(rv),
                     "generation": generation, **meta},
        "spec": spec or {"a": 1},
    }  # fmt: skip


async def _no_read(plural: str, ns: str, name: str) -> dict[str, Any] | None:
    return None


async def stepped_by(
    events: list[tuple[str, dict[str, Any]]],
    listed: list[Any],
    stored: list[Any] = (),  # type: ignore[assignment]
) -> list[Key]:
    """The keys stepped after `listed` came from the watch, `stored` from our own writes, and
    then `events` arrive."""
    cache = ObjectCache(_no_read)
    st = OperatorState(ctx=Context(config=OperatorConfig(), kube=None, platforms=None,  # type: ignore[arg-type]
                                   cache=cache))  # fmt: skip
    for item in listed:
        cache.put("skahaplatforms", item)
        st.generations[key(item["metadata"]["name"])] = item["metadata"]["generation"]
    for item in stored:
        cache.put("skahaplatforms", item)
    stepped: list[Key] = []

    async def runner(key: Key) -> float | None:
        stepped.append(key)
        return None

    st.requeuer.register("skahaplatforms", runner)
    for kind, item in events:
        on_watch_event("skahaplatforms", kind, item, st)
    await asyncio.sleep(0.05)
    await st.requeuer.aclose()
    return sorted(stepped)


def key(name: str) -> Key:
    return ("skahaplatforms", "ns", name)


async def test_a_new_object_and_a_spec_edit_are_stepped_a_status_change_is_not() -> None:
    assert await stepped_by([("ADDED", body("new", 5))], []) == [key("new")]
    edited = body("p", 6, {"a": 2}, generation=2)
    assert await stepped_by([("MODIFIED", edited)], [body("p", 5)]) == [key("p")]
    status_only = {**body("p", 6), "status": {"phase": "Ready"}}
    assert await stepped_by([("MODIFIED", status_only)], [body("p", 5)]) == []
    # A part our own create stored in the cache before its watch event: still new to the watch.
    assert await stepped_by([("ADDED", body("part", 5))], [], [body("part", 5)]) == [key("part")]
    # A user's edit our later status write carried into the cache before the edit's event.
    ours = body("p", 7, {"a": 2}, generation=2)
    assert await stepped_by([("MODIFIED", edited)], [body("p", 5)], [ours]) == [key("p")]
    # A deleted object is not stepped; one whose deletion begins is (its release).
    assert await stepped_by([("DELETED", body("p", 6))], [body("p", 5)]) == []
    going = body("p", 6, deletionTimestamp="2026-12-02T00:00:00Z", finalizers=["f"])
    assert await stepped_by([("MODIFIED", going)], [body("p", 5)]) == [key("p")]


async def test_a_fresh_list_deletes_what_it_lacks_and_steps_what_is_new_or_edited() -> None:
    cache = ObjectCache(_no_read)
    generations = {}
    for item in (body("gone", 3), body("same", 4), body("edited", 5)):
        cache.put("skahaplatforms", item)
        generations[key(item["metadata"]["name"])] = 1
    other_ns = {**body("elsewhere", 6), "metadata": {"namespace": "other", "name": "elsewhere",
                                                       "resourceVersion": "6"}}  # fmt: skip
    cache.put("skahaplatforms", other_ns)
    st = OperatorState(ctx=Context(config=OperatorConfig(), kube=None, platforms=None,  # type: ignore[arg-type]
                                   cache=cache))  # fmt: skip
    st.generations.update(generations)
    stepped: list[Key] = []

    async def runner(k: Key) -> float | None:
        stepped.append(k)
        return None

    st.requeuer.register("skahaplatforms", runner)
    on_relist(Scope("skahaplatforms", "ns"),
              [body("same", 4), body("edited", 9, {"a": 2}, 2), body("new", 10)], st)  # fmt: skip
    await asyncio.sleep(0.05)
    await st.requeuer.aclose()
    assert cache.peek("skahaplatforms", "ns", "gone") is None
    assert cache.peek("skahaplatforms", "other", "elsewhere") is not None  # not this scope's
    assert cache.peek("skahaplatforms", "ns", "edited")["metadata"]["resourceVersion"] == "9"  # type: ignore[index]
    assert sorted(stepped) == [key("edited"), key("new")]
    assert key("gone") not in st.generations


class _StreamReader:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def iter_any(self) -> Any:
        for chunk in self.chunks:
            yield chunk


async def test_watch_lines_are_split_however_the_chunks_fall() -> None:
    long = b'{"type":"ADDED","object":{"x":"' + b"y" * 200_000 + b'"}}'
    chunks = [b'{"a":1}\n{"b"', b":2}\n", long[:70_000], long[70_000:], b"\n", b'\n{"c":3}']
    lines = [line async for line in _lines(_StreamReader(chunks))]  # type: ignore[arg-type]
    assert lines == [b'{"a":1}', b'{"b":2}', long, b'{"c":3}']


class _SlowKube:
    """Posts take longer for earlier Events; the first Event of "bad" is refused."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, str]] = []
        self.calls = 0

    async def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        self.calls += 1
        delay = 0.05 if event["reason"].endswith("0") else 0.001
        await asyncio.sleep(delay)
        if event["involvedObject"]["name"] == "bad" and event["reason"] == "R0":
            raise RuntimeError("namespace is being terminated")
        self.posted.append((event["involvedObject"]["name"], event["reason"]))


async def test_events_of_one_object_are_posted_in_order_and_a_refused_one_stops_nothing() -> None:
    kube = _SlowKube()
    poster = EventPoster(kube, "skaha-operator", "replica-a")  # type: ignore[arg-type]
    for i in range(4):
        for name in ("a", "b", "bad"):
            meta = {"uid": f"uid-{name}"}
            poster.post(body(name, 1, **meta), "Normal", f"R{i}", f"message {i}")
    await poster.aclose()
    assert kube.calls == 12
    for name in ("a", "b"):
        assert [r for n, r in kube.posted if n == name] == ["R0", "R1", "R2", "R3"]
    assert [r for n, r in kube.posted if n == "bad"] == ["R1", "R2", "R3"]
    assert (poster.posted, poster.dropped) == (11, 1)


def test_a_long_message_keeps_its_head_and_its_tail() -> None:
    text = "head " + "x" * 3000 + " tail"
    short = shorten(text)
    assert len(short) == 1024
    assert short.startswith("head ")
    assert short.endswith(" tail")
    assert shorten("short") == "short"


class Refusing:
    """Streams whose LIST is refused with each status in turn, then answers."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)

    async def list(self, scope: Scope) -> tuple[list[Any], str]:
        if self.statuses:
            raise ApiException(status=self.statuses.pop(0), reason="refused")
        return [], "7"


async def test_a_refused_start_up_list_says_what_to_do_and_is_retried(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(watch, "backoff", lambda failures: 0.0)
    streams = Refusing(404, 403, 500)
    with caplog.at_level(logging.WARNING, logger="skaha_operator"):
        done = await asyncio.wait_for(
            watch._list_until_done(streams, Scope("sessions", None)),  # type: ignore[arg-type]
            10,
        )
    assert done == ([], "7")
    said = [r.getMessage() for r in caplog.records if "listing sessions" in r.getMessage()]
    assert len(said) == 3
    assert "our CRDs are not installed" in said[0]
    assert "kubectl apply -f crds/" in said[0]
    assert "lacks the chart's RBAC" in said[1]
    assert "ApiException" in said[2]
