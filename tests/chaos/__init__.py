"""Reliability campaigns: crashes, platform faults, API-server restarts, concurrency, bad input
and secret hygiene, each with a fixed seed and a report fragment for docs/reliability.md.
"""
