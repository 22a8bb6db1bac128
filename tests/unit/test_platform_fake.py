"""The fakes' test controls: queued faults (incl. after commit), forced status, call log."""

from __future__ import annotations

import pytest

from skaha_operator.platform.errors import Conflict, Unavailable
from skaha_operator.platform.fake import FakePlatform
from skaha_operator.platform.wire import Did, RuleSpec, RuleState, SessionParams, SkahaSessionStatus

JOB = SessionParams(name="job", image="images.canfar.net/skaha/terminal:1.1.2")


async def test_fail_after_commit_leaves_exactly_one_ghost() -> None:
    fake = FakePlatform()
    fake.skaha.faults.fail_next(
        "create_session", Unavailable("unexpected exception", status=500), commit=True
    )
    with pytest.raises(Unavailable):
        await fake.skaha.create_session(JOB)
    ghosts = await fake.skaha.list_sessions()
    assert [s.name for s in ghosts] == ["job"]
    await fake.skaha.create_session(JOB)  # the fault was used up
    assert len(await fake.skaha.list_sessions()) == 2
    assert fake.skaha.faults.calls == [
        "create_session",
        "list_sessions",
        "create_session",
        "list_sessions",
    ]


async def test_fail_before_commit_creates_nothing() -> None:
    fake = FakePlatform()
    fake.skaha.faults.fail_next("create_session", Unavailable("down", status=503))
    with pytest.raises(Unavailable):
        await fake.skaha.create_session(JOB)
    assert await fake.skaha.list_sessions() == []


async def test_force_status_pins_a_session() -> None:
    fake = FakePlatform()
    session_id = await fake.skaha.create_session(JOB)
    fake.skaha.force_status(session_id, SkahaSessionStatus.ERROR)
    fake.advance(30)
    assert (await fake.skaha.get_session(session_id)).status is SkahaSessionStatus.ERROR


async def test_sim_env_knobs_shape_a_headless_run() -> None:
    fake = FakePlatform()
    params = JOB.model_copy(update={"env": {"SIM_RUN_SECONDS": "5", "SIM_EXIT_CODE": "3"}})
    session_id = await fake.skaha.create_session(params)
    fake.advance(10 + 5)
    assert (await fake.skaha.get_session(session_id)).status is SkahaSessionStatus.FAILED


async def test_rucio_stuck_and_post_commit_fault() -> None:
    fake = FakePlatform()
    spec = RuleSpec(dids=[Did(scope="s", name="n")], rse_expression="RSE")
    fake.rucio.faults.fail_next("create_rule", Unavailable("boom", status=500), commit=True)
    with pytest.raises(Unavailable):
        await fake.rucio.create_rule(spec)
    (rule,) = await fake.rucio.list_rules_for_did("s", "n")
    fake.rucio.set_stuck(rule.id)
    stuck = await fake.rucio.get_rule(rule.id)
    assert (stuck.state, stuck.locks_stuck_cnt) == (RuleState.STUCK, 1)
    with pytest.raises(Conflict):
        await fake.rucio.create_rule(spec)


def test_fakes_satisfy_the_ports() -> None:
    skaha, cavern, rucio = FakePlatform().ports()
    assert {type(p).__name__ for p in (skaha, cavern, rucio)} == {
        "FakeSkaha",
        "FakeCavern",
        "FakeRucio",
    }
