"""Kubernetes Events about our objects, posted in the background, in order per object.

A step decides and writes status; the Events telling people about it (docs/design.md §3: one per
transition) must not hold the step up, so `post` queues them and returns. The Events of one
object are posted one after the other, in the order the steps told them (`kubectl describe`
shows the story in order); different objects' Events go out concurrently. An Event the API server
refuses (a namespace being deleted, a quota) is logged at INFO and dropped: Events are a report,
and the object's status holds the same state. Each Event is also logged at INFO with the object's
reference (the `k8s_ref` record attribute, which JSON logs show as "object").
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from skaha_operator.k8s.api import Kube

logger = logging.getLogger("skaha_operator.events")

MAX_MESSAGE = 1024  # what `kubectl describe` shows in full; longer ones keep head and tail
CUT = " ... "
CLOSE_WAIT = 5.0


def reference(body: dict[str, Any]) -> dict[str, Any]:
    """The object reference of a body (involvedObject, and the log record's `k8s_ref`)."""
    meta = body.get("metadata") or {}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
    }


def shorten(message: str) -> str:
    """At most MAX_MESSAGE characters: the head and the tail, where causes are."""
    if len(message) <= MAX_MESSAGE:
        return message
    half = (MAX_MESSAGE - len(CUT)) // 2
    return message[:half] + CUT + message[-(MAX_MESSAGE - len(CUT) - half) :]


def event_body(
    ref: dict[str, Any], type_: str, reason: str, message: str, component: str, instance: str
) -> dict[str, Any]:
    """A core/v1 Event (the legacy series fields, which every kubectl shows)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{ref['name']}.", "namespace": ref["namespace"]},
        "involvedObject": ref,
        "type": type_,
        "reason": reason,
        "message": shorten(message),
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": instance,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


class EventPoster:
    """Posts Events with `kube`, one object's in order, none holding a step up."""

    def __init__(self, kube: Kube, component: str, instance: str) -> None:
        self.kube = kube
        self.component = component
        self.instance = instance[:128]
        self._last: dict[str, asyncio.Task[None]] = {}  # per object: its newest Event's task
        self.posted = 0
        self.dropped = 0

    def post(self, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Queue one Event about `body` (called from steps on the event loop)."""
        ref = reference(body)
        if not ref["namespace"] or not ref["name"]:
            return
        log = logger.warning if type_ == "Warning" else logger.info
        log("%s %s/%s: %s %s", ref["kind"], ref["namespace"], ref["name"], reason, message,
            extra={"k8s_ref": ref})  # fmt: skip
        event = event_body(ref, type_, reason, message, self.component, self.instance)
        key = str(ref["uid"] or f"{ref['namespace']}/{ref['kind']}/{ref['name']}")
        before = self._last.get(key)
        task = asyncio.get_running_loop().create_task(self._send(before, event))
        self._last[key] = task
        task.add_done_callback(lambda done: self._done(key, done))

    def _done(self, key: str, task: asyncio.Task[None]) -> None:
        if self._last.get(key) is task:
            del self._last[key]

    async def _send(self, before: asyncio.Task[None] | None, event: dict[str, Any]) -> None:
        if before is not None:
            await asyncio.wait([before])  # its outcome is its own; only the order matters here
        try:
            await self.kube.create_event(event["metadata"]["namespace"], event)
            self.posted += 1
        except Exception as exc:  # a report is lost, nothing else
            self.dropped += 1
            ref = event["involvedObject"]
            why = f"{exc.status} {exc.reason}" if isinstance(exc, client.ApiException) else exc
            logger.info("Event %s on %s/%s not posted: %s",
                        event["reason"], ref["namespace"], ref["name"], why)  # fmt: skip

    async def aclose(self) -> None:
        """Wait a little (CLOSE_WAIT) for the Events still being posted (clean shutdown)."""
        pending = list(self._last.values())
        if pending:
            await asyncio.wait(pending, timeout=CLOSE_WAIT)
