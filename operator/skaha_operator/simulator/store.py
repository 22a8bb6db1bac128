"""The Skaha session registry: launch with the §2 validation chain, lookup, list, renew, delete.

Sessions are indexed by id and by user, so a request costs O(1) (get) or O(sessions of that
user) (list, cap count). Finished sessions past their TTL are dropped lazily when met.
A launch under `commit_delay_s` is validated at once but created with `created` in the future: until
then it is invisible (GET 404, not listed, not counted by the cap, DELETE treats it as unknown),
as a Job the API server has not stored yet would be.
Facts: `docs/platform-api.md` §2 (parameters, check order, messages), §3 (lifecycle),
§5 (ownership).
"""

from __future__ import annotations

import random
import re
import string
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from skaha_operator.simulator.clock import SimClock
from skaha_operator.simulator.config import SimulatorConfig
from skaha_operator.simulator.errors import SimError
from skaha_operator.simulator.schedule import draw_schedule, env_map
from skaha_operator.simulator.sessions import Phase, SessionType, SimSession

NAME_RE = re.compile(r"[A-Za-z0-9-]+")
ID_FIRST = string.ascii_lowercase
ID_REST = string.ascii_lowercase + string.digits
LABEL_MAX = 63
PRIVATE_IMAGE_MESSAGE = (
    "No authentication provided for unknown or private image.  "
    "Use x-skaha-registry-auth request header with base64Encode(username:secret)."
)

Params = dict[str, list[str]]


@dataclass(frozen=True)
class LaunchFaults:
    """Fault knobs that change launch semantics rather than the HTTP exchange (§9)."""

    stuck_pending: float = 0.0
    home_alloc_fail: bool = False
    max_sessions: int | None = None


@dataclass(frozen=True)
class LaunchRecord:
    """One created session, as the launch log keeps it (never dropped)."""

    id: str
    name: str
    user: str
    created: float


