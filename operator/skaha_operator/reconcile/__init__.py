"""Pure decisions: (spec, observed state, now) -> next phase, conditions, one action.

Imports neither kopf, kubernetes nor httpx (an import-linter contract enforces it).
"""
