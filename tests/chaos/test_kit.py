"""The campaigns' own checks, on made-up data: a checker that cannot fail proves nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skaha_operator.reconcile.transitions import COMPUTE_TRANSITIONS
from tests.chaos.kit import (
    GAP,
    TOKEN,
    WRONG_TOKEN,
    Recorder,
    Seen,
    metric,
    reachable,
    secret_hits,
)
from tests.chaos.report import Report


def _recorder(**seqs: list[str]) -> Recorder:
    rec = Recorder(None, "ns", ())  # type: ignore[arg-type]  # never started: no API needed
    for key, seq in seqs.items():
        plural, name = key.split("__")
        rec.seen[(plural, name)] = Seen(phases=seq)
    return rec


def test_regressions_flag_backward_and_illegal_moves_only() -> None:
    rec = _recorder(
        computes__ok=["Initializing", "Preparing", "Available", "Releasing", "Completed"],
        computes__back=["Preparing", "Available", "Preparing"],
        computes__skip=["Initializing", "Available"],
        sessions__ok=["Preparing", "Available", "Running", "Releasing", "Cancelled"],
        sessions__back=["Available", "Preparing"],
    )
    assert sorted(b.split(":")[0] for b in rec.regressions()) == [
        "computes/back",
        "computes/skip",
        "sessions/back",
    ]


def test_moves_across_a_relist_gap_are_checked_as_paths() -> None:
    rec = _recorder(
        computes__hidden=["Initializing", GAP, "Available"],
        computes__backward=["Available", GAP, "Preparing"],
    )
    assert [b.split(":")[0] for b in rec.regressions()] == ["computes/backward"]
    assert reachable(COMPUTE_TRANSITIONS, "Initializing", "Completed")
    assert not reachable(COMPUTE_TRANSITIONS, "Completed", "Preparing")


def test_record_keeps_order_ids_and_finds_secrets() -> None:
    rec = _recorder()

    def obj(phase: str, **status: Any) -> dict[str, Any]:
        return {"metadata": {"name": "c"}, "status": {"phase": phase, **status}}

    rec._record("computes", obj("Preparing", launch={"name": "skop-1"}))
    rec._record("computes", obj("Preparing", launch={"id": "abc", "attempts": 2}))
    rec._record("computes", obj("Available", launch={"id": "abc"}, message=f"token {TOKEN}"))
    seen = rec.of("computes")["c"]
    assert seen.phases == ["Preparing", "Available"]
    assert seen.session_ids == {"abc"}
    assert seen.session_name == "skop-1"
    assert seen.launch_attempts == 2
    assert rec.leaks == ["computes c"]


def test_metric_sums_matching_samples() -> None:
    text = "\n".join(
        [
            "# HELP skaha_requests_total x",
            'skaha_requests_total{code="200",method="GET",route="/v1/session",service="skaha"} 4.0',
            'skaha_requests_total{code="500",method="POST",route="/x",service="skaha"} 2.0',
            'skaha_requests_total{code="200",method="GET",route="/nodes",service="cavern"} 9.0',
        ]
    )
    assert metric(text, "skaha_requests_total", service="skaha") == 6.0
    assert metric(text, "skaha_requests_total", code="500") == 2.0
    assert metric(text, "skaha_requests_created", service="skaha") == 0.0


def test_secret_hits_counts_each_source() -> None:
    found = secret_hits({"log": f"a {TOKEN} b {WRONG_TOKEN} {TOKEN}", "events": "clean"})
    assert found == {"log": 3}


def test_report_fragment_names_its_command(tmp_path: Path) -> None:
    rep = Report(test="tests/chaos/test_x.py::test_y", scale="full", campaign="Operator crashes")
    rep.inject("kills", 30)
    rep.check("duplicates", 0)
    path = rep.write(tmp_path)
    doc = json.loads(path.read_text())
    assert path.name == "operator-crashes.full.json"
    assert doc["injected"] == {"kills": 30}
    assert doc["command"] == "CHAOS_SCALE=full .venv/bin/pytest -q 'tests/chaos/test_x.py::test_y'"


def test_reliability_page_has_one_table_per_fragment_one_line_per_row() -> None:
    from bench.chaos_report import render

    frag = {
        "campaign": "Platform faults",
        "scale": "full",
        "seed": 1,
        "injected": {"500s": "20%"},
        "checked": {"duplicates": 0, "stalled": False},
        "figures": {"messages": {"a": "line one\nline | two"}, "unused": []},
        "result": "pass",
        "command": "cmd",
    }
    page = render([frag, {**frag, "campaign": "Operator crashes", "scale": "ci"}], "now", "abc")
    assert page.index("## Operator crashes (ci size") < page.index("## Platform faults (full")
    assert "| measured | messages | a: line one ⏎ line \\| two |" in page
    assert "| checked | stalled | no |" in page
    assert "| measured | unused | none |" in page
    assert "Reproduce: `cmd`" in page
