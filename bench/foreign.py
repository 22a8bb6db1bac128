"""CPU a replica spends on the watch events of objects another replica holds.

    .venv/bin/python -m bench.timeline --n 3 --keep build/timeline/trace.jsonl
    .venv/bin/python -m bench.foreign build/timeline/trace.objects.json --sessions 1000

Every replica watches and caches every object (runtime/watch.py); it steps only the shards it
holds (runtime/shards.py). This replays, for `--sessions` Sessions, the watch events one Session
makes on the way to Running (the Session created and its status written three times, the
Compute created and written twice, the DockerContainer created and written once: 9 events, as
`make bench` counts at N = 1000) into a replica that holds no shard, through the code a watch
event goes through: the JSON line decoded, the cache, the wake-ups, and the steps that find the
object is not theirs. The bodies are those a timeline run left on the API server. It prints CPU
time (not wall time) per event and per Session, and how much of it is the JSON decoding.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

from skaha_operator.controllers.context import Context, OperatorConfig
from skaha_operator.controllers.registry import CONTROLLERS
from skaha_operator.k8s.objects import ObjectCache
from skaha_operator.runtime.requeue import Key
from skaha_operator.runtime.startup import runner
from skaha_operator.runtime.state import OperatorState
from skaha_operator.runtime.watch import WAKE_DELAY, on_watch_event

# (plural, status writes after the create) per Session, as counted by `make bench` at N = 1000.
WRITES = (("sessions", 3), ("computes", 2), ("dockercontainers", 1))
PHASES = ("Pending", "Preparing", "Available", "Running")


class HoldsNothing:
    """A replica whose shards are all held by another one."""

    enabled = True

    def __init__(self) -> None:
        self.refused = 0  # steps that asked (the driver passes their key) and were refused

    def holds(self, namespace: str, body: dict[str, Any], key: Key | None = None) -> bool:
        self.refused += key is not None
        return False

    def held(self) -> frozenset[int]:
        return frozenset()

    async def start(self) -> None:
        """Nothing to start."""

    async def aclose(self) -> None:
        """Nothing to release."""


async def _missing(plural: str, ns: str, name: str) -> dict[str, Any] | None:
    return None


def session_events(objects: dict[str, list[dict[str, Any]]], i: int) -> list[tuple[str, bytes]]:
    """The watch lines of Session number `i` and its parts: (plural, line)."""
    lines: list[tuple[str, bytes]] = []
    version = i * 100
    for plural, writes in WRITES:
        base = copy.deepcopy(objects[plural][0])
        meta = base["metadata"]
        root = next((o["name"] for o in meta.get("ownerReferences") or []), meta["name"])
        meta["name"] = meta["name"].replace(root, f"s{i}", 1)
        for owner in meta.get("ownerReferences") or []:
            owner["name"] = f"s{i}"
        for k in range(writes + 1):
            version += 1
            body = copy.deepcopy(base)
            body["metadata"]["resourceVersion"] = str(version)
            body["status"]["phase"] = PHASES[k]
            kind = "ADDED" if k == 0 else "MODIFIED"
            lines.append((plural, json.dumps({"type": kind, "object": body}).encode()))
    return lines


async def replay(
    objects: dict[str, list[dict[str, Any]]], sessions: int
) -> tuple[int, int, int, float, float]:
    """Events replayed, wake-ups fired, steps refused, CPU seconds in all, CPU seconds decoding."""
    st = OperatorState(ctx=Context(config=OperatorConfig(), kube=None,  # type: ignore[arg-type]
                                   platforms=None, cache=ObjectCache(_missing)))  # type: ignore[arg-type]  # fmt: skip
    shards = HoldsNothing()
    st.shards = shards  # type: ignore[assignment]
    fired: list[Key] = []
    st.requeuer.on_fire = lambda key, late: fired.append(key)
    for controller in CONTROLLERS:
        st.requeuer.register(controller.plural, runner(controller, st))  # as the operator does
    lines = [line for i in range(sessions) for line in session_events(objects, i)]
    decoding = 0.0
    started = time.process_time()
    for n, (plural, line) in enumerate(lines):
        before = time.process_time()
        event = json.loads(line)
        decoding += time.process_time() - before
        on_watch_event(plural, event["type"], event["object"], st)
        if n % 50 == 0:
            await asyncio.sleep(0)  # let due wake-ups run, as the watch's reads would
    await asyncio.sleep(3 * WAKE_DELAY)  # the last wake-ups fire and their steps end
    total = time.process_time() - started
    await st.requeuer.aclose()
    return len(lines), len(fired), shards.refused, total, decoding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("objects", type=Path, help="trace.objects.json of a bench.timeline run")
    parser.add_argument("--sessions", type=int, default=1000)
    args = parser.parse_args()
    objects = json.loads(args.objects.read_text())
    events, _, steps, total, decoding = asyncio.run(replay(objects, args.sessions))
    sys.stdout.write(
        f"{args.sessions} Sessions, {events} watch events of objects held elsewhere, {steps} "
        f"steps that found them not theirs: "
        f"{total * 1e6 / events:.0f} us CPU per event ({decoding * 1e6 / events:.0f} us of it "
        f"JSON decoding), {total * 1e3 / args.sessions:.2f} ms CPU per Session\n"
    )


if __name__ == "__main__":
    main()
