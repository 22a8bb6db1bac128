"""The Compute controller: observe the platform, dependencies and the Skaha session; decide; act.

Launching follows the one protocol (reconcile/launch.py): everything that can fail without
talking to Skaha (the platform, dependencies, the image and its registry Secret) is resolved
before the create-pending marker is written with a resourceVersion-guarded write; only then is
the session POSTed and its id recorded. A refused launch is fed back to the decision as an
observation. Deletion runs through the same step: the decision deletes what carries our name and
says released once nothing can still appear (docs/design.md §4.3, §4.6).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from skaha_operator.controllers import skaha_sessions
from skaha_operator.controllers.base import Outcome, dump, tell, write
from skaha_operator.controllers.context import Context, abandoned
from skaha_operator.controllers.first_look import first_look_wait
from skaha_operator.controllers.platforms import platform_model
from skaha_operator.controllers.slots import count_slots
from skaha_operator.domain.common import Phase, SessionType
from skaha_operator.domain.compute import Compute, ComputeStatus
from skaha_operator.domain.docker_container import DockerContainer
from skaha_operator.domain.jupyter_notebook import JupyterNotebook
from skaha_operator.domain.kinds import plural_of
from skaha_operator.k8s.api import CredentialsNotMarked, SecretError
from skaha_operator.platform.clients import PlatformClients
from skaha_operator.platform.errors import AuthError, Rejected, Unavailable
from skaha_operator.platform.skaha import RegistryAuth
from skaha_operator.platform.wire import SessionParams
from skaha_operator.platform.wire import SessionType as WireType
from skaha_operator.reconcile.checks import platform_view
from skaha_operator.reconcile.compute import (
    PLATFORM_NEEDS_HUMAN,
    ComputeDecision,
    ComputeObservation,
    DependencyView,
    PlatformView,
    SkahaView,
    decide_compute,
    launch_policy,
)
from skaha_operator.reconcile.conditions import STALLED, condition_status
from skaha_operator.reconcile.launch import LaunchView, needs_listing

TERMINAL = frozenset({Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED})
# Skaha's refusal at the interactive-session cap (docs/platform-api.md §2.4).
CAP_MESSAGE = "has reached the maximum of"
logger = logging.getLogger(__name__)
Inputs = tuple[str, RegistryAuth | None]  # the image and its registry credentials


class ComputeController:
    """Drives Computes."""

    kind = "Compute"
    plural = "computes"

    async def step(self, body: dict[str, Any], ctx: Context) -> Outcome:
        """Observe, decide once, act, write with a guarded write."""
        compute = Compute.model_validate(body)
        clients, platform_body = await _clients(compute, ctx)
        timing = ctx.config.timing
        now = datetime.now(UTC)
        wait = first_look_wait(ctx.first_looks, compute, _platform_view(platform_body), now, timing)
        if wait is not None:
            return Outcome(wait)
        if _queued(compute):
            # Count the slots and write the launch marker under the platform's lock, so that
            # this operator's Computes never pass the interactive cap together.
            lock = ctx.slots.lock(str(compute.metadata["namespace"]), compute.spec.platform_ref)
            async with lock:
                marked = await self._decide(compute, body, clients, platform_body, ctx, True)
        else:
            marked = await self._decide(compute, body, clients, platform_body, ctx, False)
        if isinstance(marked, Outcome):
            return marked
        stored, decision, inputs, obs = marked
        assert clients is not None
        outcome = await self._launch(compute, stored, decision, clients, inputs, obs, ctx)
        if isinstance(outcome, Outcome):
            return outcome
        return await self._look_now(outcome, clients, platform_body, ctx)

    async def _decide(
        self,
        compute: Compute,
        body: dict[str, Any],
        clients: PlatformClients | None,
        platform_body: dict[str, Any] | None,
        ctx: Context,
        count: bool,
    ) -> Outcome | tuple[dict[str, Any], ComputeDecision, Inputs, ComputeObservation]:
        """Decide and act, except a launch: its marker is stored and the POST is left to the
        caller (outside the platform's lock)."""
        obs, inputs = await self.observe(compute, clients, platform_body, ctx)
        capped = obs.platform is not None and obs.platform.max_interactive is not None
        if count and capped and clients is not None:
            slots = await count_slots(ctx.slots, compute, clients, ctx.cache.each(self.plural))
            obs = dataclasses.replace(obs, slots=slots)
        decision = decide_compute(compute, obs, ctx.config.timing)
        if decision.launch is not None and inputs is None:
            # A re-send of a lost launch: the inputs are resolved again before the marker.
            inputs, problem = await _inputs(compute, ctx)
            if problem is not None:
                return Outcome(ctx.config.timing.dependency_recheck)
        if decision.launch is not None and clients is not None and inputs is not None:
            stored = await write(ctx, self.plural, body, decision.status, strict=True)
            tell(ctx, body, self.kind, decision.status, decision.events, decision.warning)
            return stored, decision, inputs, obs
        return await self._act(body, decision, clients, ctx)

    async def observe(
        self,
        compute: Compute,
        clients: PlatformClients | None,
        platform_body: dict[str, Any] | None,
        ctx: Context,
    ) -> tuple[ComputeObservation, Inputs | None]:
        """Read only what the decision for the current phase needs."""
        now = datetime.now(UTC)
        status = compute.status
        phase = (status.phase if status else None) or Phase.INITIALIZING
        launch = status.launch if status else None
        deleting = bool(compute.metadata.get("deletionTimestamp"))
        base = launch_policy(compute, ctx.config.timing).base
        if deleting or phase == Phase.RELEASING:
            view, reachable = None, clients is not None
            abandon = abandoned(compute.model_dump(by_alias=True), platform_body)
            if clients is not None and launch is not None and launch.pending_since is not None:
                # One request sent and its id recorded: nothing else can carry our name
                # (docs/design.md §4.3), so the look by id is the whole picture and a release
                # costs no listing; otherwise list what carries our name.
                by_id_only = bool(launch.id) and (launch.attempts or 1) <= 1
                try:
                    view, _ = await skaha_sessions.observe(
                        clients, launch, base, listing=not by_id_only
                    )
                    if by_id_only:
                        view = dataclasses.replace(view, listed=())
                except (Unavailable, AuthError):
                    # A passing fault is retried; but a platform whose own probe says it is
                    # unusable (gone, refusing our token), or one a person abandoned, leaves
                    # the release blocked (or abandoned) with a reason, never retried blind.
                    usable = _platform_view(platform_body)
                    if not abandon and usable is not None and usable.ready:
                        raise
                    reachable = False
            return ComputeObservation(
                now=now,
                platform=None,
                launch=view or LaunchView(),
                deleting=deleting,
                reachable=reachable,
                abandon=abandon,
            ), None
        if phase in TERMINAL:
            return ComputeObservation(now=now, platform=None), None
        platform = _platform_view(platform_body)
        launched = launch is not None and launch.pending_since is not None
        if launched and platform is not None and platform.reason in PLATFORM_NEEDS_HUMAN:
            # The platform refuses our credentials: no call until it is fixed.
            return ComputeObservation(now=now, platform=platform), None
        if launch is None or launch.pending_since is None:
            deps = await _dependencies(compute, ctx)
            inputs, problem = await _inputs(compute, ctx)
            obs = ComputeObservation(
                now=now, platform=platform, dependencies=deps, inputs_problem=problem
            )
            return obs, inputs
        if clients is None:
            return ComputeObservation(now=now, platform=None), None
        listing = needs_listing(launch, now, launch_policy(compute, ctx.config.timing))
        view, session = await skaha_sessions.observe(clients, launch, base, listing=listing)
        skaha = None
        if session is not None:
            detail = None
            if str(session.status) in skaha_sessions.FAILED:
                detail = await skaha_sessions.log_tail(clients, session.id)
            skaha = SkahaView(
                status=str(session.status),
                connect_url=session.connect_url or None,
                start_time=session.start_time,
                expiry_time=session.expiry_time,
                detail=detail,
            )
        return ComputeObservation(
            now=now,
            platform=None,
            launch=view,
            skaha=skaha,
            open_path=await _notebook_path(compute, ctx),
        ), None

    async def _launch(
        self,
        compute: Compute,
        stored: dict[str, Any],
        decision: ComputeDecision,
        clients: PlatformClients,
        inputs: Inputs,
        obs: ComputeObservation,
        ctx: Context,
    ) -> Outcome | tuple[dict[str, Any], ComputeStatus, float | None]:
        """POST the session (the marker is stored); the stored body, the status with the new id
        and the decision's requeue, for `_look_now` to record; or the Outcome when the POST did
        not create a session."""
        plan = decision.launch
        assert plan is not None
        spec = compute.spec
        params = SessionParams(
            name=plan.name,
            image=inputs[0],
            type=WireType(str(plan.type)),
            cores=plan.cores,
            ram=plan.ram_gib,
            gpus=plan.gpus,
            cmd=spec.command,
            args=" ".join(spec.args) if spec.args else None,
            env=dict(spec.env or {}),
        )
        meta = compute.metadata
        # Which replica launched what: its own log says so (tests/integration/test_sharding.py).
        logger.info("Compute %s/%s: marker stored, launching Skaha session %s",
                    meta["namespace"], meta["name"], plan.name)  # fmt: skip
        try:
            session_id = await skaha_sessions.create(clients, params, inputs[1])
        except AuthError:
            raise  # a credentials problem is a state of the platform, never a refused launch
        except Rejected as exc:
            # Nothing was created: the refusal is an observation the decision turns into Failed,
            # or, for the interactive-session cap, into a wait in the queue.
            refused = Compute.model_validate(stored)
            if CAP_MESSAGE in exc.message:
                ctx.slots.forget_listing(str(refused.metadata["namespace"]), spec.platform_ref)
                seen = dataclasses.replace(obs, cap_refused=exc.message)
            else:
                seen = dataclasses.replace(obs, refused=exc.message)
            again = decide_compute(refused, seen, ctx.config.timing)
            await write(ctx, self.plural, stored, again.status)
            tell(ctx, stored, self.kind, again.status, again.events, again.warning)
            return Outcome(again.requeue_after)
        except Unavailable:
            # Maybe committed (timeout, 500 after commit): the marker stays, the next step adopts.
            return Outcome(2.0)
        current = Compute.model_validate(stored).status
        assert current is not None
        assert current.launch is not None
        launched = current.model_copy(
            update={
                "launch": current.launch.model_copy(update={"id": session_id}),
                "reason": "Launched",
                "message": f"launched Skaha session {session_id}",
            }
        )
        return stored, launched, decision.requeue_after

    async def _look_now(
        self,
        launched: tuple[dict[str, Any], ComputeStatus, float | None],
        clients: PlatformClients,
        platform_body: dict[str, Any] | None,
        ctx: Context,
    ) -> Outcome:
        """Record the new id together with a first look at the session (guarded write).

        A platform that starts sessions quickly has it Running already: the id and Running go
        into one write, with no first-poll delay (docs/performance.md). When the look fails or
        the decision wants anything but to track the session, the id alone is written, as
        before, and the next step polls.
        """
        stored, status, requeue = launched
        as_launched = Compute.model_validate({**stored, "status": dump(status)})
        try:
            obs, _ = await self.observe(as_launched, clients, platform_body, ctx)
            decision = decide_compute(as_launched, obs, ctx.config.timing)
        except Unavailable:
            decision = None
        if decision is None or decision.launch is not None or decision.delete or decision.renew:
            await write(ctx, self.plural, stored, status)
            return Outcome(requeue)
        await write(ctx, self.plural, stored, decision.status)
        tell(ctx, stored, self.kind, decision.status, decision.events, decision.warning)
        return Outcome(decision.requeue_after, decision.released)

    async def _act(
        self,
        body: dict[str, Any],
        decision: ComputeDecision,
        clients: PlatformClients | None,
        ctx: Context,
    ) -> Outcome:
        hold = _first_wait(body, decision)
        if hold is not None:
            # A new Compute whose parts are still being checked: their phase changes wake it,
            # most often into its launch; say Waiting only if that takes longer.
            later = decision.requeue_after
            return Outcome(hold if later is None else min(hold, later))
        if decision.write:
            await write(ctx, self.plural, body, decision.status)
        if clients is not None:
            await skaha_sessions.delete(clients, decision.delete)
            sid = decision.status.launch.id if decision.status.launch else None
            if decision.renew and sid:
                await clients.skaha.renew(sid)
        tell(ctx, body, self.kind, decision.status, decision.events, decision.warning)
        return Outcome(decision.requeue_after, decision.released)


FIRST_WAIT = 5.0  # seconds a new Compute may wait for its parts before it says it waits


def _first_wait(body: dict[str, Any], decision: ComputeDecision) -> float | None:
    """Seconds to hold back a new Compute's first status when it only says it waits, or None.

    Written right away, "waiting for its parts" (or for its start) is followed a moment later by
    the launch marker (the parts are checked within a second on the happy path): one write and
    one Event per Compute for nothing. A failure, a stall or a launch is written at once. Measured
    from the object's creation, so a restart does not hold it back again.
    """
    waiting = decision.status.phase in {Phase.WAITING, Phase.PREPARING}
    if body.get("status") or not decision.write or not waiting:
        return None
    if decision.launch is not None or decision.delete or decision.warning:
        return None
    if condition_status(list(decision.status.conditions or []), STALLED) is True:
        return None
    created = body.get("metadata", {}).get("creationTimestamp")
    if not isinstance(created, str):
        return None
    age = (
        datetime.now(UTC) - datetime.fromisoformat(created.replace("Z", "+00:00"))
    ).total_seconds()
    left = FIRST_WAIT - age
    return left if left > 0 else None


def _queued(compute: Compute) -> bool:
    """Whether this step may launch an interactive session (it then takes the platform's lock)."""
    status = compute.status
    launch = status.launch if status else None
    phase = (status.phase if status else None) or Phase.INITIALIZING
    return (
        compute.spec.type != SessionType.HEADLESS
        and (launch is None or launch.pending_since is None)
        and phase in {Phase.INITIALIZING, Phase.WAITING, Phase.PREPARING}
        and not compute.metadata.get("deletionTimestamp")
    )


async def _clients(
    compute: Compute, ctx: Context
) -> tuple[PlatformClients | None, dict[str, Any] | None]:
    ns = str(compute.metadata["namespace"])
    body = await ctx.cache.get("skahaplatforms", ns, compute.spec.platform_ref)
    if body is None:
        return None, None
    try:
        return await ctx.platforms.clients(platform_model(body)), body
    except SecretError:
        return None, body  # the platform's own status reports the missing Secret


def _platform_view(body: dict[str, Any] | None) -> PlatformView | None:
    return None if body is None else platform_view(platform_model(body))


async def _notebook_path(compute: Compute, ctx: Context) -> str | None:
    """The placed notebook a notebook session should open (its JupyterNotebook's status)."""
    ref = compute.spec.executable_ref
    if str(ref.kind) != "JupyterNotebook" or compute.spec.type != SessionType.NOTEBOOK:
        return None
    body = await ctx.cache.get(
        plural_of("JupyterNotebook"), str(compute.metadata["namespace"]), ref.name
    )
    path = ((body or {}).get("status") or {}).get("notebookPath")
    return path if isinstance(path, str) and path else None


async def _dependencies(compute: Compute, ctx: Context) -> tuple[DependencyView, ...]:
    ns = str(compute.metadata["namespace"])
    spec = compute.spec
    wanted = [(str(spec.executable_ref.kind), spec.executable_ref.name)]
    wanted += [("Storage", n) for n in spec.storage_refs or []]
    wanted += [("Data", n) for n in spec.data_refs or []]
    views = []
    for kind, name in wanted:
        body = await ctx.cache.get(plural_of(kind), ns, name)
        status = (body or {}).get("status") or {}
        views.append(
            DependencyView(kind, name, status.get("phase") if body else None, status.get("reason"))
        )
    return tuple(views)


async def _inputs(compute: Compute, ctx: Context) -> tuple[Inputs | None, tuple[str, str] | None]:
    """The image and registry credentials, resolved before any marker (no attempt is spent)."""
    ns = str(compute.metadata["namespace"])
    ref = compute.spec.executable_ref
    body = await ctx.cache.get(plural_of(str(ref.kind)), ns, ref.name)
    if body is None:
        return None, ("ExecutableMissing", f"{ref.kind} {ref.name} does not exist")
    if str(ref.kind) == "JupyterNotebook":
        return (JupyterNotebook.model_validate(body).spec.image, None), None
    dc = DockerContainer.model_validate(body)
    # The image check's full name (a short name expanded with its registry host).
    image = (dc.status.resolved_image if dc.status else None) or dc.spec.image
    if dc.spec.registry_secret_ref is None:
        return (image, None), None
    name = dc.spec.registry_secret_ref.name
    try:
        auth = RegistryAuth(
            username=await ctx.kube.read_secret(ns, name, "username"),
            secret=SecretStr(await ctx.kube.read_secret(ns, name, "password")),
        )
    except SecretError as exc:
        return None, (
            "CredentialsNotMarked"
            if isinstance(exc, CredentialsNotMarked)
            else "RegistrySecretMissing",
            f"the registry Secret of DockerContainer {ref.name} is not usable ({exc}); "
            "the launch waits until it is fixed",
        )
    return (image, auth), None
