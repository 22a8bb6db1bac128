"""Sampling of per-session timings from the seeded RNG (`docs/platform-api.md` §9.5).

Every launch draws the same number of values in the same order, whatever overrides apply, so a
given seed yields the same schedules for the same sequence of launches.
Session env knobs (documented for the operator's headless jobs): `SIM_PENDING_SECONDS=<s>`,
`SIM_RUN_SECONDS=<s>`, `SIM_EXIT_CODE=<n>` (n != 0 ends `Failed`), `SIM_LOG=<text>`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from skaha_operator.simulator.config import PendingMode, SimulatorConfig

# Lognormal with median 8 s and p95 90 s: sigma = ln(90/8) / 1.645 (§9.5).
PENDING_MU = math.log(8.0)
PENDING_SIGMA = math.log(90.0 / 8.0) / 1.645
PENDING_CAP_S = 900.0
RUN_SIGMA = 1.0


@dataclass(frozen=True)
class Schedule:
    """Timings drawn for one session."""

    pending_s: float
    run_s: float
    fails: bool
    exit_code: int
    terminate_s: float


def env_map(env: list[str]) -> dict[str, str]:
    """`KEY=VALUE` strings to a dict (later values win, like a shell)."""
    out: dict[str, str] = {}
    for item in env:
        key, sep, value = item.partition("=")
        if sep:
            out[key] = value
    return out


def draw_schedule(rng: random.Random, config: SimulatorConfig, env: dict[str, str]) -> Schedule:
    """Draw pending, run, failure and terminate timings, then apply config and env overrides."""
    pending_normal = min(rng.lognormvariate(PENDING_MU, PENDING_SIGMA), PENDING_CAP_S)
    pending_pull = rng.uniform(60.0, 300.0)
    run = rng.lognormvariate(math.log(config.run_median_s), RUN_SIGMA)
    fails = rng.random() < config.p_fail
    terminate = rng.uniform(0.0, 30.0)

    pending = pending_pull if config.pending_mode is PendingMode.IMAGE_PULL else pending_normal
    if config.pending_s is not None:
        pending = config.pending_s
    pending = _float_env(env, "SIM_PENDING_SECONDS", pending)
    if config.run_s is not None:
        run = config.run_s
    run = _float_env(env, "SIM_RUN_SECONDS", run)
    exit_code = 1 if fails else 0
    if "SIM_EXIT_CODE" in env:
        try:
            exit_code = int(env["SIM_EXIT_CODE"])
        except ValueError:
            exit_code = 1
        fails = exit_code != 0
    if config.terminate_s is not None:
        terminate = config.terminate_s
    return Schedule(max(pending, 0.0), max(run, 0.0), fails, exit_code, max(terminate, 0.0))


def _float_env(env: dict[str, str], key: str, default: float) -> float:
    """A float from the session env, or the default when absent or malformed."""
    try:
        return float(env[key])
    except (KeyError, ValueError):
        return default
