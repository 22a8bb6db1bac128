"""Every kopf handler, registered for every kind from the one registry of controllers.

Per kind: create/resume/spec-update handlers step the object (runtime/driver.py `drive`), and a
watch handler feeds the cache (runtime/watch.py), which also wakes an object whose deletion has
begun: release is the same step. No kopf timer and no kopf delete handler: either would make kopf
keep a finalizer of its own (one more write per object) and a task per object; the finalizer is
ours (runtime/driver.py) and the periodic resync is one sweep over the cache
(runtime/resync.py).
"""

from __future__ import annotations

from typing import Any

import kopf

from skaha_operator import GROUP, VERSION
from skaha_operator.controllers.base import Controller
from skaha_operator.controllers.registry import CONTROLLERS
from skaha_operator.runtime.driver import drive
from skaha_operator.runtime.state import OperatorState, state
from skaha_operator.runtime.watch import register_watch


def register(controller: Controller) -> None:
    """kopf handlers that drive one kind's controller."""
    plural = controller.plural

    def held(body: kopf.Body, memo: kopf.Memo, **_: Any) -> bool:
        """Only objects of the shards this replica holds reach kopf's change handling.

        For the others kopf stays blind (no change detection, no bookkeeping): a second replica
        does not pay kopf's per-object work twice. Safe because no handler of ours asks kopf for
        a finalizer; a shard taken over is stepped by the takeover (runtime/shards.py).
        """
        st = getattr(memo, "state", None)
        if not isinstance(st, OperatorState):
            return True
        meta = body.get("metadata") or {}
        key = (plural, str(meta.get("namespace")), str(meta.get("name")))
        return st.shards.holds(key[1], dict(body), key)

    @kopf.on.resume(GROUP, VERSION, plural, id="reconcile", when=held)
    @kopf.on.create(GROUP, VERSION, plural, id="reconcile", when=held)
    @kopf.on.update(GROUP, VERSION, plural, id="reconcile", field="spec", when=held)
    async def on_change(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        """Step now; in-memory wake-ups until nothing is left to wait for."""
        await drive(controller, dict(body), state(memo))

    register_watch(plural)


for _controller in CONTROLLERS:
    register(_controller)
