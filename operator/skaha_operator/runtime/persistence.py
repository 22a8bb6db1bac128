"""kopf's bookkeeping kept in memory instead of in the objects: no write per retry or per handling.

kopf stores each handler's progress (retries, delays) and the last handled spec (the diffbase) in
annotations by default, which is one PATCH per retry and one per finished handling cycle on every
object (docs/performance.md). Our state lives in `status` and every step is idempotent, so a
restart that forgets this bookkeeping only re-runs a step: without a diffbase kopf sees each object
as new and calls its create handler, which is the same step as resume. Only kopf's wake-up touch
still writes (it is how kopf wakes itself after a delay); our requeues do not use it
(runtime/requeue.py). Entries are dropped when the object is deleted (runtime/watch.py).
"""

from __future__ import annotations

import copy
from typing import Any, cast

import kopf


def _uid(body: Any) -> str:
    return str(body.get("metadata", {}).get("uid", ""))


def _dotted(fields: Any) -> list[str]:
    """kopf's field specs (dotted strings or tuples of path parts) as dotted strings."""
    return [f if isinstance(f, str) else ".".join(map(str, f)) for f in fields or ()]


class MemoryProgressStorage(kopf.AnnotationsProgressStorage):
    """Handler progress per (object UID, handler id), in this process only."""

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix=prefix)
        self._records: dict[str, dict[str, kopf.ProgressRecord]] = {}

    def fetch(self, *, key: Any, body: Any) -> kopf.ProgressRecord | None:
        """The record of one handler on one object, if any."""
        return self._records.get(_uid(body), {}).get(str(key))

    def store(self, *, key: Any, record: kopf.ProgressRecord, body: Any, patch: Any) -> None:
        """Keep the record; nothing goes into the patch."""
        self._records.setdefault(_uid(body), {})[str(key)] = copy.copy(record)

    def purge(self, *, key: Any, body: Any, patch: Any) -> None:
        """Forget the record of a finished handler."""
        records = self._records.get(_uid(body))
        if records is not None:
            records.pop(str(key), None)
            if not records:
                del self._records[_uid(body)]

    def forget(self, uid: str) -> None:
        """Drop everything about a deleted object."""
        self._records.pop(uid, None)

    def __len__(self) -> int:
        return len(self._records)


class MemoryDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """The last handled essence per object UID, in this process only."""

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix=prefix, key="last-handled-configuration")
        self._essences: dict[str, Any] = {}

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        """kopf's essence, from a body without what the essence never holds.

        kopf deep-copies the whole body before dropping `metadata` and `status` from the copy:
        on every watch event, the status and metadata of each object were copied to be thrown
        away (6% of the operator's main thread at N = 1000, docs/performance.md). The essence is
        the same: kopf keeps only labels, annotations and the fields its handlers name (ours:
        `spec`), so the status stays only when such a field lies in it.
        """
        meta = body.get("metadata") or {}
        trimmed = {k: v for k, v in body.items() if k not in ("metadata", "status")}
        # Labels and annotations are the essence's; the owners name the annotation keys kopf
        # strips from it (its storage conventions).
        trimmed["metadata"] = {
            k: meta[k] for k in ("labels", "annotations", "ownerReferences") if k in meta
        }
        if any(f.startswith("status") for f in _dotted(extra_fields)):
            trimmed["status"] = body.get("status")
        return super().build(body=kopf.Body(cast(kopf.RawBody, trimmed)), extra_fields=extra_fields)

    def fetch(self, *, body: Any) -> Any:
        """The essence handled last, or None (then kopf treats the object as new)."""
        return self._essences.get(_uid(body))

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        """Keep the essence; nothing goes into the patch."""
        self._essences[_uid(body)] = essence

    def forget(self, uid: str) -> None:
        """Drop the essence of a deleted object."""
        self._essences.pop(uid, None)

    def __len__(self) -> int:
        return len(self._essences)
