"""Types shared by every kind: phases, conditions, connectors, schedules, durations, references.

Phase names are Calycopis' LifecyclePhase in Kubernetes casing (docs/domain.md §1,
docs/design.md §3). Conditions follow metav1.Condition (docs/kubernetes-notes.md §5). Durations
are Go-style strings ("2h30m") so that CEL's `duration()` can check them inside the CRD.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import AwareDatetime, Field, PlainSerializer

from skaha_operator.domain.base import Rule, WireModel, cel

_T = TypeVar("_T")


class Phase(StrEnum):
    """Lifecycle phase of a component (DockerContainer, JupyterNotebook, Storage, Data, Compute)."""

    INITIALIZING = "Initializing"
    WAITING = "Waiting"
    PREPARING = "Preparing"
    AVAILABLE = "Available"
    RUNNING = "Running"
    RELEASING = "Releasing"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


class SessionPhase(StrEnum):
    """Lifecycle phase of a Session: the component phases plus Expired (start deadline passed)."""

    INITIALIZING = "Initializing"
    WAITING = "Waiting"
    PREPARING = "Preparing"
    AVAILABLE = "Available"
    RUNNING = "Running"
    RELEASING = "Releasing"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    EXPIRED = "Expired"


# StrEnum members compare equal to their strings, so a SessionPhase tests against this set too.
TERMINAL_PHASES: frozenset[str] = frozenset({Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED})
TERMINAL_SESSION_PHASES: frozenset[str] = TERMINAL_PHASES | {SessionPhase.EXPIRED}


def terminal_rule(phases: frozenset[str], order: tuple[str, ...]) -> Rule:
    """The status transition rule: once a terminal phase is reached it never changes."""
    listed = ", ".join(f"'{p}'" for p in order if p in phases)
    names = ", ".join(p for p in order if p in phases)
    return Rule(
        rule=(
            f"!has(oldSelf.phase) || !(oldSelf.phase in [{listed}]) || "
            "(has(self.phase) && self.phase == oldSelf.phase)"
        ),
        message=f"a terminal phase ({names}) never changes",
        field_path=".phase",
        reason="FieldValueForbidden",
    )


class ConditionStatus(StrEnum):
    """Status of a condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class SessionType(StrEnum):
    """Skaha session types (docs/platform-api.md §2, `type`)."""

    NOTEBOOK = "notebook"
    DESKTOP = "desktop"
    CARTA = "carta"
    HEADLESS = "headless"
    FIREFLY = "firefly"
    CONTRIBUTED = "contributed"


class ReleasePolicy(StrEnum):
    """What release does with what preparation created."""

    RETAIN = "Retain"
    DELETE = "Delete"


def _rfc3339(value: datetime) -> str:
    """RFC 3339 with `Z` for UTC and no trailing zeros in the fraction (the API server's form)."""
    text = value.isoformat()
    if "." in text:
        # isoformat writes exactly six fraction digits when there is a fraction at all.
        head, _, rest = text.partition(".")
        digits, tail = rest[:6].rstrip("0"), rest[6:]
        text = f"{head}.{digits}{tail}" if digits else f"{head}{tail}"
    if text.endswith("+00:00"):
        text = text[: -len("+00:00")] + "Z"
    return text


Timestamp = Annotated[AwareDatetime, PlainSerializer(_rfc3339, return_type=str, when_used="json")]
"""A timezone-aware time, RFC 3339 on the wire."""

