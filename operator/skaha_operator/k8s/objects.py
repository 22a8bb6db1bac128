"""The latest body of each of our objects as the watches deliver them (see runtime/watch.py).

Also an index of which Computes wait for which dependency, so a dependency's change can wake
exactly those Computes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

Key = tuple[str, str, str]  # (plural, namespace, name)
Reader = Callable[[str, str, str], Awaitable[dict[str, Any] | None]]


def part_view(body: dict[str, Any]) -> tuple[Any, ...]:
    """What a Session shows of a part: a change here is worth a Session step."""
    status = body.get("status") or {}
    conds = tuple(
        (c.get("type"), c.get("status"))
        for c in status.get("conditions") or []
        if c.get("type") in {"Ready", "Stalled"}
    )
    connectors = tuple(sorted(c.get("url", "") for c in status.get("connectors") or []))
    return (status.get("phase"), status.get("reason"), status.get("message"), conds, connectors)


def compute_refs(body: dict[str, Any]) -> set[tuple[str, str]]:
    """(kind, name) of everything a Compute waits for."""
    spec = body.get("spec") or {}
    exe = spec.get("executableRef") or {}
    refs = {(str(exe.get("kind")), str(exe.get("name")))} if exe else set()
    refs |= {("Storage", n) for n in spec.get("storageRefs") or []}
    refs |= {("Data", n) for n in spec.get("dataRefs") or []}
    return refs


def _older(new: dict[str, Any], old: dict[str, Any]) -> bool:
    # resourceVersions are etcd revisions, integers in every API server we know of; anything
    # else is treated as not older (the newest delivery wins, as without this check).
    try:
        return int(new["metadata"]["resourceVersion"]) < int(old["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return False


class ObjectCache:
    """Latest body per (plural, namespace, name), and which Computes use which dependency."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader  # the fallback for a miss: a GET
        self._bodies: dict[Key, dict[str, Any]] = {}
        self._users: dict[tuple[str, str, str], set[str]] = defaultdict(set)

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The body last seen by the watch; a GET when it was not seen (yet)."""
        found = self._bodies.get((plural, namespace, name))
        if found is not None:
            return found
        return await self._reader(plural, namespace, name)

    def peek(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The cached body only (no fallback)."""
        return self._bodies.get((plural, namespace, name))

    def put(self, plural: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Remember `body` unless a newer one is cached; returns the previous one.

        Without `metadata.managedFields`: the API server's field-ownership record, which no step
        reads, is about half of a body (docs/performance.md, memory per cached object).
        """
        meta = body["metadata"]
        if "managedFields" in meta:
            meta = {k: v for k, v in meta.items() if k != "managedFields"}
            body = {**body, "metadata": meta}
        key = (plural, meta["namespace"], meta["name"])
        old = self._bodies.get(key)
        if old is not None and _older(body, old):
            return old  # a watch event from before our own write that is cached already
        self._bodies[key] = body
        if plural == "computes":
            self._index(meta["namespace"], meta["name"], old, body)
        return old

    def each(self, plural: str) -> list[dict[str, Any]]:
        """Every cached object of `plural`, in every watched namespace."""
        return [body for (p, _, _), body in self._bodies.items() if p == plural]

    def drop(self, plural: str, namespace: str, name: str) -> None:
        """The object is gone."""
        old = self._bodies.pop((plural, namespace, name), None)
        if plural == "computes" and old is not None:
            self._index(namespace, name, old, None)

    def users(self, namespace: str, kind: str, name: str) -> set[str]:
        """Names of the Computes in `namespace` that wait for (kind, name)."""
        return set(self._users.get((namespace, kind, name), ()))

    def __len__(self) -> int:
        return len(self._bodies)

    def _index(
        self, ns: str, name: str, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> None:
        for kind, ref in compute_refs(old) if old else set():
            users = self._users.get((ns, kind, ref))
            if users is not None:
                users.discard(name)
                if not users:
                    del self._users[(ns, kind, ref)]
        for kind, ref in compute_refs(new) if new else set():
            self._users[(ns, kind, ref)].add(name)
