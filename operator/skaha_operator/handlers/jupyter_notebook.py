"""JupyterNotebook handlers: upload into the Storage, run the setup job, release per policy.

The requirements file (and a notebook from a ConfigMap) is PUT into Cavern (skaha-api.md §7; the
PUT overwrites, so repeating it is harmless); a notebook from a URL is fetched by the setup job
inside the platform, never through the operator. The setup job is launched behind a
create-pending marker under a UID-derived name (design §4.3). Release, behind the finalizer and
once no live Compute runs the notebook, stops a running setup job and, when the policy is Delete,
removes the notebook, its requirements file and its environment.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from skaha_operator import GROUP, VERSION
from skaha_operator.domain.common import ReleasePolicy
from skaha_operator.domain.jupyter_notebook import JupyterNotebook, JupyterNotebookStatus
from skaha_operator.handlers.common import (
    RESYNC_INTERVAL,
    drive,
    post_events,
    reconciling,
)
from skaha_operator.handlers.prepare import (
    dump,
    launch_job,
    live_users,
    observe_job,
    platform_access,
    stop_job,
    storage_view,
    write_failed,
)
from skaha_operator.handlers.state import OperatorState, state
from skaha_operator.platform.clients import PlatformClients
from skaha_operator.platform.errors import Rejected
from skaha_operator.reconcile.notebook import (
    NotebookAct,
    NotebookDecision,
    NotebookObservation,
    UploadPlan,
    decide_notebook,
    files_at,
)
from skaha_operator.reconcile.storage import node_of_mount

PLURAL = "jupyternotebooks"
KIND = "JupyterNotebook"


@kopf.on.resume(GROUP, VERSION, PLURAL, id="prepare")
@kopf.on.create(GROUP, VERSION, PLURAL, id="prepare")
async def on_notebook(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Prepare the notebook until Available or Failed."""
    await drive(KIND, PLURAL, step_notebook, body, state(memo))


@kopf.timer(
    GROUP, VERSION, PLURAL, id="resync", interval=RESYNC_INTERVAL, initial_delay=RESYNC_INTERVAL / 2
)
async def resync_notebook(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Level-based resync for lost events."""
    await drive(KIND, PLURAL, step_notebook, body, state(memo))


@kopf.on.delete(GROUP, VERSION, PLURAL, id="release")
async def release_notebook(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Wait until no live Compute runs it; stop the setup job; remove its files per policy."""
    async with reconciling(KIND):
        st = state(memo)
        nb = JupyterNotebook.model_validate(dict(body))
        ns, name = str(nb.metadata["namespace"]), str(nb.metadata["name"])
        ref = {"kind": KIND, "name": name}
        users = await live_users(st, ns, "computes", lambda s: s.get("executableRef") == ref)
        if users:
            raise kopf.TemporaryError(f"still used by Compute {', '.join(users)}", delay=10)
        status = nb.status
        if status is None or not status.notebook_path:
            return  # nothing was placed
        access = await platform_access(st, ns, nb.spec.platform_ref)
        if access.clients is None:
            raise kopf.TemporaryError("platform unusable: cannot release yet", delay=10)
        if await stop_job(access.clients, status):
            raise kopf.TemporaryError("waiting for the setup job to stop", delay=2)
        if nb.spec.release_policy == ReleasePolicy.DELETE:
            directory, file_name = status.notebook_path.rsplit("/", 1)
            files = files_at(directory, file_name)
            for path in (files.environment, files.requirements, files.notebook):
                await access.clients.cavern.delete_tree(node_of_mount(path))


async def step_notebook(body: dict[str, Any], st: OperatorState) -> NotebookDecision:
    """Observe, decide once, act at most once, write the status with a guarded write."""
    nb = JupyterNotebook.model_validate(body)
    ns = str(nb.metadata["namespace"])
    access = await platform_access(st, ns, nb.spec.platform_ref)
    status = nb.status or JupyterNotebookStatus()
    cm = nb.spec.notebook.config_map_ref
    found = None
    if cm is not None and not status.notebook_path:
        found = await st.kube.read_config_map(ns, cm.name, cm.key) is not None
    obs = NotebookObservation(
        now=datetime.now(UTC),
        platform_ready=access.ready,
        platform_reason=access.reason,
        storage=await storage_view(st, ns, nb.spec.storage_ref),
        config_map_found=found,
        job=await observe_job(access.clients, status),
    )
    decision = decide_notebook(nb, obs, st.config.timing)
    new = dump(decision.status)
    clients = access.clients
    if decision.action == NotebookAct.UPLOAD and decision.upload and clients is not None:
        if await _upload(st, body, clients, decision.upload, ns):
            await st.kube.write_status(PLURAL, body, new)
    elif decision.action == NotebookAct.LAUNCH_JOB and decision.job and clients is not None:
        stored = await st.kube.write_status(PLURAL, body, new, strict=True)
        await launch_job(
            st, PLURAL, KIND, stored or body, clients, decision.job, JupyterNotebookStatus
        )
    else:
        await st.kube.write_status(PLURAL, body, new)
    s = decision.status
    post_events(body, KIND, decision.events, str(s.phase), s.reason or "")
    return decision


async def _upload(
    st: OperatorState, body: dict[str, Any], clients: PlatformClients, plan: UploadPlan, ns: str
) -> bool:
    """PUT the directory, the requirements and a ConfigMap notebook; False if it failed."""
    try:
        await clients.cavern.make_dirs(plan.directory_node)
        await clients.cavern.put_file(plan.requirements_node, plan.requirements, "text/plain")
        if plan.config_map is not None and plan.notebook_node is not None:
            text = await st.kube.read_config_map(ns, *plan.config_map)
            if text is None:
                raise kopf.TemporaryError("the notebook's ConfigMap vanished", delay=5)
            await clients.cavern.put_file(
                plan.notebook_node, text.encode(), "application/x-ipynb+json"
            )
    except Rejected as exc:
        await write_failed(
            st,
            PLURAL,
            KIND,
            body,
            JupyterNotebookStatus,
            "CavernRejected",
            f"Cavern refused the upload: {exc}",
        )
        return False
    return True
