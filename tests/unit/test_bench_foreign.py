"""bench/foreign.py replays what it says: 9 watch events per Session into a replica holding no
shard, every object new to the watch is stepped, and every step finds it is not its own."""

from __future__ import annotations

from typing import Any

from bench.foreign import replay


def _body(kind: str, name: str, owner: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": "ns", "name": name, "generation": 1}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "skaha.broker.dev/v1alpha1", "kind": "Session",
                                    "name": owner, "controller": True}]  # fmt: skip
    return {"apiVersion": "skaha.broker.dev/v1alpha1", "kind": kind, "metadata": meta,
            "spec": {}, "status": {"phase": "Running"}}  # fmt: skip


async def test_every_event_is_replayed_and_no_object_is_stepped_as_ours() -> None:
    objects = {
        "sessions": [_body("Session", "s0", None)],
        "computes": [_body("Compute", "s0-compute", "s0")],
        "dockercontainers": [_body("DockerContainer", "s0-executable", "s0")],
    }
    events, fired, refused, total, decoding = await replay(objects, 7)
    assert events == 7 * 9
    # At least one step per object new to the watch (3 per Session; a Session's wake-ups by its
    # parts mostly coalesce with it), and every step that ran was refused: the replica holds
    # nothing, so no controller ran.
    assert fired >= 7 * 3
    assert refused == fired
    assert total >= decoding > 0
