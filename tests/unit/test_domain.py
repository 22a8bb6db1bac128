"""The pydantic models: wire round-trips, durations, timestamps, identity checks, examples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from skaha_operator import GROUP, VERSION
from skaha_operator.domain.base import API_VERSION
from skaha_operator.domain.common import (
    TERMINAL_PHASES,
    TERMINAL_SESSION_PHASES,
    Condition,
    ConditionStatus,
    Phase,
    SessionPhase,
    SessionType,
    parse_duration,
)
from skaha_operator.domain.compute import (
    Compute,
    ComputeSpec,
    ComputeStatus,
    ExecutableKind,
    ExecutableRef,
)
from skaha_operator.domain.data import Data
from skaha_operator.domain.kinds import KINDS, parse_object
from skaha_operator.domain.launch import Launch
from skaha_operator.domain.session import Session

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"


def example_objects() -> list[dict[str, Any]]:
    """Every skaha object in manifests/examples (Secrets left out)."""
    docs = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["apiVersion"] == API_VERSION:
                docs.append(doc)
    return docs


def is_subset(small: Any, big: Any) -> bool:
    """Whether every key and value of `small` appears unchanged in `big`."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(
            k in big and is_subset(v, big[k]) for k, v in small.items()
        )
    if isinstance(small, list):
        return (
            isinstance(big, list)
            and len(small) == len(big)
            and all(is_subset(a, b) for a, b in zip(small, big, strict=True))
        )
    return bool(small == big)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2h30m", 9000.0),
        ("90s", 90.0),
        ("1.5s", 1.5),
        ("300ms", 0.3),
        ("1h0m0s", 3600.0),
        ("10us", 0.00001),
        ("0s", 0.0),
    ],
)
def test_parse_duration_reads_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "2", "-1h", "1d", "h", "1h 30m", "1.h", "PT1H"])
def test_parse_duration_refuses_malformed_text(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_phases_and_terminal_sets() -> None:
    assert [p.value for p in SessionPhase] == [p.value for p in Phase] + ["Expired"]
    assert {"Completed", "Failed", "Cancelled"} == TERMINAL_PHASES
    assert TERMINAL_PHASES | {"Expired"} == TERMINAL_SESSION_PHASES
    assert SessionPhase.FAILED in TERMINAL_PHASES
    assert Phase.RUNNING not in TERMINAL_PHASES


def test_condition_times_serialise_as_rfc3339() -> None:
    cond = Condition.model_validate(
        {
            "type": "Ready",
            "status": "True",
            "reason": "SessionRunning",
            "lastTransitionTime": "2026-11-29T10:00:00Z",
        }
    )
    assert cond.last_transition_time == datetime(2026, 11, 29, 10, tzinfo=UTC)
    assert cond.to_wire()["lastTransitionTime"] == "2026-11-29T10:00:00Z"
    later = cond.model_copy(
        update={"last_transition_time": datetime(2026, 11, 29, 10, 0, 1, 250000, tzinfo=UTC)}
    )
    assert later.to_wire()["lastTransitionTime"] == "2026-11-29T10:00:01.25Z"


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        Condition(
            type="Ready",
            status=ConditionStatus.TRUE,
            reason="X",
            last_transition_time=datetime(2026, 1, 1),  # noqa: DTZ001 - the point of the test
        )


def test_python_names_are_snake_case_and_wire_names_camel_case() -> None:
    compute = Compute(
        metadata={"name": "c1", "namespace": "ns"},
        spec=ComputeSpec(
            platform_ref="local",
            type=SessionType.HEADLESS,
            ram_gib=8,
            command="echo",
            executable_ref=ExecutableRef(kind=ExecutableKind.DOCKER_CONTAINER, name="img"),
            storage_refs=["a", "b"],
        ),
        status=ComputeStatus(
            phase=Phase.PREPARING,
            launch=Launch(name="n", pending_since=datetime(2026, 1, 1, tzinfo=UTC), id=None),
            polls=3,
        ),
    )
    assert compute.to_wire() == {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Compute",
        "metadata": {"name": "c1", "namespace": "ns"},
        "spec": {
            "type": "headless",
            "ramGiB": 8,
            "command": "echo",
            "platformRef": "local",
            "executableRef": {"kind": "DockerContainer", "name": "img"},
            "storageRefs": ["a", "b"],
        },
        "status": {
            "phase": "Preparing",
            "launch": {"name": "n", "pendingSince": "2026-01-01T00:00:00Z"},
            "polls": 3,
        },
    }


def test_wire_dict_round_trips_unchanged() -> None:
    wire = {
        "apiVersion": API_VERSION,
        "kind": "Compute",
        "metadata": {"name": "c", "uid": "0b1c", "generation": 2, "annotations": {"a": "b"}},
        "spec": {
            "type": "notebook",
            "cores": 2,
            "platformRef": "local",
            "executableRef": {"kind": "JupyterNotebook", "name": "nb"},
            "schedule": {"start": "2026-12-01T09:00:00Z", "duration": "2h", "maxPolls": 10},
        },
        "status": {
            "phase": "Running",
            "phaseTimes": {"Preparing": "2026-12-01T08:50:00Z", "Running": "2026-12-01T09:00:05Z"},
            "observedGeneration": 2,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "SessionRunning",
                    "message": "Skaha reports Running",
                    "lastTransitionTime": "2026-12-01T09:00:05Z",
                    "observedGeneration": 2,
                }
            ],
            "launch": {
                "name": "c-0b1c",
                "pendingSince": "2026-12-01T08:59:00Z",
                "attempts": 1,
                "id": "tfln7ot5",
                "observed": "Running",
            },
            "connectors": [{"kind": "notebook", "protocol": "https", "url": "https://h/x"}],
            "launchedRamGiB": 8,
        },
    }
    assert Compute.model_validate(wire).to_wire() == wire


