"""The Session's child builders, by exact dict comparison, and the names they use."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest

from skaha_operator.domain.compute import Compute
from skaha_operator.domain.kinds import parse_object
from skaha_operator.domain.session import Session
from skaha_operator.reconcile.builders import (
    PART_LABEL,
    SESSION_LABEL,
    PartRef,
    child_name,
    make_children,
    part_refs,
    session_label_value,
)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
API = "skaha.broker.dev/v1alpha1"
OWNER = {
    "apiVersion": API,
    "kind": "Session",
    "name": "s1",
    "uid": "uid-1",
    "controller": True,
    "blockOwnerDeletion": True,
}


def sha8(text: str) -> str:
    """The name hash suffix: the first 8 hex digits of SHA-256 of the uncut name."""
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def session(spec: dict[str, Any], **meta: Any) -> Session:
    return Session.model_validate(
        {"metadata": {"name": "s1", "namespace": "ns", "uid": "uid-1", **meta}, "spec": spec}
    )


def meta(name: str, part: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "ns",
        "labels": {SESSION_LABEL: "s1", PART_LABEL: part},
        "ownerReferences": [OWNER],
    }


INLINE = {
    "platformRef": "local",
    "schedule": {"start": "2030-01-01T12:00:00Z", "duration": "2h", "prepareDeadline": "20m"},
    "executable": {
        "template": {
            "dockerContainer": {
                "image": "images.canfar.net/skaha/astroml:latest",
                "sessionTypes": ["notebook"],
            }
        }
    },
    "compute": {"template": {"type": "notebook", "cores": 2, "ramGiB": 8}},
    "storages": [
        {"name": "work", "template": {"area": "home", "path": "sessions/s1"}},
        {"name": "shared", "ref": "survey-inputs"},
    ],
    "data": [
        {
            "name": "cat",
            "template": {
                "storageRef": "work",
                "http": {"url": "https://example.org/cat.fits"},
            },
        },
        {"name": "obs", "ref": "obs-123"},
    ],
}


def test_inline_session_children() -> None:
    assert make_children(session(INLINE)) == [
        {
            "apiVersion": API,
            "kind": "DockerContainer",
            "metadata": meta("s1-executable", "executable"),
            "spec": {
                "image": "images.canfar.net/skaha/astroml:latest",
                "sessionTypes": ["notebook"],
                "platformRef": "local",
            },
        },
        {
            "apiVersion": API,
            "kind": "Storage",
            "metadata": meta("s1-storage-work", "storage-work"),
            "spec": {
                "area": "home",
                "path": "sessions/s1",
                "releasePolicy": "Retain",
                "platformRef": "local",
            },
        },
        {
            "apiVersion": API,
            "kind": "Data",
            "metadata": meta("s1-data-cat", "data-cat"),
            "spec": {
                "storageRef": "s1-storage-work",
                "releasePolicy": "Delete",
                "http": {"url": "https://example.org/cat.fits", "allowInsecure": False},
                "platformRef": "local",
            },
        },
        {
            "apiVersion": API,
            "kind": "Compute",
            "metadata": meta("s1-compute", "compute"),
            "spec": {
                "type": "notebook",
                "cores": 2,
                "ramGiB": 8,
                "executableRef": {"kind": "DockerContainer", "name": "s1-executable"},
                "storageRefs": ["s1-storage-work", "survey-inputs"],
                "dataRefs": ["s1-data-cat", "obs-123"],
                "schedule": {
                    "start": "2030-01-01T12:00:00Z",
                    "duration": "2h",
                    "prepareDeadline": "20m",
                },
                "platformRef": "local",
            },
        },
    ]


def test_every_child_is_a_valid_object_of_its_kind() -> None:
    for body in make_children(session(INLINE)):
        assert parse_object(body).to_wire()["spec"] == body["spec"]


def test_part_refs_owned_and_shared_compute_last() -> None:
    assert part_refs(session(INLINE)) == [
        PartRef("DockerContainer", "s1-executable", False, "executable"),
        PartRef("Storage", "s1-storage-work", False, "storage-work"),
        PartRef("Storage", "survey-inputs", True, "storage-shared"),
        PartRef("Data", "s1-data-cat", False, "data-cat"),
        PartRef("Data", "obs-123", True, "data-obs"),
        PartRef("Compute", "s1-compute", False, "compute"),
    ]


SHARED = {
    "platformRef": "local",
    "executable": {"ref": {"kind": "JupyterNotebook", "name": "tutorial"}},
    "compute": {"template": {"type": "headless", "command": "python", "args": ["run.py"]}},
}


def test_shared_executable_only_the_compute_is_owned() -> None:
    s = session(SHARED, creationTimestamp="2030-01-01T11:00:00Z")
    assert make_children(s) == [
        {
            "apiVersion": API,
            "kind": "Compute",
            "metadata": meta("s1-compute", "compute"),
            "spec": {
                "type": "headless",
                "command": "python",
                "args": ["run.py"],
                "executableRef": {"kind": "JupyterNotebook", "name": "tutorial"},
                # No schedule given: the start is pinned to the Session's creation.
                "schedule": {"start": "2030-01-01T11:00:00Z"},
                "platformRef": "local",
            },
        }
    ]
    assert part_refs(s) == [
        PartRef("JupyterNotebook", "tutorial", True, "executable"),
        PartRef("Compute", "s1-compute", False, "compute"),
    ]


def test_inline_notebook_gets_the_storage_object_name() -> None:
    spec = {
        "platformRef": "local",
        "executable": {
            "template": {
                "jupyterNotebook": {
                    "image": "images.canfar.net/skaha/astroml:latest",
                    "notebook": {"url": "https://example.org/nb.ipynb"},
                    "storageRef": "space",
                }
            }
        },
        "compute": {"template": {"type": "notebook"}},
        "storages": [{"name": "space", "ref": "tutorial-space"}],
    }
    children = make_children(session(spec))
    assert [c["kind"] for c in children] == ["JupyterNotebook", "Compute"]
    assert children[0]["spec"] == {
        "image": "images.canfar.net/skaha/astroml:latest",
        "notebook": {"url": "https://example.org/nb.ipynb"},
        "storageRef": "tutorial-space",
        "releasePolicy": "Delete",
        "platformRef": "local",
    }
    compute = Compute.model_validate(children[1])
    assert compute.spec.executable_ref.name == "s1-executable"
    assert compute.spec.storage_refs == ["tutorial-space"]
    assert compute.spec.schedule is None  # no schedule and no creationTimestamp to pin


@pytest.mark.parametrize(
    ("session_name", "part", "expected"),
    [
        ("s1", "compute", "s1-compute"),
        ("my-session", "storage-work", "my-session-storage-work"),
        # Dots are valid in object names but not in DNS labels: cleaned, plus a hash.
        ("a.b", "compute", "a-b-compute-" + sha8("a.b-compute")),
        ("a-b", "compute", "a-b-compute"),
        ("x" * 60, "compute", "x" * 54 + "-" + sha8("x" * 60 + "-compute")),
    ],
)
def test_child_name(session_name: str, part: str, expected: str) -> None:
    name = child_name(session_name, part)
    assert name == expected
    assert len(name) <= 63
    assert DNS_LABEL.match(name)


def test_child_names_stay_distinct_when_cut() -> None:
    long = "s" * 70
    names = {child_name(long, p) for p in ("compute", "executable", "storage-a", "storage-b")}
    assert len(names) == 4
    assert all(len(n) == 63 and DNS_LABEL.match(n) for n in names)
    assert child_name(long, "compute") == child_name(long, "compute")  # deterministic


def test_session_label_value() -> None:
    assert session_label_value("s1") == "s1"
    assert session_label_value("a.b") == "a.b"  # label values may hold dots
    assert session_label_value("v" * 63) == "v" * 63
    long = session_label_value("v" * 100)
    assert len(long) == 63
    assert DNS_LABEL.match(long)
