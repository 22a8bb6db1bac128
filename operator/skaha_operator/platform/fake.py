"""In-memory fakes of `SkahaPort`, `CavernPort` and `RucioPort` for unit tests of the operator.

`FakeSkaha` lives here; `FakeCavern` and `FakeRucio` in `fake_storage.py`; `FakePlatform`
bundles all three on one `FakeClock`.

They keep the behaviours a fake easily gets wrong (`docs/platform-api.md` §9.11 a–o):
ids `[a-z][a-z0-9]{7}`, a missing type means headless, the §2 validation chain and its exact
messages, lower-cased names, no startTime while Pending, headless sessions vanishing after their
TTL, the §3 renew formula, no mkdir -p and no recursive delete in Cavern, Rucio DuplicateRule.
Time comes from a `FakeClock` the test advances; nothing sleeps. The simulator's per-session env
knobs (`SIM_PENDING_SECONDS`, `SIM_RUN_SECONDS`, `SIM_EXIT_CODE`) are honoured, and
`faults.fail_next(op, error, commit=True)` gives the "created, then 500" case without a network.
`tests/contract/` runs one suite against these fakes and the simulator so they cannot drift.
No I/O, no httpx.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from skaha_operator.platform.errors import NotFound, Rejected
from skaha_operator.platform.fake_storage import FakeCavern, FakeRucio
from skaha_operator.platform.fake_support import FakeClock, Faults
from skaha_operator.platform.ports import CavernPort, RegistryCredentials, RucioPort, SkahaPort
from skaha_operator.platform.wire import (
    STANDARD_ID_V1,
    ApiVersion,
    Capabilities,
    ResourceOptions,
    SessionParams,
    SessionType,
    SkahaContext,
    SkahaImage,
    SkahaSession,
    SkahaSessionStatus,
)

# §3 lifetimes and TTLs (chart defaults).
SESSION_EXPIRY_S = 345600.0
HEADLESS_DEADLINE_S = 1209600.0
TTL_HEADLESS_S = 3600.0
TTL_INTERACTIVE_S = 86400.0
NAME_PATTERN = re.compile(r"[A-Za-z0-9-]+")
GIB_IN_GB = 1.073741824  # §3: 8 GiB is reported as "8.59"
MEMORY_OPTIONS = [1, 2, 4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 96, 128, 160, 192]
DEFAULT_IMAGES = (
    SkahaImage(id="images.canfar.net/skaha/astroml:latest", types=["notebook", "headless"]),
    SkahaImage(id="images.canfar.net/skaha/base-notebook:latest", types=["notebook"]),
    SkahaImage(id="images.canfar.net/skaha/terminal:1.1.2", types=["headless"]),
    SkahaImage(id="images.canfar.net/skaha/desktop:latest", types=["desktop"]),
    SkahaImage(id="images.canfar.net/skaha/carta:4.1", types=["carta"]),
)
PRIVATE_IMAGE_MESSAGE = (
    "No authentication provided for unknown or private image.  Use x-skaha-registry-auth "
    "request header with base64Encode(username:secret)."
)


# ---------------------------------------------------------------- Skaha


@dataclass
class _Session:
    id: str
    name: str
    image: str
    type: SessionType
    created: datetime
    start_at: datetime | None
    end_at: datetime | None
    end_status: SkahaSessionStatus
    deadline_s: float
    ttl_s: float
    fixed: bool
    cores: int | None
    ram: int | None
    gpus: int | None
    deleted_at: datetime | None = None

    def finish(self) -> tuple[datetime, SkahaSessionStatus]:
        deadline = self.created + timedelta(seconds=self.deadline_s)
        if self.end_at is not None and self.end_at < deadline:
            return self.end_at, self.end_status
        # Deadline exceeded: k8s fails the Job (§3).
        return deadline, SkahaSessionStatus.FAILED


@dataclass
class FakeSkahaConfig:
    """Knobs of the fake Skaha; defaults are Skaha's chart defaults (§2–§4)."""

    user: str = "alice"
    host: str = "https://fake.skaha.local"
    registry_hosts: list[str] = field(default_factory=lambda: ["images.canfar.net"])
    images: list[SkahaImage] = field(default_factory=lambda: list(DEFAULT_IMAGES))
    cores_options: list[int] = field(default_factory=lambda: list(range(1, 17)))
    memory_options: list[int] = field(default_factory=lambda: list(MEMORY_OPTIONS))
    gpu_options: list[int] = field(default_factory=lambda: list(range(1, 29)))
    max_sessions: int = 5
    pending_s: float = 10.0
    run_s: float = 60.0
    terminate_s: float = 5.0
    seed: int = 0