def test_identity_is_checked() -> None:
    body = {"apiVersion": "v1", "kind": "Storage", "metadata": {}, "spec": {}}
    with pytest.raises(ValidationError, match=r"apiVersion must be skaha\.broker\.dev/v1alpha1"):
        Data.model_validate({**body, "kind": "Data"})
    with pytest.raises(ValidationError, match="kind must be Data"):
        Data.model_validate(
            {
                "apiVersion": API_VERSION,
                "kind": "Storage",
                "spec": {"platformRef": "p", "storageRef": "s"},
            }
        )


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="ramGb"):
        ComputeSpec.model_validate(
            {
                "type": "notebook",
                "ramGb": 4,
                "platformRef": "p",
                "executableRef": {"kind": "DockerContainer", "name": "x"},
            }
        )


def test_field_limits_are_enforced_in_python() -> None:
    spec = {
        "type": "notebook",
        "cores": -1,
        "platformRef": "p",
        "executableRef": {"kind": "DockerContainer", "name": "x"},
    }
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        ComputeSpec.model_validate(spec)
    with pytest.raises(ValidationError, match="duplicate entry 'a'"):
        ComputeSpec.model_validate({**spec, "cores": 1, "storageRefs": ["a", "a"]})


def test_every_kind_is_registered_once() -> None:
    assert [k.crd.kind for k in KINDS] == [
        "SkahaPlatform",
        "DockerContainer",
        "JupyterNotebook",
        "Storage",
        "Data",
        "Compute",
        "Session",
    ]
    with pytest.raises(ValueError, match="not a skaha kind"):
        parse_object({"kind": "Pod"})


def test_examples_cover_every_kind_and_the_issue_list() -> None:
    docs = example_objects()
    kinds = {d["kind"] for d in docs}
    assert kinds == {k.crd.kind for k in KINDS} - {"Compute"}
    sessions = [Session.model_validate(d) for d in docs if d["kind"] == "Session"]
    types = {s.spec.compute.template.type for s in sessions}
    assert {SessionType.NOTEBOOK, SessionType.HEADLESS} <= types
    assert any(s.spec.executable.ref is not None for s in sessions)
    rucio = [d for d in docs if d["kind"] == "Data" and "rucio" in d["spec"]]
    assert len(rucio) == 1


@pytest.mark.parametrize(
    "doc", example_objects(), ids=lambda d: f"{d['kind']}-{d['metadata']['name']}"
)
def test_examples_parse_and_keep_every_field(doc: dict[str, Any]) -> None:
    model = parse_object(doc)
    wire = model.to_wire()
    # Only defaults may be added; everything written survives unchanged.
    assert is_subset(doc, wire)
    assert type(model).model_validate(wire).to_wire() == wire