class SessionStore:
    """All simulated sessions, with the launch validation chain."""

    def __init__(
        self,
        config: SimulatorConfig,
        clock: SimClock,
        ensure_home: Callable[[str], None],
    ) -> None:
        self.config = config
        self.clock = clock
        self._ensure_home = ensure_home
        self._schedule_rng = random.Random(f"{config.seed}-schedule")
        self._id_rng = random.Random(f"{config.seed}-ids")
        self._fault_rng = random.Random(f"{config.seed}-launch-faults")
        self._by_id: dict[str, SimSession] = {}
        self._by_user: dict[str, dict[str, SimSession]] = {}
        # Every session ever created, kept after it is gone: tests count launches per name.
        self.launch_log: list[LaunchRecord] = []

    # -- launch ---------------------------------------------------------------------------
    def launch(
        self,
        user: str,
        params: Params,
        *,
        registry_auth: str | None,
        faults: LaunchFaults,
        legacy: bool = False,
        commit_delay_s: float = 0.0,
    ) -> SimSession:
        """Validate in the §2 order with the §2 messages, then create the session.

        The session is committed (visible) `commit_delay_s` from now on the simulator clock.
        """
        cfg = self.config
        image = _first(params, "image")
        if image is None:
            raise SimError(400, "Missing parameter 'image'")
        if not any(image.startswith(host) for host in cfg.registry_hosts):
            hosts = ", ".join(cfg.registry_hosts)
            raise SimError(400, f"session image '{image}' must come from one of [{hosts}]")
        session_type = _parse_type(_first(params, "type"))
        cores = _parse_option(params, "cores", cfg.cores_options)
        ram = _parse_option(params, "ram", cfg.memory_options)
        name = _first(params, "name")
        if name is None or not name.strip():
            raise SimError(400, "Missing parameter 'name'")
        if not NAME_RE.fullmatch(name):
            raise SimError(400, "name can only contain alpha-numeric chars and '-'")
        if session_type is not SessionType.HEADLESS:
            self._check_cap(user, faults)
        gpus = _parse_gpus(_first(params, "gpus"), cfg.gpu_options)
        if faults.home_alloc_fail:
            raise SimError(
                500,
                "unexpected exception: java.lang.RuntimeException: "
                f"failed to allocate user home /home/{user}: cavern unavailable",
            )
        self._ensure_home(user)
        public = {str(entry.get("id")) for entry in cfg.images}
        if image not in public and not registry_auth:
            raise SimError(400, PRIVATE_IMAGE_MESSAGE)
        return self._create(
            user,
            params,
            image,
            session_type,
            name,
            cores,
            ram,
            gpus,
            faults,
            legacy=legacy,
            created=self.clock.now() + commit_delay_s,
        )

    def _check_cap(self, user: str, faults: LaunchFaults) -> None:
        """§2 cap: non-headless Pending/Running sessions of this user; headless are uncapped."""
        limit = faults.max_sessions if faults.max_sessions is not None else self.config.max_sessions
        now = self.clock.now()
        active = sum(1 for s in self.user_sessions(user) if s.interactive and s.is_active(now))
        if active >= limit:
            raise SimError(400, f"User {user} has reached the maximum of {limit} active sessions.")

    def _create(
        self,
        user: str,
        params: Params,
        image: str,
        session_type: SessionType,
        name: str,
        cores: float | None,
        ram: float | None,
        gpus: int,
        faults: LaunchFaults,
        *,
        legacy: bool,
        created: float,
    ) -> SimSession:
        cfg = self.config
        env = params.get("env", [])
        env_values = env_map(env)
        schedule = draw_schedule(self._schedule_rng, cfg, env_values)
        stuck = faults.stuck_pending > 0 and self._fault_rng.random() < faults.stuck_pending
        headless = session_type is SessionType.HEADLESS
        # The schedule runs from the commit: that is when the Job exists.
        start_at = None if stuck else created + schedule.pending_s
        fixed = cores is not None or ram is not None
        uid = 20000 + zlib.crc32(user.encode()) % 10000
        session = SimSession(
            id=self._new_id(),
            user=user,
            name=name if legacy else _label_value(name),
            image=image,
            type=session_type,
            created=created,
            start_at=start_at,
            end_at=start_at + schedule.run_s if headless and start_at is not None else None,
            end_phase=Phase.FAILED if schedule.fails else Phase.COMPLETED,
            deadline_s=cfg.headless_deadline_s if headless else cfg.session_expiry_s,
            ttl_s=cfg.ttl_headless_s if headless else cfg.ttl_interactive_s,
            terminate_s=schedule.terminate_s,
            fixed=fixed,
            cores=cores
            if cores is not None
            else _flex(fixed, cfg.cores_default, cfg.cores_default_request),
            ram=ram
            if ram is not None
            else _flex(fixed, cfg.memory_default, cfg.memory_default_request),
            gpus=gpus,
            uid=uid,
            gid=uid,
            stuck=stuck,
            env=list(env),
            cmd=_first(params, "cmd"),
            args=_first(params, "args"),
            log_text=env_values.get("SIM_LOG"),
            exit_code=schedule.exit_code,
        )
        self._by_id[session.id] = session
        self._by_user.setdefault(user, {})[session.id] = session
        self.launch_log.append(LaunchRecord(session.id, session.name, user, created))
        return session

    def _new_id(self) -> str:
        """`[a-z][a-z0-9]{7}`, like opencadc/uws RandomStringGenerator (§2)."""
        while True:
            sid = self._id_rng.choice(ID_FIRST) + "".join(self._id_rng.choices(ID_REST, k=7))
            if sid not in self._by_id:
                return sid

    # -- lookup ---------------------------------------------------------------------------
    def get(self, user: str, session_id: str) -> SimSession:
        """The caller's session; another user's id or a gone session is 404 (§5)."""
        session = self._by_user.get(user, {}).get(session_id)
        if session is None or not self._visible(session):
            raise SimError(404, f"session {session_id} not found")
        return session

    def user_sessions(self, user: str) -> Iterator[SimSession]:
        """The caller's visible sessions in launch order; gone ones are dropped on the way."""
        for session in list(self._by_user.get(user, {}).values()):
            if self._visible(session):
                yield session

    def all_sessions(self) -> Iterator[SimSession]:
        """Every visible session of every user (view=all, the control API)."""
        for session in list(self._by_id.values()):
            if self._visible(session):
                yield session

    def find(self, session_id: str) -> SimSession:
        """Any user's visible session by id (control API only)."""
        session = self._by_id.get(session_id)
        if session is None or not self._visible(session):
            raise SimError(404, f"session {session_id} not found")
        return session

    def _visible(self, session: SimSession) -> bool:
        """Committed and not gone (gone sessions are dropped on the way)."""
        return not self._drop_if_gone(session) and session.created <= self.clock.now()

    def _drop_if_gone(self, session: SimSession) -> bool:
        if session.phase_at(self.clock.now()) is not Phase.GONE:
            return False
        self._by_id.pop(session.id, None)
        self._by_user.get(session.user, {}).pop(session.id, None)
        return True

    # -- changes --------------------------------------------------------------------------
    def renew(self, user: str, session_id: str) -> None:
        """§3 renew; a session with no active job gives 400 `No active job for user …`."""
        session = self.get(user, session_id)
        now = self.clock.now()
        if not session.is_active(now):
            raise SimError(
                400, f"No active job for user {_posix_principal(session)} with session {session_id}"
            )
        session.renew(now, self.config.session_expiry_s)

    def delete(self, user: str, session_id: str, *, legacy: bool) -> SimSession | None:
        """DELETE: Terminating, then gone. HEAD answers 200 for unknown ids; v0 404/403 (§5).

        Returns the session that is now Terminating (None for an unknown id answered 200).
        """
        session = self._by_user.get(user, {}).get(session_id)
        if session is None or not self._visible(session):
            if legacy:
                other = self._by_id.get(session_id)
                if other is not None and self._visible(other):
                    raise SimError(403, "forbidden")
                raise SimError(404, f"session {session_id} not found")
            if self.config.delete_unknown_404:
                raise SimError(404, f"session {session_id} not found")
            return None
        if session.deleted_at is None:
            session.deleted_at = self.clock.now()
        return session

    def count(self) -> int:
        """Sessions held (including any not yet swept as gone)."""
        return len(self._by_id)


