"""Pydantic models of every kind: the single source of the CRD schemas.

`common` (phases, conditions, schedule, durations), `status` (shared status fields), one module
per kind (`skaha_platform`, `docker_container`, `jupyter_notebook`, `storage`, `data`,
`compute`, `session`), `kinds` (the registry), and the generator (`schema` rewrites pydantic's
JSON schema into a structural one; `crd` writes `crds/`: `python -m skaha_operator.domain.crd`).

Pure: imports neither kopf, kubernetes nor httpx.
"""
