"""The JupyterNotebook decision: place the notebook and its requirements, then a setup job.

Steps (docs/design.md §2): wait for the platform and the Storage; upload the requirements file (and
the notebook when it comes from a ConfigMap) into the storage with Cavern PUTs
(docs/platform-api.md §7); then a short headless job on the notebook's own image fetches the
notebook when it comes from a URL (data never moves through the operator) and installs the
requirements into a per-notebook virtual environment inside the storage. Available when that job
Completed; a failed job's log tail (pip's error) is the message. The job step is `reconcile.jobs`
(over the shared launch protocol). Release (the object is being deleted) goes through the same
decision: wait while a live Compute uses the notebook, stop the setup job (every attempt), then per
the release policy remove the environment, the requirements file and the notebook.
Pure: imports neither kopf, kubernetes nor httpx.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from skaha_operator.domain.common import TERMINAL_PHASES, Phase, ReleasePolicy
from skaha_operator.domain.jupyter_notebook import JupyterNotebook, JupyterNotebookStatus
from skaha_operator.reconcile.jobs import (
    JOB_ARGS,
    JOB_CMD,
    SCRIPT_ENV,
    JobPlan,
    job_policy,
    job_release,
    job_step,
)
from skaha_operator.reconcile.launch import REFUSED, LaunchPolicy, LaunchView, Next, marker, sent
from skaha_operator.reconcile.parts import (
    Move,
    StorageView,
    advance,
    in_use,
    job_move,
    release_blocked,
    releasing,
    wait_for_platform,
    wait_for_storage,
)
from skaha_operator.reconcile.storage import node_of_mount
from skaha_operator.reconcile.timing import Timing

JOB_TAG = "nb"

SETUP_SCRIPT = "; ".join(
    [
        "set -eu",
        'cd "$SKOP_DIR"',
        'if [ -n "${SKOP_NOTEBOOK_URL:-}" ]; then python3 -c '
        "'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "
        '"$SKOP_NOTEBOOK_URL" "$SKOP_NOTEBOOK"; fi',
        'python3 -m venv --system-site-packages "$SKOP_ENV"',
        '"$SKOP_ENV/bin/python" -m pip install --no-input --disable-pip-version-check '
        '-r "$SKOP_REQUIREMENTS"',
        'echo "notebook environment ready in $SKOP_ENV"',
    ]
)


@dataclass(frozen=True)
class NotebookFiles:
    """Where a notebook's files go (paths inside sessions; `node_of_mount` gives Cavern's)."""

    directory: str
    notebook: str
    requirements: str
    environment: str


@dataclass(frozen=True)
class UploadPlan:
    """What the handler PUTs into Cavern: the directory, requirements, and a ConfigMap notebook."""

    directory_node: str
    requirements_node: str
    requirements: bytes
    notebook_node: str | None  # None: the setup job fetches it from the URL
    config_map: tuple[str, str] | None  # (name, key) holding the notebook


@dataclass(frozen=True)
class NotebookObservation:
    """Everything observed for one decision."""

    now: datetime
    platform_ready: bool
    platform_reason: str | None = None
    storage: StorageView | None = None
    config_map_found: bool | None = None  # None: not looked (URL source, or already uploaded)
    # The setup jobs listed under the job policy's base name (when `needs_listing` says so, and
    # always while deleting) and the recorded id looked up.
    job: LaunchView = field(default_factory=LaunchView)
    job_detail: str | None = None  # the job's log tail, fetched when it failed
    refused: str | None = None  # Skaha answered 4xx to the launch just sent: nothing created
    deleting: bool = False  # deletionTimestamp is set: release
    reachable: bool = True  # the platform's clients exist (release needs them)
    abandon: bool = False  # the abandon annotation is set
    users: tuple[str, ...] = ()  # live Computes still using this notebook; release waits


@dataclass(frozen=True)
class NotebookDecision:
    """The next status and the actions, and when to look again.

    Actions run in this order: the status write (guarded by resourceVersion when `job` is set: it
    carries the marker; after the upload when `upload` is set), the upload or the launch, the
    deletes. `released`: nothing is left, the finalizer may go (after the deletes succeeded).
    """

    status: JupyterNotebookStatus
    upload: UploadPlan | None = None
    job: JobPlan | None = None
    delete_jobs: tuple[str, ...] = ()  # Skaha session ids
    delete_paths: tuple[str, ...] = ()  # Cavern node paths to remove recursively, in order
    requeue_after: float | None = None
    events: tuple[str, ...] = ()
    released: bool = False
    warning: str | None = None  # a Warning Event (stalled, release blocked, left behind)
    write: bool = True  # False: the status must not be written (terminal, or released)


def notebook_file_name(nb: JupyterNotebook) -> str:
    """The notebook's file name: the URL's last segment or the ConfigMap key, ending .ipynb."""
    source = nb.spec.notebook
    if source.url is not None:
        name = posixpath.basename(urlsplit(source.url).path) or "notebook.ipynb"
    else:
        assert source.config_map_ref is not None
        name = source.config_map_ref.key
    return name if name.endswith(".ipynb") else f"{name}.ipynb"


def notebook_files(nb: JupyterNotebook, storage_mount: str) -> NotebookFiles:
    """The directory, notebook, requirements file and per-notebook environment of `nb`."""
    directory = storage_mount.rstrip("/")
    if nb.spec.path:
        directory = f"{directory}/{nb.spec.path.strip('/')}"
    return files_at(directory, notebook_file_name(nb))


def files_at(directory: str, name: str) -> NotebookFiles:
    """The files of notebook `name` placed in `directory` (one environment per notebook)."""
    stem = name.removesuffix(".ipynb")
    return NotebookFiles(
        directory=directory,
        notebook=f"{directory}/{name}",
        requirements=f"{directory}/{stem}-requirements.txt",
        environment=f"{directory}/.venv-{stem}",
    )


def setup_job(nb: JupyterNotebook, files: NotebookFiles, name: str) -> JobPlan:
    """The headless job on the notebook's image that fetches it (URL) and installs requirements."""
    env = {
        "SKOP_JOB": "notebook-setup",
        "SKOP_DIR": files.directory,
        "SKOP_NOTEBOOK": files.notebook,
        "SKOP_REQUIREMENTS": files.requirements,
        "SKOP_ENV": files.environment,
    }
    if nb.spec.notebook.url is not None:
        env["SKOP_NOTEBOOK_URL"] = nb.spec.notebook.url
    env[SCRIPT_ENV] = SETUP_SCRIPT
    return JobPlan(name=name, image=nb.spec.image, cmd=JOB_CMD, args=JOB_ARGS, env=env)


