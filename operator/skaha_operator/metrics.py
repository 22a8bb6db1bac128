"""Prometheus metrics, named as controller-runtime names them so Go-operator dashboards carry over.

(docs/kubernetes-notes.md §8.) Only prometheus-client is imported here; the handlers record, the
CLI serves them on the metrics port.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILE_TOTAL = Counter(
    "controller_runtime_reconcile_total",
    "Reconciliations per controller and result (success, error, requeue, requeue_after).",
    ["controller", "result"],
)
RECONCILE_ERRORS = Counter(
    "controller_runtime_reconcile_errors_total", "Reconciliations that raised.", ["controller"]
)
RECONCILE_TIME = Histogram(
    "controller_runtime_reconcile_time_seconds",
    "Time per reconciliation.",
    ["controller"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SKAHA_REQUESTS = Counter(
    "skaha_requests_total",
    "HTTP requests to the platform (Skaha, Cavern, Rucio) by method, route template and code.",
    ["service", "method", "route", "code"],
)
CAS_CONFLICTS = Counter(
    "cas_conflicts_total", "Guarded status writes refused because the object moved.", ["kind"]
)
TRANSITIONS = Counter(
    "skaha_phase_transitions_total",
    "Phase transitions written, by kind and new phase.",
    ["kind", "phase"],
)
SHARDS_HELD = Gauge(
    "skaha_operator_shards_held",
    "Shards this replica holds (runtime/shards.py); 0 with election off.",
)
SHARD_TAKEOVERS = Counter(
    "skaha_operator_shard_takeovers_total",
    "Shards that became held (acquired, or renewed after a lapse): every object in them stepped.",
)
SHARD_LAPSES = Counter(
    "skaha_operator_shard_lapses_total",
    "Shards renewed only after this replica had stopped stepping them (renewal too late).",
)
LEASE_ERRORS = Counter(
    "skaha_operator_lease_errors_total", "Lease rounds or Lease writes that failed with an error."
)
TAKEOVER_STEPS = Counter(
    "skaha_operator_takeover_steps_total",
    "Objects stepped at once because their shard became held by this replica.",
)
