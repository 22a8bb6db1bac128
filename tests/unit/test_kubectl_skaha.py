"""The kubectl-skaha plugin's pure parts: time left, the Compute of a Session, the table."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest

from skaha_operator.kubectl_skaha import compute_name, format_duration, table, time_left

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def session(phase: str = "Available", **schedule: str) -> dict[str, Any]:
    return {
        "apiVersion": "skaha.broker.dev/v1alpha1",
        "kind": "Session",
        "metadata": {"name": "nb", "namespace": "ns", "creationTimestamp": "2030-01-01T11:00:00Z"},
        "spec": {
            "platformRef": "local",
            "schedule": schedule or None,
            "executable": {
                "template": {"dockerContainer": {"image": "images.canfar.net/skaha/x:1"}}
            },
            "compute": {"template": {"type": "notebook"}},
        },
        "status": {"phase": phase},
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "expired"), (-5, "expired"), (12, "12s"), (250, "4m10s"), (7500, "2h05m"),
     (90000, "1d01h")],
)  # fmt: skip
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_time_left_runs_to_the_end_of_the_booking_else_skahas_expiry() -> None:
    assert time_left(session(duration="2h"), None, NOW) == "1h00m"  # created 11:00
    assert time_left(session(start="2030-01-01T11:30:00Z", duration="1h"), None, NOW) == "30m00s"
    compute = {"status": {"expiryTime": "2030-01-05T12:00:00Z"}}
    assert time_left(session(), compute, NOW) == "4d00h"
    assert time_left(session(), None, NOW) == "-"
    for phase in ("Completed", "Failed", "Cancelled", "Expired"):
        assert time_left(session(phase, duration="2h"), compute, NOW) == "-"


def test_compute_name_is_the_sessions_own_compute() -> None:
    assert compute_name(session()) == "nb-compute"  # a Session always creates its Compute
    assert compute_name({"metadata": {"name": "x"}, "spec": {}}) is None  # not a valid Session


def test_table_pads_columns_like_kubectl() -> None:
    out = io.StringIO()
    table([["NAME", "PHASE"], ["notebook", "Available"]], out)
    assert out.getvalue() == "NAME       PHASE\nnotebook   Available\n"
