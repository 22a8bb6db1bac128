"""Memory per cached object and per wake-up timer, measured with tracemalloc on real bodies.

    .venv/bin/python -m bench.timeline --n 100 --keep build/timeline/trace.jsonl
    .venv/bin/python -m bench.memory build/timeline/trace.objects.json

The bodies are the Sessions, Computes and DockerContainers a timeline run left on the API server
(managedFields included, as a watch delivers them). Measured, per object, as Python allocations
(not RSS): the watch-fed cache entry with managedFields and without (what runtime/watch.py keeps
now), an in-memory wake-up (runtime/requeue.py), and an asyncio task sleeping in a loop, the least
a per-object kopf timer costs (kopf adds its own records per timer on top).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skaha_operator.k8s.objects import ObjectCache
from skaha_operator.runtime.requeue import Requeuer


def measure(make: Callable[[], Any]) -> tuple[int, Any]:
    """Bytes allocated (and still held) by `make()`, and what it made (kept alive)."""
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    made = make()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    held = sum(s.size_diff for s in after.compare_to(before, "filename"))
    return held, made


async def _missing(plural: str, ns: str, name: str) -> dict[str, Any] | None:
    return None


def cache_of(bodies: list[tuple[str, dict[str, Any]]]) -> ObjectCache:
    cache = ObjectCache(_missing)
    for plural, body in bodies:
        cache.put(plural, body)
    return cache


def main(argv: list[str] | None = None) -> int:
    """Print the bytes per object of each structure."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("objects", type=Path, help="the .objects.json a timeline --keep wrote")
    args = parser.parse_args(argv)
    raw = json.loads(args.objects.read_text())
    bodies = [(plural, body) for plural, items in raw.items() for body in items]
    n = len(bodies)
    sessions = len(raw.get("sessions", []))

    def fresh() -> list[tuple[str, dict[str, Any]]]:
        return copy.deepcopy(bodies)

    # Body sizes as JSON, for scale.
    text = sum(len(json.dumps(b)) for _, b in bodies) / n
    slim = sum(
        len(json.dumps({**b, "metadata": {k: v for k, v in b["metadata"].items()
                                          if k != "managedFields"}}))
        for _, b in bodies
    ) / n  # fmt: skip

    full_bodies = fresh()
    held_full, keep1 = measure(lambda: {(p, b["metadata"]["name"]): b for p, b in fresh()})
    held_cache, keep2 = measure(lambda: cache_of(fresh()))
    del keep1, keep2, full_bodies

    async def timers() -> tuple[int, int]:
        requeuer = Requeuer()

        async def runner(key: tuple[str, str, str]) -> float | None:
            return None

        for plural, _ in bodies:
            requeuer.register(plural, runner)
        keys = [(p, "ns", b["metadata"]["name"]) for p, b in bodies]

        def schedule_all() -> list[None]:
            # Held with the timers: a list of N Nones, as the comprehension this replaces.
            made: list[None] = []
            for k in keys:
                requeuer.schedule(k, 3600.0)
                made.append(None)
            return made

        held_timer, _ = measure(schedule_all)

        async def forever() -> None:
            while True:  # noqa: ASYNC110 (the parked sleeping task is what is measured)
                await asyncio.sleep(3600)

        held_task, tasks = measure(lambda: [asyncio.create_task(forever()) for _ in keys])
        await asyncio.sleep(0)  # let them start and park
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await requeuer.aclose()
        return held_timer, held_task

    held_timer, held_task = asyncio.run(timers())
    rows = [
        ("body as JSON, with managedFields", text),
        ("body as JSON, without managedFields", slim),
        ("cached body (Python objects), with managedFields", held_full / n),
        ("cached body (Python objects), without managedFields (now)", held_cache / n),
        ("in-memory wake-up timer (runtime/requeue.py)", held_timer / n),
        ("asyncio task parked in a loop (least a kopf timer costs)", held_task / n),
    ]
    out = [f"{n} objects ({sessions} Sessions with their Compute and DockerContainer)", "",
           "| per object | bytes |", "|---|---:|"]  # fmt: skip
    out += [f"| {what} | {value:,.0f} |" for what, value in rows]
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
