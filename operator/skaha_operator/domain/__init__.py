"""Pydantic models of every kind: the single source of the CRD schemas.

Pure: imports neither kopf, kubernetes nor httpx.
"""