def setup_policy(nb: JupyterNotebook, timing: Timing) -> LaunchPolicy:
    """How a notebook's setup job launches (names `skop-nb-<uid hex>-<n>`)."""
    return job_policy(timing, tag=JOB_TAG, uid=_uid(nb), what=SETUP)


def placed_files(status: JupyterNotebookStatus) -> NotebookFiles | None:
    """The files a notebook placed, from its recorded path (None: nothing was placed)."""
    if not status.notebook_path:
        return None
    directory, name = status.notebook_path.rsplit("/", 1)
    return files_at(directory, name)


def decide_notebook(
    nb: JupyterNotebook, obs: NotebookObservation, timing: Timing
) -> NotebookDecision:
    """The next step for one JupyterNotebook (its release too, once it is being deleted)."""
    step = _Step(nb, nb.status or JupyterNotebookStatus(), obs, timing)
    return step.release() if obs.deleting else step.decide()


SETUP = "notebook setup"


def _uid(nb: JupyterNotebook) -> str:
    return str(nb.metadata.get("uid", ""))


@dataclass
class _Step:
    nb: JupyterNotebook
    status: JupyterNotebookStatus
    obs: NotebookObservation
    timing: Timing

    def result(
        self,
        move: Move,
        *,
        upload: UploadPlan | None = None,
        job: JobPlan | None = None,
        changes: dict[str, object] | None = None,
        delete_jobs: tuple[str, ...] = (),
        warning: str | None = None,
    ) -> NotebookDecision:
        """The one place a status is moved: phase, reason, message and conditions together."""
        gen = self.nb.metadata.get("generation")
        new, events, warning = advance(
            self.status, move, self.obs.now, gen, changes=changes, warning=warning
        )
        return NotebookDecision(
            new,
            upload=upload,
            job=job,
            delete_jobs=delete_jobs,
            requeue_after=move.requeue,
            events=events,
            warning=warning,
        )

    def decide(self) -> NotebookDecision:
        status, obs, timing, spec = self.status, self.obs, self.timing, self.nb.spec
        phase = status.phase or Phase.INITIALIZING
        if phase in TERMINAL_PHASES or phase in {Phase.AVAILABLE, Phase.RELEASING}:
            return NotebookDecision(status, write=False)  # placed once; released on deletion
        if obs.refused is not None:
            # Skaha answered 4xx to the launch just sent: nothing was created, and sending it
            # again would not help.
            job = marker(status.job).model_copy(update={"observed": REFUSED})
            return self.result(
                Move(
                    Phase.FAILED,
                    "JobRejected",
                    f"Skaha refused the notebook setup job: {obs.refused}",
                ),
                changes={"job": job},
            )
        if not obs.platform_ready:
            return self.result(wait_for_platform(spec.platform_ref, obs.platform_reason, timing))
        storage = obs.storage
        waiting = wait_for_storage(storage, spec.storage_ref, timing)
        if waiting is not None:
            return self.result(waiting)
        assert storage is not None
        assert storage.mount_path is not None
        files = notebook_files(self.nb, storage.mount_path)
        cm = spec.notebook.config_map_ref
        if not status.notebook_path:
            if cm is not None and obs.config_map_found is False:
                return self.result(
                    Move(
                        Phase.PREPARING,
                        "WaitingForConfigMap",
                        f"ConfigMap {cm.name} with key {cm.key} not found",
                        requeue=timing.dependency_recheck,
                    )
                )
            text = "".join(f"{r}\n" for r in spec.requirements or [])
            plan = UploadPlan(
                directory_node=node_of_mount(files.directory),
                requirements_node=node_of_mount(files.requirements),
                requirements=text.encode(),
                notebook_node=node_of_mount(files.notebook) if cm is not None else None,
                config_map=(cm.name, cm.key) if cm is not None else None,
            )
            # Uploads are PUTs that overwrite (§7): repeating them after a crash is harmless, so
            # the path is recorded after the upload, not before.
            return self.result(
                Move(
                    Phase.PREPARING,
                    "Uploading",
                    f"uploading {'the notebook and ' if cm is not None else ''}requirements to "
                    f"{files.directory}",
                    requeue=0.0,
                ),
                upload=plan,
                changes={"notebook_path": files.notebook},
            )
        step = job_step(
            status.job,
            obs.job,
            obs.job_detail,
            obs.now,
            timing,
            tag=JOB_TAG,
            uid=_uid(self.nb),
            what=SETUP,
            failure_reason="NotebookSetupFailed",
        )
        done = f"notebook at {files.notebook}; requirements installed in {files.environment}"
        move = job_move(step, timing, done=("NotebookReady", done))
        setup = setup_job(self.nb, files, move.launch) if move.launch else None
        return self.result(move, job=setup, changes={"job": step.launch}, delete_jobs=step.delete)

    # -- release ---------------------------------------------------------------------------

    def _paths(self) -> tuple[str, ...]:
        files = placed_files(self.status)
        if files is None or self.nb.spec.release_policy != ReleasePolicy.DELETE:
            return ()
        return tuple(
            node_of_mount(p) for p in (files.environment, files.requirements, files.notebook)
        )

    def release(self) -> NotebookDecision:
        """The object is being deleted: wait for users, stop the setup job, delete per policy."""
        obs, st = self.obs, self.status
        users = in_use(obs.users)
        if users is not None:
            return self._hold(users)
        paths = self._paths()
        if (sent(st.job) or paths) and not obs.reachable:
            return self._blocked(paths)
        step = job_release(
            st.job, obs.job, obs.now, self.timing, tag=JOB_TAG, uid=_uid(self.nb), what=SETUP
        )
        if sent(st.job) and step.next != Next.RELEASED:
            return self._hold(releasing(step), jobs=step.delete)
        return NotebookDecision(st, delete_paths=paths, released=True, write=False)

    def _blocked(self, paths: tuple[str, ...]) -> NotebookDecision:
        job = marker(self.status.job)
        parts = [f"notebook setup job {job.id or job.name}"] if sent(self.status.job) else []
        parts += [f"Cavern node {p}" for p in paths]
        blocked = release_blocked(
            ", ".join(parts),
            self.nb.spec.platform_ref,
            abandon=self.obs.abandon,
            reason=self.status.reason,
            terminal=self._terminal,
        )
        if blocked.released:
            return NotebookDecision(
                self.status, released=True, write=False, warning=blocked.warning
            )
        return self._hold(blocked.hold, warning=blocked.warning)

    @property
    def _terminal(self) -> bool:
        return (self.status.phase or Phase.INITIALIZING) in TERMINAL_PHASES

    def _hold(
        self, move: Move, *, jobs: tuple[str, ...] = (), warning: str | None = None
    ) -> NotebookDecision:
        """Release is not done: Releasing (a terminal status is kept, not written)."""
        if self._terminal:
            return NotebookDecision(
                self.status,
                delete_jobs=jobs,
                requeue_after=move.requeue,
                warning=warning,
                write=False,
            )
        return self.result(move, delete_jobs=jobs, warning=warning)


__all__ = [
    "JOB_TAG",
    "NotebookDecision",
    "NotebookFiles",
    "NotebookObservation",
    "UploadPlan",
    "decide_notebook",
    "files_at",
    "notebook_file_name",
    "notebook_files",
    "placed_files",
    "setup_job",
    "setup_policy",
]