# Go's time.ParseDuration grammar restricted to positive, sign-less values and ASCII units.
GO_DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|ms|h|m|s)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration such as "2h30m" or "1.5s"; raise ValueError if malformed."""
    if not re.fullmatch(GO_DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: use a Go duration such as 2h30m")
    total = sum(
        float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text)
    )
    return timedelta(seconds=total)


def duration_field(description: str, minimum: str = "0s", **kwargs: Any) -> Any:
    """A Go-style duration field, positive (or at least `minimum`) by CEL and by pattern."""
    # A malformed value fails the pattern; the guard keeps CEL from also failing to convert it.
    guard = f"!self.matches(r'{GO_DURATION_PATTERN}') || "
    rule = (
        Rule(guard + "duration(self) > duration('0s')", "must be a positive duration such as 2h30m")
        if minimum == "0s"
        else Rule(guard + f"duration(self) >= duration('{minimum}')", f"must be at least {minimum}")
    )
    return Field(
        None,
        description=f"{description} Go duration syntax, e.g. 90s, 45m, 2h30m.",
        pattern=GO_DURATION_PATTERN,
        max_length=32,
        json_schema_extra=cel(rule),
        **kwargs,
    )


NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def name_field(description: str, *, required: bool = True, **kwargs: Any) -> Any:
    """A field holding the name of another object in the same namespace."""
    default: Any = ... if required else None
    return Field(default, description=description, pattern=NAME_PATTERN, max_length=253, **kwargs)


# A path inside a Cavern area; no absolute paths and no "." / ".." segments.
RELATIVE_PATH_PATTERN = r"^[A-Za-z0-9_.+@=-]+(/[A-Za-z0-9_.+@=-]+)*$"
RELATIVE_PATH_RULE = Rule(
    "!('/' + self + '/').contains('/../') && !('/' + self + '/').contains('/./')",
    "must not contain . or .. segments",
)


def relative_path_field(
    description: str, *, required: bool = True, rules: tuple[Rule, ...] = ()
) -> Any:
    """A relative path field (no leading slash, no . or .. segments)."""
    default: Any = ... if required else None
    return Field(
        default,
        description=description,
        pattern=RELATIVE_PATH_PATTERN,
        max_length=1024,
        json_schema_extra=cel(RELATIVE_PATH_RULE, *rules),
    )


REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class Condition(WireModel):
    """An observation of one aspect of the object (metav1.Condition)."""

    type: str = Field(
        description="Condition type in CamelCase, e.g. Ready, Reconciling, Stalled.",
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
        max_length=316,
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        description="A CamelCase word a program can switch on.",
        pattern=REASON_PATTERN,
        max_length=1024,
    )
    message: str | None = Field(None, description="A human-readable explanation.", max_length=32768)
    last_transition_time: Timestamp = Field(
        description="When the status last changed from one value to another."
    )
    observed_generation: int | None = Field(
        None, description="The metadata.generation this condition was computed from.", ge=0
    )


CONDITIONS_EXTRA: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}


class Connector(WireModel):
    """How to reach a running session."""

    kind: str = Field(
        description="What the URL opens, e.g. notebook, desktop, carta, firefly, contributed.",
        max_length=63,
    )
    protocol: str = Field(description="URL scheme, e.g. https.", max_length=16)
    url: str = Field(description="The connection URL.", max_length=4096)


class Schedule(WireModel):
    """When a part starts, how long it is booked, and how long preparation may take."""

    cel_rules = (
        Rule(
            # Malformed durations are reported by their own pattern; skip them here so the
            # user does not also see a CEL conversion error.
            "!has(self.duration) || !has(self.prepareDeadline) || "
            f"!self.duration.matches(r'{GO_DURATION_PATTERN}') || "
            f"!self.prepareDeadline.matches(r'{GO_DURATION_PATTERN}') || "
            "duration(self.prepareDeadline) <= duration(self.duration)",
            "prepareDeadline must not be later than the end of the booking (duration)",
            field_path=".prepareDeadline",
        ),
    )

    start: Timestamp | None = Field(
        None, description="When the session should become usable (RFC 3339). Default: now."
    )
    duration: str | None = duration_field(
        "How long the session is booked from start; everything is released after it."
    )
    prepare_deadline: str | None = duration_field(
        "Measured from start: fail if not usable by then (Calycopis' 'toolong', docs/domain.md §4)."
    )
    poll_interval: str | None = duration_field(
        "Time between polls of an external service.", minimum="1s"
    )
    max_polls: int | None = Field(
        None,
        description="Fail after this many polls without reaching a usable state.",
        ge=1,
        le=100000,
    )


class SecretKeyRef(WireModel):
    """A key of a Secret in the same namespace."""

    name: str = name_field("Name of the Secret.")
    key: str = Field(
        "token",
        description="Key inside the Secret.",
        pattern=r"^[-._a-zA-Z0-9]+$",
        max_length=253,
    )


class LocalObjectRef(WireModel):
    """A reference to an object of a known kind in the same namespace."""

    name: str = name_field("Name of the object.")


def check_unique(items: list[_T]) -> list[_T]:
    """Refuse a list with repeated entries (the CRD marks it x-kubernetes-list-type: set)."""
    seen: list[_T] = []
    for item in items:
        if item in seen:
            raise ValueError(f"duplicate entry {item!r}")
        seen.append(item)
    return items


UNIQUE: dict[str, Any] = {"uniqueItems": True}
"""`json_schema_extra` of a list whose entries are unique; the generator turns it into a set."""
