"""Configuration of the Skaha/Cavern/Rucio simulator: every knob, with defaults.

Owns `SimulatorConfig` (the whole simulator) and `FaultRule` (one fault-injection rule, matched by
route pattern and method). Values follow `docs/platform-api.md` §9 (what the simulator must
reproduce); the defaults are the site defaults given in §3 and §4.
Imports no HTTP library.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

ENV_PREFIX = "SKAHA_SIM_"


class PendingMode(StrEnum):
    """How the Pending → Running delay of a session is drawn (§9.5)."""

    NORMAL = "normal"  # lognormal, median 8 s, p95 90 s
    IMAGE_PULL = "image_pull"  # uniform 60–300 s


class FaultRule(BaseModel):
    """One fault-injection rule (§9.10); all matching rules apply, in order."""

    model_config = ConfigDict(extra="forbid")

    route: str = Field(
        "*", description="fnmatch pattern on the request path, e.g. /skaha/v1/session*"
    )
    method: str = Field("*", description="HTTP method or *")
    count: int | None = Field(None, description="apply to the next N matching requests only")
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    p_500: float = 0.0
    p_503: float = 0.0
    p_429: float = 0.0
    retry_after_s: int = 1
    hang_s: float = 0.0
    p_hang: float = 1.0
    p_reset: float = 0.0
    fail_after_commit: float = 0.0
    answer_delay_s: float = Field(
        0.0, ge=0, description="the handler commits at once; the answer leaves this much later"
    )
    commit_delay_s: float = Field(
        0.0,
        ge=0,
        description="a launch or rule becomes visible this much later (simulator clock); "
        "the answer waits for it unless an error or reset fault answers at once",
    )
    list_lag_s: float = Field(
        0.0, ge=0, description="listings omit sessions and rules committed less than this ago"
    )
    stuck_pending: float = 0.0
    stats_unavailable: bool = False
    home_alloc_fail: bool = False
    max_sessions: int | None = None


class CavernSeed(BaseModel):
    """A Cavern tree made out of band (as if before the operator existed); parents are created."""

    model_config = ConfigDict(extra="forbid")

    dirs: list[str] = Field(default_factory=list, description="paths such as home/alice/old")
    files: dict[str, str] = Field(default_factory=dict, description="path -> text content")


class SimulatorConfig(BaseModel):
    """All simulator knobs; every field has a default so `SimulatorConfig()` is a working setup."""

    model_config = ConfigDict(extra="forbid")

    tokens: dict[str, str] = Field(
        default_factory=lambda: {"tok-alice": "alice", "tok-bob": "bob"},
        description="bearer token -> user name (§5); Cavern uses the same table",
    )
    group_members: list[str] | None = Field(
        None,
        description="users allowed to use Skaha; None = every user in the token table (§5 403)",
    )
    seed: int = 0
    frozen_clock: bool = False
    start_time: datetime | None = Field(None, description="clock origin; None = wall time at start")
    # Skaha (§2, §4)
    registry_hosts: list[str] = Field(default_factory=lambda: ["images.canfar.net"])
    images: list[dict[str, Any]] = Field(default_factory=lambda: list(DEFAULT_IMAGES))
    cores_options: list[int] = Field(default_factory=lambda: list(range(1, 17)))
    cores_default: int = 2
    cores_default_request: int = 1
    cores_default_limit: int = 8
    memory_options: list[int] = Field(default_factory=lambda: list(DEFAULT_MEMORY_OPTIONS))
    memory_default: int = 8
    memory_default_request: int = 4
    memory_default_limit: int = 32
    gpu_options: list[int] = Field(default_factory=lambda: list(range(1, 29)))
    max_sessions: int = 5
    strict_content_type: bool = True
    delete_unknown_404: bool = False
    legacy_mode: bool = False
    cluster_cores: int = 512
    cluster_ram_gb: int = 2048
    node_max_cores: int = 32
    node_max_ram: str = "147Gi"
    public_url: str | None = Field(None, description="base of connect URLs; None = served URL")
    # Lifecycle (§3, §9.5)
    pending_mode: PendingMode = PendingMode.NORMAL
    pending_s: float | None = Field(None, description="fixed Pending duration for every session")
    run_s: float | None = Field(None, description="fixed headless run time (SIM_RUN_SECONDS wins)")
    run_median_s: float = 60.0
    p_fail: float = 0.0
    terminate_s: float | None = Field(None, description="fixed Terminating time; None = 0–30 s")
    session_expiry_s: int = 345600
    headless_deadline_s: int = 1209600
    ttl_headless_s: float = Field(
        3600.0, ge=0, description="finished headless sessions vanish after; fixed at launch"
    )
    ttl_interactive_s: float = Field(
        86400.0, ge=0, description="finished interactive sessions vanish after; fixed at launch"
    )
    # Cavern (§7)
    cavern_authority: str = "cadc.nrc.ca~arc"
    cavern_root: Path | None = Field(None, description="backing directory; None = a temp dir")
    cavern_seed: CavernSeed = Field(
        default_factory=CavernSeed,
        description="directories and files present before anyone calls (created at start)",
    )
    cavern_files: dict[str, str] = Field(
        default_factory=dict,
        description="path under the tree (e.g. home/alice/run.py) -> text, written at start",
    )
    # Rucio (§8)
    rucio_userpass: dict[str, str] | None = Field(
        None, description="username -> password; None = accept any non-empty credentials"
    )
    rucio_token_lifetime_s: int = 3600
    rucio_known_dids: list[str] | None = Field(None, description="'scope:name'; None = all exist")
    rucio_rses: list[str] | None = Field(None, description="valid RSE expressions; None = any")
    replicate_s: float | None = Field(None, description="fixed REPLICATING duration")
    replicate_median_s: float = 30.0
    p_stuck: float = 0.0
    stuck_recover_s: float | None = Field(
        None, description="STUCK -> REPLICATING after; None = never"
    )
    # Operator jobs (jobs.py): payloads served at /_sim/files/<name>, pip outcome, run time
    files: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_FILES),
        description="name -> text served at /_sim/files/<name> (the only fetchable URLs)",
    )
    pip_unavailable: list[str] = Field(
        default_factory=list, description="requirement names pip cannot find (setup jobs fail)"
    )
    job_run_s: float = Field(
        5.0, description="run time of download and setup jobs when run_s is not set"
    )
    # Real headless sessions (containers.py): each runs as a container on a local engine
    job_mode: Literal["auto", "container", "emulate"] = Field(
        "emulate",
        description="auto: containers where an engine and the stand-in image exist (and the "
        "clock runs), else emulation; container: containers or fail; emulate: never. The "
        "command line and the demo use auto",
    )
    job_engine: str = Field("podman", description="container engine binary")
    job_standin_image: str = Field(
        "localhost/skaha-operator/job-standin:bookworm-2",
        description="the local image every headless session runs on (hack/podman.sh standin)",
    )
    job_images: dict[str, str] = Field(
        default_factory=dict, description="requested image -> local image, before the stand-in"
    )
    job_env: dict[str, str] = Field(
        default_factory=dict,
        description="site-wide env added to every job, e.g. https_proxy, or PIP_INDEX_URL "
        "instead of the simulator's own stand-in index (/_sim/pypi/simple/)",
    )
    job_network: str = Field("host", description="container network (host: reach 127.0.0.1)")
    job_stop_grace_s: float = Field(5.0, description="SIGTERM grace on DELETE before SIGKILL")
    # Faults
    faults: list[FaultRule] = Field(default_factory=list)


# A demo payload; manifests/examples/notebook-session.yaml names it with its sha256.
DEFAULT_FILES: dict[str, str] = {
    "demo/catalogue.fits": "SIMPLE  = T / a tiny stand-in for a FITS catalogue\nEND\n",
}

DEFAULT_IMAGES: tuple[dict[str, Any], ...] = (
    {"id": "images.canfar.net/skaha/astroml:latest", "types": ["notebook", "headless"]},
    {"id": "images.canfar.net/skaha/base-notebook:latest", "types": ["notebook"]},
    {"id": "images.canfar.net/skaha/terminal:1.1.2", "types": ["headless"]},
    {"id": "images.canfar.net/skaha/desktop:latest", "types": ["desktop"]},
    {"id": "images.canfar.net/skaha/carta:4.1", "types": ["carta"]},
    {"id": "images.canfar.net/skaha/firefly:2025.1", "types": ["firefly"]},
    {"id": "images.canfar.net/skaha/marimo:latest", "types": ["contributed"]},
)

# §4 elides the middle of the chart's list ("1,2,4,6,8,…,192"); these values fill it plausibly.
DEFAULT_MEMORY_OPTIONS: tuple[int, ...] = (
    1,
    2,
    4,
    6,
    8,
    10,
    12,
    14,
    16,
    20,
    24,
    28,
    32,
    40,
    48,
    56,
    64,
    96,
    128,
    160,
    192,
)


def load_config(path: Path | None = None, environ: dict[str, str] | None = None) -> SimulatorConfig:
    """Build a config from an optional JSON/YAML file, then `SKAHA_SIM_<FIELD>` env overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        text = path.read_text(encoding="utf-8")
        loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        data.update(loaded or {})
    env = os.environ if environ is None else environ
    for name in SimulatorConfig.model_fields:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None:
            data[name] = _env_value(raw)
    return SimulatorConfig.model_validate(data)


def _env_value(raw: str) -> Any:
    """Env values are JSON when they parse as JSON (numbers, lists, objects), else plain strings."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw
