"""One simulated Skaha session: its sampled schedule, its status at any instant, and its JSON.

State is never stepped by a timer: `phase_at(now)` derives it from timestamps fixed at launch
(`docs/platform-api.md` §9.5), so reading is O(1) and advancing the clock is free.
Status vocabularies of both API eras follow §3; the JSON layout follows §3 (nulls omitted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from skaha_operator.simulator.clock import iso_utc

# 1 GiB in decimal GB: §3 says 8 GiB is reported as "8.59".
GIB_IN_GB = 1.073741824


class SessionType(StrEnum):
    """Launchable session types (§2 `type`)."""

    DESKTOP = "desktop"
    NOTEBOOK = "notebook"
    CARTA = "carta"
    CONTRIBUTED = "contributed"
    FIREFLY = "firefly"
    HEADLESS = "headless"


class Phase(StrEnum):
    """Internal lifecycle phase; `GONE` means dropped from listings and GET (404)."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    TERMINATING = "Terminating"
    GONE = "Gone"


# §3: before 2025-09 the status was the pod phase, so a successful end read `Succeeded`.
LEGACY_STATUS = {Phase.COMPLETED: "Succeeded"}


@dataclass
class SimSession:
    """A session's identity, request and schedule (epoch seconds on the simulator clock)."""

    id: str
    user: str
    name: str
    image: str
    type: SessionType
    created: float
    start_at: float | None  # Running from here; None = stays Pending (stuck image pull)
    end_at: float | None  # headless natural end; None = runs until deadline or delete
    end_phase: Phase  # COMPLETED or FAILED at end_at
    deadline_s: float  # k8s activeDeadlineSeconds, counted from `created` (§3)
    ttl_s: float  # ttlSecondsAfterFinished
    terminate_s: float
    fixed: bool
    cores: float
    ram: float
    gpus: int
    uid: int
    gid: int
    stuck: bool = False
    exit_code: int = 0
    env: list[str] = field(default_factory=list)
    cmd: str | None = None
    args: str | None = None
    log_text: str | None = None
    deleted_at: float | None = None
    real: bool = False  # runs as a container (containers.py): start, end and logs are its own

    @property
    def interactive(self) -> bool:
        """Interactive sessions count toward the cap; headless ones do not (§2)."""
        return self.type is not SessionType.HEADLESS

    def finish(self) -> tuple[float, Phase]:
        """When and how the job ends: natural end, or the deadline (DeadlineExceeded → Failed)."""
        deadline_at = self.created + self.deadline_s
        if self.end_at is not None and self.end_at < deadline_at:
            return self.end_at, self.end_phase
        return deadline_at, Phase.FAILED

    def phase_at(self, now: float) -> Phase:
        """The phase at `now`, derived from the schedule (§3 transitions, §9.5)."""
        if self.deleted_at is not None:
            return Phase.TERMINATING if now < self.deleted_at + self.terminate_s else Phase.GONE
        ends, final = self.finish()
        if now >= ends:
            return Phase.GONE if now >= ends + self.ttl_s else final
        if self.start_at is not None and now >= self.start_at:
            return Phase.RUNNING
        return Phase.PENDING

    def started_by(self, now: float) -> bool:
        """True once the Job has a status worth reporting (Running, or finished)."""
        moment = now if self.deleted_at is None else min(now, self.deleted_at)
        if self.start_at is not None and moment >= self.start_at:
            return True
        return moment >= self.finish()[0]

    def is_active(self, now: float) -> bool:
        """Pending or Running: what the interactive cap and renew look at (§2, §3)."""
        return self.phase_at(now) in (Phase.PENDING, Phase.RUNNING)

    def renew(self, now: float, session_expiry_s: float) -> None:
        """§3 renew formula: if remaining < sessionexpiry, deadline = elapsed + sessionexpiry."""
        elapsed = now - self.created
        if self.deadline_s - elapsed < session_expiry_s:
            self.deadline_s = elapsed + session_expiry_s

    def force(self, phase: Phase, now: float, default_deadline_s: float) -> None:
        """Pin the session to `phase` from `now` on (control API, for tests)."""
        if self.created + self.deadline_s <= now:
            self.deadline_s = now - self.created + default_deadline_s
        match phase:
            case Phase.PENDING:
                self.start_at = None
                self.end_at = None
            case Phase.RUNNING:
                if self.start_at is None or self.start_at > now:
                    self.start_at = now
                self.end_at = None
            case Phase.COMPLETED | Phase.FAILED:
                if self.start_at is None or self.start_at > now:
                    self.start_at = now
                self.end_at = now
                self.end_phase = phase
            case Phase.TERMINATING:
                self.deleted_at = now
            case Phase.GONE:
                self.deleted_at = now
                self.terminate_s = 0.0

    def to_json(self, now: float, base_url: str, *, legacy: bool) -> dict[str, Any]:
        """The session as Skaha's Gson prints it: Session.java field order, nulls omitted."""
        phase = self.phase_at(now)
        status = LEGACY_STATUS.get(phase, phase.value) if legacy else phase.value
        doc: dict[str, Any] = {
            "id": self.id,
            "userid": self.user,
            "runAsUID": str(self.uid),
            "runAsGID": str(self.gid),
            "supplementalGroups": [],
        }
        if legacy:
            doc["appid"] = "<none>"
        doc.update(image=self.image, type=self.type.value, status=status, name=self.name)
        if self.started_by(now):
            doc["startTime"] = iso_utc(self.created)
            doc["expiryTime"] = iso_utc(self.created + self.deadline_s)
        doc["connectURL"] = connect_url(self, base_url)
        doc.update(self._resources(legacy=legacy))
        if not legacy:
            doc["isFixedResources"] = self.fixed
        return doc

    def _resources(self, *, legacy: bool) -> dict[str, str]:
        """requested* fields: v0 "8G"/"2"; v1 decimal GB "%.2f", only in fixed mode (§3)."""
        gpus = str(self.gpus) if self.gpus else "0"
        if legacy:
            return {
                "requestedRAM": f"{_number(self.ram)}G",
                "requestedCPUCores": _number(self.cores),
                "requestedGPUCores": gpus if self.gpus else "<none>",
                "gpuRAMInUse": "<none>",
                "gpuUtilization": "<none>",
            }
        out: dict[str, str] = {}
        if self.fixed:
            out["requestedRAM"] = f"{self.ram * GIB_IN_GB:.2f}"
            out["requestedCPUCores"] = _number(self.cores)
        out["requestedGPUCores"] = gpus
        return out


def _number(value: float) -> str:
    """Whole numbers without a fraction ("2"), others as they are ("0.5")."""
    return str(int(value)) if float(value).is_integer() else str(value)


def connect_url(session: SimSession, base_url: str) -> str:
    """§3 connectURL shapes, with the host part replaced by the simulator's own base URL."""
    sid = session.id
    match session.type:
        case SessionType.NOTEBOOK:
            return f"{base_url}/session/notebook/{sid}/lab/tree/arc/home/{session.user}?token={sid}"
        case SessionType.DESKTOP:
            return f"{base_url}/session/desktop/{sid}/?password={sid}&path=session/desktop/{sid}/"
        case SessionType.CARTA:
            return f"{base_url}/session/carta/{sid}/"
        case SessionType.CONTRIBUTED:
            return f"{base_url}/session/contrib/{sid}/"
        case SessionType.FIREFLY:
            return f"{base_url}/session/firefly/{sid}/firefly/"
        case SessionType.HEADLESS:
            return ""
