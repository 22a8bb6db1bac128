"""What a benchmark window costs: API-server requests (the server's own counters), platform calls
(the simulator's launch log and the operator's counters), and a process's CPU time and memory
(/proc). Every figure is a difference between two snapshots around the window.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.happy_path import api_requests, samples, scrape
from skaha_operator.controlplane import ControlPlane

WRITE_VERBS = frozenset({"CREATE", "POST", "PATCH", "UPDATE", "APPLY", "PUT", "DELETE"})
READ_VERBS = frozenset({"GET", "LIST"})
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident) of a process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in {"VmRSS", "VmHWM"}:
                out[key] = int(value.split()[0])
    return out


@dataclass
class ApiSnapshot:
    """The API server's request counters by (verb, resource) at one moment."""

    counts: Counter[tuple[str, str]]

    @classmethod
    def take(cls, cp: ControlPlane) -> ApiSnapshot:
        """Scrape /metrics of the API server now."""
        return cls(api_requests(cp))


@dataclass
class ApiCost:
    """Requests made between two snapshots."""

    delta: Counter[tuple[str, str]] = field(default_factory=Counter)

    @classmethod
    def between(cls, before: ApiSnapshot, after: ApiSnapshot) -> ApiCost:
        """after - before."""
        return cls(after.counts - before.counts)

    def per(self, n: int, verbs: frozenset[str]) -> float:
        """Requests with one of `verbs` per Session."""
        return sum(c for (v, _), c in self.delta.items() if v in verbs) / n

    def by_verb(self, n: int) -> dict[str, float]:
        """Requests per Session by verb."""
        out: Counter[str] = Counter()
        for (verb, _), count in self.delta.items():
            out[verb] += count
        return {v: c / n for v, c in sorted(out.items())}

    def table(self, n: int) -> list[tuple[str, str, float]]:
        """(verb, resource, per Session), largest first, WATCH excluded (one long request)."""
        rows = [(v, r, c / n) for (v, r), c in self.delta.items() if v != "WATCH" and c]
        return sorted(rows, key=lambda row: -row[2])


def operator_calls(metrics_url: str) -> Counter[tuple[str, str, str]]:
    """The operator's platform calls by (method, route, code) from skaha_requests_total."""
    out: Counter[tuple[str, str, str]] = Counter()
    for labels, value in samples(scrape(metrics_url), "skaha_requests_total"):
        out[(labels["method"], labels["route"], labels["code"])] += int(value)
    return out


def reconciles(metrics_url: str) -> Counter[str]:
    """Reconciliations so far by controller (every result)."""
    out: Counter[str] = Counter()
    for labels, value in samples(scrape(metrics_url), "controller_runtime_reconcile_total"):
        out[labels["controller"]] += int(value)
    return out


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary(times: dict[str, float]) -> dict[str, Any]:
    """p50 / p95 / max of the times to usable."""
    values = list(times.values())
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else float("nan"),
    }
