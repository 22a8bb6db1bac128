"""Kubernetes API access for the operator: guarded (compare-and-swap) status writes and events."""