def _first(params: Params, key: str) -> str | None:
    values = params.get(key)
    return values[0] if values else None


def _parse_type(raw: str | None) -> SessionType:
    """Absent ⇒ headless at v1 (§2, §9.11 b); names are case-insensitive."""
    if raw is None:
        return SessionType.HEADLESS
    try:
        return SessionType(raw.lower())
    except ValueError:
        raise SimError(400, f"Invalid session type: {raw}") from None


def _parse_option(params: Params, key: str, options: list[int]) -> float | None:
    """cores/ram: a double whose int part must be an option, else `Invalid value for '<k>': <v>`."""
    raw = _first(params, key)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise SimError(400, f"Invalid value for '{key}': {raw}") from None
    if not value == value or value in (float("inf"), float("-inf")) or int(value) not in options:
        raise SimError(400, f"Invalid value for '{key}': {raw}")
    return value


def _parse_gpus(raw: str | None, options: list[int]) -> int:
    """gpus: an integer option; `gpus=0` is rejected because 0 is not an option (§2, §9.11 g)."""
    if raw is None:
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise SimError(400, f"Invalid value for 'gpus': {raw}") from None
    if value not in options:
        raise SimError(400, f"Invalid value for 'gpus': {raw}")
    return value


def _label_value(name: str) -> str:
    """Lower-case, cut to 63 chars, trim trailing non-alphanumerics (SessionLabels, §2, §9.11 o)."""
    value = name.lower()[:LABEL_MAX]
    return value.rstrip("-")


def _flex(fixed: bool, default: int, default_request: int) -> float:
    """The value reported for a resource the caller did not give."""
    return float(default if fixed else default_request)


def _posix_principal(session: SimSession) -> str:
    # docs/platform-api.md §3.3 names the user by its POSIX principal, whose exact text form is
    # unknown, so this is a plausible rendering of uid and user.
    return f"PosixPrincipal [uidNumber={session.uid}, username={session.user}]"
