"""Launching a preparation job (a download, a notebook's setup) and recording what came of it.

Shared by the Data and JupyterNotebook controllers: the job's marker is already stored (a
resourceVersion-guarded write), so this POSTs the headless session, records its id in the
object's `Launch`, and hands a refusal back to the caller's decision (docs/design.md §4.3).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from skaha_operator.controllers import skaha_sessions
from skaha_operator.controllers.base import Outcome, write
from skaha_operator.controllers.context import Context
from skaha_operator.domain.base import KindModel
from skaha_operator.domain.launch import Launch
from skaha_operator.platform.clients import PlatformClients
from skaha_operator.platform.errors import AuthError, Rejected, Unavailable
from skaha_operator.platform.wire import SessionParams, SessionType
from skaha_operator.reconcile.jobs import JobPlan

Refuse = Callable[[str], Awaitable[Outcome]]


async def launch_job(
    ctx: Context,
    plural: str,
    model: type[KindModel],
    stored: dict[str, Any],
    plan: JobPlan,
    clients: PlatformClients,
    refuse: Refuse,
    requeue: float | None,
) -> Outcome:
    """POST the job and record its id; a 4xx goes to `refuse`, an unknown outcome waits."""
    params = SessionParams(
        name=plan.name, image=plan.image, type=SessionType.HEADLESS,
        cmd=plan.cmd, args=plan.args, env=plan.env,
    )  # fmt: skip
    try:
        job_id = await skaha_sessions.create(clients, params)
    except AuthError:
        raise  # a state of the platform, never a refused job
    except Rejected as exc:
        return await refuse(f"Skaha refused the job: {exc.message}")
    except Unavailable:
        return Outcome(2.0)  # maybe committed: the marker stays, the next step adopts
    await record(ctx, plural, model, stored, "job", job_id, f"job {plan.name} is {job_id}")
    return Outcome(requeue)


async def record(
    ctx: Context,
    plural: str,
    model: type[KindModel],
    stored: dict[str, Any],
    field: str,
    ext_id: str,
    message: str,
) -> None:
    """Write the external id into the object's `Launch` named `field` (guarded on the phase)."""
    current = getattr(model.model_validate(stored), "status", None)
    assert current is not None
    launch = getattr(current, field) or Launch()
    new = current.model_copy(
        update={field: launch.model_copy(update={"id": ext_id}), "message": message}
    )
    await write(ctx, plural, stored, new)