class FakeSkaha:
    """An in-memory Skaha for one user, following the §3 state machine on a `FakeClock`."""

    def __init__(
        self,
        clock: FakeClock,
        config: FakeSkahaConfig | None = None,
        ensure_home: Callable[[], None] | None = None,
    ) -> None:
        self.clock = clock
        self.config = config or FakeSkahaConfig()
        # Skaha allocates the user's Cavern home on every launch (§2 check order, §7).
        self._ensure_home = ensure_home
        self.faults = Faults()
        self._rng = random.Random(self.config.seed)
        self._sessions: dict[str, _Session] = {}
        self._forced: dict[str, SkahaSessionStatus] = {}

    # -- test controls

    def force_status(self, session_id: str, status: SkahaSessionStatus) -> None:
        """Pin a session's reported status (like the simulator's `/_sim/.../force`)."""
        self._forced[session_id] = status

    # -- SkahaPort

    async def capabilities(self) -> Capabilities:
        """v1 capabilities."""
        self.faults.enter("capabilities")
        return Capabilities(standard_ids=[STANDARD_ID_V1], api_version=ApiVersion.V1)

    async def context(self) -> SkahaContext:
        """The configured resource options (§4 shape)."""
        self.faults.enter("context")
        c = self.config
        return SkahaContext(
            cores=ResourceOptions(
                default=2, defaultRequest=1, defaultLimit=8, options=c.cores_options
            ),
            memoryGB=ResourceOptions(
                default=8, defaultRequest=4, defaultLimit=32, options=c.memory_options
            ),
            gpus=ResourceOptions(options=c.gpu_options),
            maxInteractiveSessions=c.max_sessions,
        )

    async def images(self, type: SessionType | None = None) -> list[SkahaImage]:
        """Configured images, optionally only those offering `type`."""
        self.faults.enter("images")
        return [i for i in self.config.images if type is None or type.value in i.types]

    async def repositories(self) -> list[str]:
        """Configured registry hosts."""
        self.faults.enter("repositories")
        return list(self.config.registry_hosts)

    async def list_sessions(
        self, type: SessionType | None = None, status: SkahaSessionStatus | None = None
    ) -> list[SkahaSession]:
        """Visible sessions, filtered like `GET /session?type=&status=`."""
        self.faults.enter("list_sessions")
        found = [self._view(s) for s in list(self._sessions.values())]
        return [
            s
            for s in found
            if s is not None
            and (type is None or s.type == type.value)
            and (status is None or s.status is status)
        ]

    async def get_session(self, session_id: str) -> SkahaSession:
        """One visible session, or NotFound (§5 message)."""
        self.faults.enter("get_session")
        session = self._sessions.get(session_id)
        view = self._view(session) if session is not None else None
        if view is None:
            raise NotFound(f"session {session_id} not found", status=404, service="skaha")
        return view

    async def create_session(
        self, params: SessionParams, registry_auth: RegistryCredentials | None = None
    ) -> str:
        """Validate in §2 order, then record a Pending session and return its id."""
        fault = self.faults.enter("create_session")
        self._validate(params, registry_auth)
        session = self._launch(params)
        if fault is not None:
            raise fault.error
        return session.id

    async def logs(self, session_id: str) -> str:
        """Empty until Running (§9.6)."""
        self.faults.enter("logs")
        session = self._visible(session_id)
        if session.start_at is None or self.clock.now() < session.start_at:
            return ""
        return f"[fake] {session.type.value} session {session.id} started\n"

    async def events(self, session_id: str) -> str:
        """`<none>` until scheduled, then Scheduled/Pulling, then Pulled/Created/Started (§9.6)."""
        self.faults.enter("events")
        session = self._visible(session_id)
        now = self.clock.now()
        if now < session.created + timedelta(seconds=1):
            return "<none>\n"
        rows = ["TYPE     REASON      MESSAGE", "Normal   Scheduled   assigned to fake-node"]
        rows.append(f'Normal   Pulling     Pulling image "{session.image}"')
        if session.start_at is not None and now >= session.start_at:
            rows.append(f'Normal   Pulled      Successfully pulled image "{session.image}"')
            rows.append(f"Normal   Created     Created container {session.type.value}")
            rows.append(f"Normal   Started     Started container {session.type.value}")
        return "\n".join(rows) + "\n"

    async def renew(self, session_id: str) -> None:
        """§3: if remaining < session expiry, deadline = elapsed + session expiry."""
        self.faults.enter("renew")
        session = self._visible(session_id)
        if self._status(session) not in (SkahaSessionStatus.PENDING, SkahaSessionStatus.RUNNING):
            raise Rejected(
                f"No active job for user {self.config.user} with session {session_id}",
                status=400,
                service="skaha",
            )
        elapsed = (self.clock.now() - session.created).total_seconds()
        if session.deadline_s - elapsed < SESSION_EXPIRY_S:
            session.deadline_s = elapsed + SESSION_EXPIRY_S

    async def delete_session(self, session_id: str) -> None:
        """Terminating for `terminate_s`, then gone; unknown ids succeed (HEAD, §5)."""
        fault = self.faults.enter("delete_session")
        session = self._sessions.get(session_id)
        if session is not None and session.deleted_at is None:
            session.deleted_at = self.clock.now()
        if fault is not None:
            raise fault.error

    # -- internals

    def _validate(self, p: SessionParams, auth: RegistryCredentials | None) -> None:
        """The §2 check order: the first failing check decides the message."""
        message = self._first_problem(p)
        if message is None:
            if self._ensure_home is not None:
                self._ensure_home()
            if auth is None and p.image not in {i.id for i in self.config.images}:
                message = PRIVATE_IMAGE_MESSAGE
        if message is not None:
            raise Rejected(message, status=400, service="skaha", method="POST", route="/session")

    def _first_problem(self, p: SessionParams) -> str | None:
        c = self.config
        kind = p.type or SessionType.HEADLESS
        checks: list[tuple[bool, str]] = [
            (not p.image, "Missing parameter 'image'"),
            (
                not any(p.image.startswith(host) for host in c.registry_hosts),
                f"session image '{p.image}' must come from one of [{', '.join(c.registry_hosts)}]",
            ),
            (kind is SessionType.DESKTOP_APP, f"Invalid session type: {kind.value}"),
            (
                p.cores is not None and p.cores not in c.cores_options,
                f"Invalid value for 'cores': {p.cores}",
            ),
            (
                p.ram is not None and p.ram not in c.memory_options,
                f"Invalid value for 'ram': {p.ram}",
            ),
            (not p.name.strip(), "Missing parameter 'name'"),
            (
                not NAME_PATTERN.fullmatch(p.name),
                "name can only contain alpha-numeric chars and '-'",
            ),
            (
                kind is not SessionType.HEADLESS and self._active_interactive() >= c.max_sessions,
                f"User {c.user} has reached the maximum of {c.max_sessions} active sessions.",
            ),
            (
                p.gpus is not None and p.gpus not in c.gpu_options,
                f"Invalid value for 'gpus': {p.gpus}",
            ),
        ]
        return next((message for failed, message in checks if failed), None)

    def _active_interactive(self) -> int:
        active = (SkahaSessionStatus.PENDING, SkahaSessionStatus.RUNNING)
        return sum(
            1
            for s in self._sessions.values()
            if s.type is not SessionType.HEADLESS and self._status(s) in active
        )

    def _launch(self, p: SessionParams) -> _Session:
        kind = p.type or SessionType.HEADLESS  # §2: absent type means headless
        now = self.clock.now()
        headless = kind is SessionType.HEADLESS
        # The simulator's per-session knobs, honoured here too so both targets agree.
        pending_s = _env_float(p.env, "SIM_PENDING_SECONDS", self.config.pending_s)
        run_s = _env_float(p.env, "SIM_RUN_SECONDS", self.config.run_s)
        failed = p.env.get("SIM_EXIT_CODE", "0") != "0"
        session = _Session(
            id=self._new_id(),
            name=_label_name(p.name),
            image=p.image,
            type=kind,
            created=now,
            start_at=now + timedelta(seconds=pending_s),
            end_at=now + timedelta(seconds=pending_s + run_s) if headless else None,
            end_status=SkahaSessionStatus.FAILED if failed else SkahaSessionStatus.COMPLETED,
            deadline_s=HEADLESS_DEADLINE_S if headless else SESSION_EXPIRY_S,
            ttl_s=TTL_HEADLESS_S if headless else TTL_INTERACTIVE_S,
            fixed=p.cores is not None or p.ram is not None,
            cores=p.cores,
            ram=p.ram,
            gpus=p.gpus,
        )
        self._sessions[session.id] = session
        return session

    def _new_id(self) -> str:
        # §2: 8 chars, a letter first, then lower-case letters and digits.
        while True:
            tail = "".join(self._rng.choices(string.ascii_lowercase + string.digits, k=7))
            candidate = self._rng.choice(string.ascii_lowercase) + tail
            if candidate not in self._sessions:
                return candidate

    def _status(self, s: _Session) -> SkahaSessionStatus | None:
        """The status now, or None once the session has disappeared."""
        now = self.clock.now()
        if s.deleted_at is not None:
            gone_at = s.deleted_at + timedelta(seconds=self.config.terminate_s)
            return SkahaSessionStatus.TERMINATING if now < gone_at else None
        if s.id in self._forced:
            return self._forced[s.id]
        ends, final = s.finish()
        if now >= ends:
            return final if now < ends + timedelta(seconds=s.ttl_s) else None
        if s.start_at is not None and now >= s.start_at:
            return SkahaSessionStatus.RUNNING
        return SkahaSessionStatus.PENDING

    def _visible(self, session_id: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None or self._status(session) is None:
            raise NotFound(f"session {session_id} not found", status=404, service="skaha")
        return session

    def _view(self, s: _Session) -> SkahaSession | None:
        status = self._status(s)
        if status is None:
            return None
        started = s.start_at is not None and self.clock.now() >= s.start_at
        doc: dict[str, object] = {
            "id": s.id,
            "userid": self.config.user,
            "image": s.image,
            "type": s.type.value,
            "status": status.value,
            "name": s.name,
            "connectURL": _connect_url(self.config.host, s, self.config.user),
            "requestedGPUCores": str(s.gpus or 0),
            "isFixedResources": s.fixed,
        }
        if started:
            # §3: startTime/expiryTime only once the Job has a status.
            doc["startTime"] = s.created
            doc["expiryTime"] = s.created + timedelta(seconds=s.deadline_s)
        if s.fixed:
            doc["requestedRAM"] = f"{(s.ram or 0) * GIB_IN_GB:.2f}"
            doc["requestedCPUCores"] = str(s.cores or 0)
        return SkahaSession.model_validate(doc)


def _env_float(env: dict[str, str], key: str, default: float) -> float:
    """A float from the session env (`SIM_RUN_SECONDS=...`), else the default."""
    try:
        return float(env[key])
    except (KeyError, ValueError):
        return default


def _label_name(name: str) -> str:
    """§2: lower-cased, cut to 63 chars, trailing non-alphanumerics trimmed."""
    cut = name.lower()[:63]
    while cut and not cut[-1].isalnum():
        cut = cut[:-1]
    return cut


def _connect_url(host: str, s: _Session, user: str) -> str:
    """§3 connectURL shapes by type; "" for headless."""
    sid = s.id
    match s.type:
        case SessionType.NOTEBOOK:
            return f"{host}/session/notebook/{sid}/lab/tree/arc/home/{user}?token={sid}"
        case SessionType.DESKTOP | SessionType.DESKTOP_APP:
            return f"{host}/session/desktop/{sid}/?password={sid}&path=session/desktop/{sid}/"
        case SessionType.CARTA:
            return f"{host}/session/carta/{sid}/"
        case SessionType.CONTRIBUTED:
            return f"{host}/session/contrib/{sid}/"
        case SessionType.FIREFLY:
            return f"{host}/session/firefly/{sid}/firefly/"
        case SessionType.HEADLESS:
            return ""


class FakePlatform:
    """The three fakes on one clock, shaped like `PlatformClients`."""

    def __init__(
        self, config: FakeSkahaConfig | None = None, clock: FakeClock | None = None
    ) -> None:
        self.clock = clock or FakeClock()
        user = (config or FakeSkahaConfig()).user
        self.cavern = FakeCavern(user=user)
        self.skaha = FakeSkaha(self.clock, config, ensure_home=self.cavern.ensure_home)
        self.rucio = FakeRucio(self.clock)

    def ports(self) -> tuple[SkahaPort, CavernPort, RucioPort]:
        """The fakes as the ports the operator codes against (mypy checks they conform)."""
        return self.skaha, self.cavern, self.rucio

    def advance(self, seconds: float) -> None:
        """Move the shared clock forward."""
        self.clock.advance(seconds)

    async def aclose(self) -> None:
        """Nothing to close; present so tests can treat it like `PlatformClients`."""


__all__ = ["FakeCavern", "FakeClock", "FakePlatform", "FakeRucio", "FakeSkaha", "FakeSkahaConfig"]
