"""Skaha session contract, run against the fake and the simulator.

Facts: docs/platform-api.md §2–§4 and §9.11 a–o.
"""

from __future__ import annotations

import re

import pytest
from pydantic import SecretStr

from skaha_operator.platform.errors import NotFound, Rejected
from skaha_operator.platform.skaha import RegistryAuth
from skaha_operator.platform.wire import (
    ApiVersion,
    SessionParams,
    SessionType,
    SkahaSessionStatus,
)
from tests.contract.conftest import PENDING_S, RUN_S, TERMINATE_S, USER, Target

ID_PATTERN = re.compile(r"[a-z][a-z0-9]{7}")
NOTEBOOK_IMAGE = "images.canfar.net/skaha/astroml:latest"
HEADLESS_IMAGE = "images.canfar.net/skaha/terminal:1.1.2"
SESSION_EXPIRY_S = 345600
TTL_HEADLESS_S = 3600


def notebook(name: str = "nb", **extra: object) -> SessionParams:
    return SessionParams.model_validate(
        {"name": name, "image": NOTEBOOK_IMAGE, "type": SessionType.NOTEBOOK, **extra}
    )


def headless(name: str = "job", **extra: object) -> SessionParams:
    return SessionParams.model_validate(
        {"name": name, "image": HEADLESS_IMAGE, "type": SessionType.HEADLESS, **extra}
    )


async def test_capabilities_say_v1(target: Target) -> None:
    assert (await target.skaha.capabilities()).api_version is ApiVersion.V1


async def test_context_repositories_and_images(target: Target) -> None:
    context = await target.skaha.context()
    assert context.cores.options[:4] == [1, 2, 3, 4]
    assert 8 in context.memory_gb.options
    assert 0 not in context.gpus.options
    assert context.max_interactive_sessions == 5
    assert await target.skaha.repositories() == ["images.canfar.net"]
    every = await target.skaha.images()
    only_headless = await target.skaha.images(SessionType.HEADLESS)
    assert {NOTEBOOK_IMAGE, HEADLESS_IMAGE} <= {i.id for i in every}
    assert {NOTEBOOK_IMAGE, HEADLESS_IMAGE} <= {i.id for i in only_headless}
    assert all("headless" in i.types for i in only_headless)
    assert len(only_headless) < len(every)


async def test_launch_returns_an_id_and_the_session_starts_pending(target: Target) -> None:
    session_id = await target.skaha.create_session(notebook("My-Notebook"))
    assert ID_PATTERN.fullmatch(session_id)
    session = await target.skaha.get_session(session_id)
    assert session.id == session_id
    assert session.status is SkahaSessionStatus.PENDING
    assert session.name == "my-notebook"  # (o) lower-cased
    assert session.type == "notebook"
    assert session.userid == USER
    assert session.start_time is None  # (d) no startTime while Pending
    assert session.expiry_time is None
    assert f"/session/notebook/{session_id}/lab/tree/arc/home/{USER}?token={session_id}" in (
        session.connect_url
    )
    assert await target.skaha.logs(session_id) == ""
    assert (await target.skaha.events(session_id)).strip() == "<none>"


async def test_missing_type_means_headless(target: Target) -> None:
    params = SessionParams(name="untyped", image=HEADLESS_IMAGE)
    session = await target.skaha.get_session(await target.skaha.create_session(params))
    assert session.type == "headless"  # (b)
    assert session.connect_url == ""


async def test_pending_then_running_with_times_logs_and_events(target: Target) -> None:
    session_id = await target.skaha.create_session(notebook())
    target.advance(PENDING_S + 1)
    session = await target.skaha.get_session(session_id)
    assert session.status is SkahaSessionStatus.RUNNING
    assert session.start_time is not None
    assert session.expiry_time is not None
    assert (session.expiry_time - session.start_time).total_seconds() == SESSION_EXPIRY_S
    assert await target.skaha.logs(session_id) != ""
    events = await target.skaha.events(session_id)
    assert "Scheduled" in events
    assert "Started" in events


async def test_headless_completes_then_vanishes_after_its_ttl(target: Target) -> None:
    session_id = await target.skaha.create_session(headless())
    target.advance(PENDING_S + 1)
    assert (await target.skaha.get_session(session_id)).status is SkahaSessionStatus.RUNNING
    target.advance(RUN_S)
    finished = await target.skaha.get_session(session_id)
    assert finished.status is SkahaSessionStatus.COMPLETED
    assert finished.status.is_finished
    target.advance(TTL_HEADLESS_S)
    with pytest.raises(NotFound):  # (k)
        await target.skaha.get_session(session_id)
    assert session_id not in {s.id for s in await target.skaha.list_sessions()}


