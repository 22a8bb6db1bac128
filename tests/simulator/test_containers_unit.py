"""How a headless POST becomes a container: Kubernetes expansion, Skaha's args split, env, argv.

Pure functions of `simulator/containers.py`; no engine is needed (test_real_jobs.py runs them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skaha_operator.simulator import SimulatorConfig
from skaha_operator.simulator.cli import build_parser, config_from_args
from skaha_operator.simulator.containers import (
    ContainerRunner,
    Engine,
    Running,
    container_env,
    decide_runner,
    expand,
    run_argv,
    split_args,
)
from skaha_operator.simulator.pypi import normalize, versions_named
from skaha_operator.simulator.sessions import Phase, SessionType, SimSession


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "1"),
        ("x$(A)y$(B)z", "x1y two z"),
        ("$$(A)", "$(A)"),  # escaped: the literal reference
        ("$$$(A)", "$1"),
        ("$$", "$"),
        ("$(MISSING)", "$(MISSING)"),  # undefined: left as is
        ("$(A", "$(A"),  # unclosed
        ("$A ${A} $", "$A ${A} $"),  # shell syntax is not Kubernetes syntax
        ('mkdir -p "$(dirname "$SKOP_DEST")"', 'mkdir -p "$(dirname "$SKOP_DEST")"'),
        ("", ""),
        ("$(A)$(A)", "11"),
        ("a$", "a$"),
    ],
)
def test_expand_follows_kubernetes(text: str, expected: str) -> None:
    assert expand(text, {"A": "1", "B": " two "}) == expected


def test_args_are_split_on_single_spaces_like_java() -> None:
    assert split_args("-c $(SKOP_SCRIPT)") == ["-c", "$(SKOP_SCRIPT)"]
    assert split_args("a  b ") == ["a", "", "b"]  # inner empty kept, trailing dropped
    assert split_args(None) == []
    assert split_args("") == []


def session(**kw: object) -> SimSession:
    base: dict[str, object] = {
        "id": "abcd1234",
        "user": "alice",
        "name": "job",
        "image": "images.canfar.net/skaha/terminal:1.1.2",
        "type": SessionType.HEADLESS,
        "created": 0.0,
        "start_at": None,
        "end_at": None,
        "end_phase": Phase.COMPLETED,
        "deadline_s": 100.0,
        "ttl_s": 10.0,
        "terminate_s": 0.0,
        "fixed": True,
        "cores": 2.0,
        "ram": 4.0,
        "gpus": 0,
        "uid": 20001,
        "gid": 20001,
    }
    base.update(kw)
    return SimSession(**base)  # type: ignore[arg-type]


def test_env_is_site_then_post_then_skaha_each_expanded_against_earlier_ones() -> None:
    sim = session(env=["TEST=test", "REF=$(TEST)-$(LATER)", "HOME=/nope", "LATER=x"])
    env = container_env(sim, {"PIP_INDEX_URL": "http://127.0.0.1:1/simple", "TEST": "site"}, "h")
    keys = [k for k, _ in env]
    assert keys[:4] == ["PIP_INDEX_URL", "TEST", "REF", "LATER"]
    values = dict(env)
    assert values["TEST"] == "test"  # the POST wins over the site
    assert values["REF"] == "test-$(LATER)"  # only earlier variables resolve
    assert values["HOME"] == "/arc/home/alice"  # Skaha's template wins
    assert values["PWD"] == "/arc/home/alice"
    assert values["skaha_sessionid"] == "abcd1234"
    assert values["skaha_username"] == "alice"
    assert values["OMP_NUM_THREADS"] == "2"


def engine(*, limits: bool = True, rootful: bool = True) -> Engine:
    return Engine("/usr/bin/podman", {}, "4.3.1", limits=limits, rootful=rootful)


def argv_of(sim: SimSession, config: SimulatorConfig | None = None, **kw: bool) -> list[str]:
    return run_argv(
        sim,
        config=config or SimulatorConfig(),
        engine=engine(**kw),
        name="skaha-sim-x-abcd1234",
        instance="x",
        cavern_root=Path("/tmp/cavern"),
        served_url="http://127.0.0.1:8765",
    )


def test_the_operator_job_shape_becomes_sh_c_and_the_whole_script() -> None:
    script = 'set -eu; echo "$SKOP_DEST"; mkdir -p "$(dirname "$SKOP_DEST")"'
    sim = session(
        cmd="/bin/sh", args="-c $(SKOP_SCRIPT)", env=[f"SKOP_SCRIPT={script}", "SKOP_DEST=/x"]
    )
    argv = argv_of(sim)
    image_at = argv.index("localhost/skaha-operator/job-standin:bookworm-2")
    assert argv[image_at + 1 :] == ["-c", script]
    assert json.loads(argv[argv.index("--entrypoint") + 1]) == ["/bin/sh"]
    assert f"SKOP_SCRIPT={script}" in argv
    assert argv[argv.index("--volume") + 1] == "/tmp/cavern:/arc"
    assert argv[argv.index("--workdir") + 1] == "/arc/home/alice"
    assert argv[argv.index("--user") + 1] == "20001:20001"
    assert argv[argv.index("--network") + 1] == "host"
    assert argv[argv.index("--memory") + 1] == str(4 * 1024**3) + "b"
    assert "PIP_INDEX_URL=http://127.0.0.1:8765/_sim/pypi/simple/" in argv  # the site's index
    assert "skaha_hostname=127.0.0.1:8765" in argv


def test_no_cmd_keeps_the_image_entrypoint_and_mapping_wins_over_the_standin() -> None:
    sim = session(args="hello world")
    config = SimulatorConfig(job_images={sim.image: "localhost/other:1"})
    argv = argv_of(sim, config, limits=False, rootful=False)
    assert "--entrypoint" not in argv
    assert argv[-3:] == ["localhost/other:1", "hello", "world"]
    assert "--memory" not in argv
    assert "--cpus" not in argv
    assert argv[argv.index("--user") + 1] == "0:0"


def test_flexible_sessions_get_the_site_default_limits() -> None:
    sim = session(fixed=False, cores=1.0, ram=4.0)
    argv = argv_of(sim, SimulatorConfig(memory_default_limit=32))
    assert argv[argv.index("--memory") + 1] == str(32 * 1024**3) + "b"


def test_emulation_is_the_default_and_the_fallback() -> None:
    _, status = decide_runner(SimulatorConfig())
    assert (status.mode, status.reason) == ("emulate", "job_mode is emulate")
    _, status = decide_runner(SimulatorConfig(job_mode="auto", frozen_clock=True))
    assert status.mode == "emulate"
    assert "frozen clock" in status.reason
    _, status = decide_runner(SimulatorConfig(job_mode="auto", job_engine="no-such-engine-x"))
    assert status.mode == "emulate"
    assert "no-such-engine-x not found" in status.reason
    with pytest.raises(RuntimeError, match="no-such-engine-x"):
        decide_runner(SimulatorConfig(job_mode="container", job_engine="no-such-engine-x"))


def test_the_stand_in_index_offers_the_versions_requirements_name() -> None:
    texts = ["astropy>=6\nSpecUtils==1.15.0 ; python_version>'3'\nnumpy~=1.26.*  # c\n", "x<2"]
    assert versions_named(texts, "astropy") == {"1.0", "6"}
    assert versions_named(texts, "specutils") == {"1.0", "1.15.0"}
    assert versions_named(texts, "numpy") == {"1.0", "1.26"}
    assert versions_named(texts, "scipy") == {"1.0"}
    assert normalize("Spec_Utils.x") == "spec-utils-x"


def test_the_served_simulator_runs_jobs_for_real_unless_told(tmp_path: Path) -> None:
    parse = build_parser().parse_args
    assert config_from_args(parse([])).job_mode == "auto"
    assert config_from_args(parse(["--jobs", "emulate"])).job_mode == "emulate"
    file = tmp_path / "sim.json"
    file.write_text(json.dumps({"job_mode": "container"}))
    assert config_from_args(parse(["--config", str(file)])).job_mode == "container"


async def test_a_finished_jobs_logs_are_what_was_captured_while_its_container_goes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between a job's end (its logs captured, the session Completed) and the removal of its
    container, `podman logs` on the container being removed can answer 0 with nothing: the
    captured text is what a GET ?view=logs returns (once, in CI, the setup job's pip output
    came back empty this way)."""
    runner = ContainerRunner(Engine("podman", {}, "5", True, True), SimulatorConfig())
    session = SimSession(
        id="s1", user="alice", name="j", image="img", type=SessionType.HEADLESS, created=0.0,
        start_at=1.0, end_at=2.0, end_phase=Phase.COMPLETED, deadline_s=3600.0, ttl_s=60.0,
        terminate_s=0.0, fixed=True, cores=1, ram=1, gpus=0, uid=1000, gid=1000, real=True,
        log_text="Successfully installed skop-probe-1.0\n",
    )  # fmt: skip
    runner.running["s1"] = Running(session, "skaha-sim-x-s1")  # its `rm` not finished yet

    async def engine(*args: str, limit_s: float | None = None) -> tuple[int, str]:
        return 0, ""  # the container's logs already gone

    monkeypatch.setattr(runner, "_engine", engine)
    assert await runner.logs(session) == "Successfully installed skop-probe-1.0\n"
