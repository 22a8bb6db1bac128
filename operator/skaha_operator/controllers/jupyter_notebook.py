"""The JupyterNotebook controller: upload into the Storage, run the setup job, release per policy.

The requirements file (and a notebook from a ConfigMap) is PUT into Cavern (docs/platform-api.md
§7; the PUT overwrites, so repeating it is harmless); a notebook from a URL is fetched by the
setup job inside the platform, never through the operator. The setup job follows the one launch
protocol (reconcile/launch.py). Deletion is the same step: wait until no live Compute runs the
notebook, stop every setup attempt, then remove what it placed when the policy is Delete.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from skaha_operator.controllers import skaha_sessions
from skaha_operator.controllers.access import (
    PlatformAccess,
    live_users,
    platform_access,
    storage_view,
)
from skaha_operator.controllers.base import Outcome, tell, write
from skaha_operator.controllers.context import Context
from skaha_operator.controllers.jobs import launch_job
from skaha_operator.domain.common import Phase
from skaha_operator.domain.jupyter_notebook import JupyterNotebook, JupyterNotebookStatus
from skaha_operator.platform.clients import PlatformClients
from skaha_operator.platform.errors import AuthError, NotFound, Rejected, Unavailable
from skaha_operator.reconcile.launch import LaunchView, needs_listing
from skaha_operator.reconcile.notebook import (
    NotebookObservation,
    UploadPlan,
    decide_notebook,
    setup_policy,
)

# Phases in which nothing external is looked at until the object is deleted.
SETTLED = frozenset({Phase.AVAILABLE, Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED})


class JupyterNotebookController:
    """Drives JupyterNotebooks."""

    kind = "JupyterNotebook"
    plural = "jupyternotebooks"

    async def step(self, body: dict[str, Any], ctx: Context) -> Outcome:
        """Observe, decide once, act, write with a guarded write."""
        nb = JupyterNotebook.model_validate(body)
        ns = str(nb.metadata["namespace"])
        access = await platform_access(ctx, ns, nb.spec.platform_ref)
        obs = await self.observe(nb, body, access, ctx)
        decision = decide_notebook(nb, obs, ctx.config.timing)
        clients = access.clients
        if decision.upload is not None and clients is not None:
            problem = await _upload(ctx, clients, decision.upload, ns)
            if problem is not None:
                return await self._refused(body, obs, problem, ctx)
        if decision.job is not None and clients is not None:
            stored = await write(ctx, self.plural, body, decision.status, strict=True)
            tell(ctx, body, self.kind, decision.status, decision.events, decision.warning)
            return await launch_job(
                ctx, self.plural, JupyterNotebook, stored, decision.job, clients,
                lambda why: self._refused(stored, obs, why, ctx), decision.requeue_after,
            )  # fmt: skip
        if decision.write:
            await write(ctx, self.plural, body, decision.status)
        if clients is not None:
            await skaha_sessions.delete(clients, decision.delete_jobs)
            for path in decision.delete_paths:
                await clients.cavern.delete_tree(path)
        tell(ctx, body, self.kind, decision.status, decision.events, decision.warning)
        return Outcome(decision.requeue_after, decision.released)

    async def observe(
        self, nb: JupyterNotebook, body: dict[str, Any], access: PlatformAccess, ctx: Context
    ) -> NotebookObservation:
        """Read what the decision needs: platform, storage, ConfigMap, the job, users on release."""
        now = datetime.now(UTC)
        ns, name = str(nb.metadata["namespace"]), str(nb.metadata["name"])
        status = nb.status or JupyterNotebookStatus()
        deleting = bool(nb.metadata.get("deletionTimestamp"))
        clients = access.clients
        cm = nb.spec.notebook.config_map_ref
        found = None
        if cm is not None and not status.notebook_path and not deleting:
            found = await ctx.kube.read_config_map(ns, cm.name, cm.key) is not None
        job, detail = LaunchView(), None
        settled = status.phase in SETTLED and not deleting
        reachable = clients is not None
        if (
            clients is not None
            and status.job is not None
            and status.job.pending_since
            and not settled
        ):
            policy = setup_policy(nb, ctx.config.timing)
            listing = deleting or needs_listing(status.job, now, policy)
            try:
                job, session = await skaha_sessions.observe(
                    clients, status.job, policy.base, listing=listing
                )
                if session is not None and str(session.status) in skaha_sessions.FAILED:
                    detail = await skaha_sessions.log_tail(clients, session.id)
            except (Unavailable, AuthError):
                if not deleting or not access.gives_up(body):
                    raise
                reachable = False
        users: tuple[str, ...] = ()
        if deleting:
            ref = {"kind": self.kind, "name": name}
            users = tuple(
                await live_users(ctx, ns, "computes", lambda s: s.get("executableRef") == ref)
            )
        return NotebookObservation(
            now=now,
            platform_ready=access.ready,
            platform_reason=access.reason,
            storage=await storage_view(ctx, ns, nb.spec.storage_ref),
            config_map_found=found,
            job=job,
            job_detail=detail,
            deleting=deleting,
            reachable=reachable,
            abandon=access.abandon(body),
            users=users,
        )

    async def _refused(
        self, body: dict[str, Any], obs: NotebookObservation, message: str, ctx: Context
    ) -> Outcome:
        nb = JupyterNotebook.model_validate(body)
        again = decide_notebook(nb, dataclasses.replace(obs, refused=message), ctx.config.timing)
        await write(ctx, self.plural, body, again.status)
        tell(ctx, body, self.kind, again.status, again.events, again.warning)
        return Outcome(again.requeue_after)


async def _upload(ctx: Context, clients: PlatformClients, plan: UploadPlan, ns: str) -> str | None:
    """PUT the directory, the requirements and a ConfigMap notebook; why not, if refused."""
    try:
        await clients.cavern.make_dirs(plan.directory_node)
        await clients.cavern.put_file(plan.requirements_node, plan.requirements, "text/plain")
        if plan.config_map is not None and plan.notebook_node is not None:
            text = await ctx.kube.read_config_map(ns, *plan.config_map)
            if text is None:
                return f"the notebook's ConfigMap {plan.config_map[0]} vanished"
            await clients.cavern.put_file(
                plan.notebook_node, text.encode(), "application/x-ipynb+json"
            )
    except AuthError:
        raise
    except NotFound as exc:
        return f"Cavern refused the upload: {exc}"
    except Rejected as exc:
        return f"Cavern refused the upload: {exc}"
    return None
