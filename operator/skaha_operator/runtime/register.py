"""Every kopf handler, registered for every kind from the one registry of controllers.

Per kind: create/resume/spec-update handlers and a resync timer step the object (runtime/driver.py
`drive`), a delete handler releases it (`release`, retried by kopf until the controller says
released), and a watch handler feeds the cache (runtime/watch.py). Timer intervals come from the
environment because kopf's decorators are evaluated at import (the CLI sets them first).
"""

from __future__ import annotations

import os
from typing import Any

import kopf

from skaha_operator import GROUP, VERSION
from skaha_operator.controllers.base import Controller
from skaha_operator.controllers.registry import CONTROLLERS
from skaha_operator.runtime.driver import drive, release
from skaha_operator.runtime.state import state
from skaha_operator.runtime.watch import register_watch

RESYNC_INTERVAL = float(os.environ.get("SKAHA_OPERATOR_RESYNC", "60"))
# A platform is probed again now and then: options and the API version can change under us.
PLATFORM_RESYNC = 300.0


def register(controller: Controller) -> None:
    """kopf handlers that drive one kind's controller."""
    plural = controller.plural
    interval = PLATFORM_RESYNC if plural == "skahaplatforms" else RESYNC_INTERVAL

    @kopf.on.resume(GROUP, VERSION, plural, id="reconcile")
    @kopf.on.create(GROUP, VERSION, plural, id="reconcile")
    @kopf.on.update(GROUP, VERSION, plural, id="reconcile", field="spec")
    async def on_change(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        """Step now; in-memory wake-ups until nothing is left to wait for."""
        await drive(controller, dict(body), state(memo))

    @kopf.timer(GROUP, VERSION, plural, id="resync", interval=interval, initial_delay=interval / 2)
    async def on_resync(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        """Level-based resync (lost watch events, lost wake-ups): the same step."""
        await drive(controller, dict(body), state(memo))

    @kopf.on.delete(GROUP, VERSION, plural, id="release")
    async def on_delete(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        """The same step, until the controller says everything launched is released."""
        await release(controller, dict(body), state(memo))

    register_watch(plural)


for _controller in CONTROLLERS:
    register(_controller)