async def test_renew_extends_interactive_expiry_only(target: Target) -> None:
    nb = await target.skaha.create_session(notebook())
    job = await target.skaha.create_session(headless(env={"SIM_RUN_SECONDS": "100000"}))
    target.advance(PENDING_S + 1000)
    before_nb = (await target.skaha.get_session(nb)).expiry_time
    before_job = (await target.skaha.get_session(job)).expiry_time
    await target.skaha.renew(nb)
    await target.skaha.renew(job)
    after_nb = (await target.skaha.get_session(nb)).expiry_time
    after_job = (await target.skaha.get_session(job)).expiry_time
    assert before_nb is not None
    assert after_nb is not None
    assert (after_nb - before_nb).total_seconds() == PENDING_S + 1000
    assert after_job == before_job  # (j) headless renew is a no-op


async def test_renew_of_a_finished_session_is_rejected(target: Target) -> None:
    job = await target.skaha.create_session(headless())
    target.advance(PENDING_S + RUN_S + 1)
    with pytest.raises(Rejected, match=f"No active job for user .* with session {job}"):
        await target.skaha.renew(job)


async def test_delete_terminates_then_the_session_is_gone(target: Target) -> None:
    session_id = await target.skaha.create_session(notebook())
    target.advance(PENDING_S + 1)
    await target.skaha.delete_session(session_id)
    assert (await target.skaha.get_session(session_id)).status is SkahaSessionStatus.TERMINATING
    target.advance(TERMINATE_S + 1)
    with pytest.raises(NotFound, match=f"session {session_id} not found"):
        await target.skaha.get_session(session_id)
    await target.skaha.delete_session(session_id)  # (h) deleting again is not an error
    await target.skaha.delete_session("zzzz9999")


async def test_list_filters_by_type_and_status(target: Target) -> None:
    nb = await target.skaha.create_session(notebook())
    target.advance(PENDING_S + 1)
    job = await target.skaha.create_session(headless())
    headless_ids = {s.id for s in await target.skaha.list_sessions(type=SessionType.HEADLESS)}
    running_ids = {
        s.id for s in await target.skaha.list_sessions(status=SkahaSessionStatus.RUNNING)
    }
    all_ids = {s.id for s in await target.skaha.list_sessions()}
    assert headless_ids == {job}
    assert running_ids == {nb}
    assert all_ids == {nb, job}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            notebook(image="docker.io/evil/x:1"),
            "session image 'docker.io/evil/x:1' must come from one of [images.canfar.net]",
        ),
        (notebook(cores=99), "Invalid value for 'cores': 99"),
        (notebook(ram=3), "Invalid value for 'ram': 3"),
        (notebook(gpus=0), "Invalid value for 'gpus': 0"),  # (g)
        (notebook(name="bad_name"), "name can only contain alpha-numeric chars and '-'"),
        (
            notebook(image="images.canfar.net/private/secret:1"),
            "No authentication provided for unknown or private image.  Use x-skaha-registry-auth "
            "request header with base64Encode(username:secret).",
        ),
    ],
)
async def test_validation_messages(target: Target, params: SessionParams, message: str) -> None:
    with pytest.raises(Rejected) as caught:
        await target.skaha.create_session(params)
    assert caught.value.message == message
    assert caught.value.status == 400


async def test_private_image_launches_with_registry_auth(target: Target) -> None:
    auth = RegistryAuth("robot", SecretStr("s3cret"))
    params = notebook(image="images.canfar.net/private/secret:1")
    session_id = await target.skaha.create_session(params, registry_auth=auth)
    assert (await target.skaha.get_session(session_id)).image == params.image


async def test_interactive_cap_counts_only_interactive_sessions(target: Target) -> None:
    for n in range(5):
        await target.skaha.create_session(notebook(f"nb-{n}"))
    with pytest.raises(Rejected) as caught:
        await target.skaha.create_session(notebook("nb-6"))
    assert caught.value.message == f"User {USER} has reached the maximum of 5 active sessions."
    await target.skaha.create_session(headless())  # (f) headless is uncapped


async def test_long_names_are_cut_to_63_lowercase_chars(target: Target) -> None:
    name = "A" * 62 + "-B" + "c" * 10
    session_id = await target.skaha.create_session(notebook(name))
    stored = (await target.skaha.get_session(session_id)).name
    assert stored == "a" * 62  # 63 chars would end in '-', which is trimmed


async def test_fixed_resources_report_requested_values(target: Target) -> None:
    fixed = await target.skaha.create_session(notebook("fixed", cores=2, ram=8))
    flexible = await target.skaha.create_session(notebook("flex"))
    target.advance(PENDING_S + 1)
    f = await target.skaha.get_session(fixed)
    x = await target.skaha.get_session(flexible)
    assert (f.is_fixed_resources, f.requested_ram, f.requested_cpu_cores) == (True, "8.59", "2")
    assert (x.is_fixed_resources, x.requested_ram, x.requested_cpu_cores) == (False, None, None)


async def test_unknown_session_is_not_found(target: Target) -> None:
    with pytest.raises(NotFound):
        await target.skaha.get_session("zzzz9999")
    with pytest.raises(NotFound):
        await target.skaha.logs("zzzz9999")
