"""Launch semantics over HTTP: docs/platform-api.md §2, §9.1–§9.3, §9.11 a, b, c, f, g, o."""

from __future__ import annotations

import re

import pytest

from skaha_operator.simulator import Simulator
from tests.simulator.helpers import FORM, IMAGE, Api

ID_RE = re.compile(r"^[a-z][a-z0-9]{7}$")


async def test_launch_replies_200_text_plain_id_newline(alice: Api) -> None:
    """(a) 200 text/plain `<id>\\n`, X-VO-Authenticated, id `[a-z][a-z0-9]{7}` (item 3)."""
    reply = await alice.launch(image=IMAGE, name="nb", type="notebook")
    assert reply.status == 200
    assert reply.content_type == "text/plain"
    assert reply.text.endswith("\n")
    assert ID_RE.match(reply.text.rstrip("\n"))
    assert reply.headers["X-VO-Authenticated"] == "alice"


async def test_missing_type_defaults_to_headless(alice: Api) -> None:
    """(b) v1 defaults a missing type to headless, not notebook."""
    sid = await alice.launch_id(name="job")
    doc = (await alice.session(sid)).json()
    assert doc["type"] == "headless"
    assert doc["connectURL"] == ""


async def test_query_params_ignored_without_form_content_type(alice: Api) -> None:
    """(c) without the urlencoded content type, query parameters are not read (item 1)."""
    reply = await alice.call(
        "POST", "/skaha/v1/session", params={"image": IMAGE, "name": "x", "type": "notebook"}
    )
    assert reply.status == 400
    assert reply.text == "Missing parameter 'image'\n"
    assert reply.content_type == "text/plain"


async def test_form_body_and_query_are_merged(alice: Api) -> None:
    """Item 1: query and form body merge when the content type is urlencoded."""
    reply = await alice.call(
        "POST",
        "/skaha/v1/session",
        params={"image": IMAGE},
        data={"name": "merged", "type": "notebook"},
    )
    assert reply.status == 200, reply.text
    doc = (await alice.session(reply.text.strip())).json()
    assert (doc["name"], doc["type"]) == ("merged", "notebook")


async def test_parameter_names_are_case_insensitive(alice: Api) -> None:
    """(c) `IMAGE`, `Name`, `TYPE` are the same parameters as their lower-case forms."""
    reply = await alice.launch(IMAGE=IMAGE, Name="Upper", TYPE="NoteBook")
    assert reply.status == 200, reply.text
    doc = (await alice.session(reply.text.strip())).json()
    assert doc["type"] == "notebook"


async def test_lenient_content_type_knob(sim: Simulator, alice: Api) -> None:
    """`strict_content_type=False` reads the query even without the form header."""
    sim.configure(strict_content_type=False)
    reply = await alice.call("POST", "/skaha/v1/session", params={"image": IMAGE, "name": "x"})
    assert reply.status == 200, reply.text


async def test_repeated_env_is_kept(sim: Simulator, alice: Api) -> None:
    """Item 1: `env` may repeat; every value reaches the session."""
    sid = await alice.launch_id(env=["A=1", "B=2", "SIM_LOG=hello"])
    session = sim.state.sessions.find(sid)
    assert session.env == ["A=1", "B=2", "SIM_LOG=hello"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"name": "x"}, "Missing parameter 'image'"),
        (
            {"image": "docker.io/library/python:3", "name": "x"},
            "session image 'docker.io/library/python:3' must come from one of [images.canfar.net]",
        ),
        ({"image": IMAGE, "name": "x", "type": "jupyter"}, "Invalid session type: jupyter"),
        ({"image": IMAGE, "name": "x", "cores": "abc"}, "Invalid value for 'cores': abc"),
        ({"image": IMAGE, "name": "x", "cores": "64"}, "Invalid value for 'cores': 64"),
        ({"image": IMAGE, "name": "x", "ram": "3"}, "Invalid value for 'ram': 3"),
        ({"image": IMAGE}, "Missing parameter 'name'"),
        ({"image": IMAGE, "name": "  "}, "Missing parameter 'name'"),
        ({"image": IMAGE, "name": "bad_name"}, "name can only contain alpha-numeric chars and '-'"),
        ({"image": IMAGE, "name": "x", "gpus": "0"}, "Invalid value for 'gpus': 0"),
        ({"image": IMAGE, "name": "x", "gpus": "29"}, "Invalid value for 'gpus': 29"),
    ],
)
async def test_validation_messages(alice: Api, params: dict[str, str], message: str) -> None:
    """(g) and item 2: each check's exact 400 text/plain message."""
    reply = await alice.launch(**params)
    assert reply.status == 400
    assert reply.text == message + "\n"


async def test_validation_order_image_before_type_before_name(alice: Api) -> None:
    """Item 2: the first failing check in §2 order decides the message."""
    reply = await alice.launch(image="quay.io/x:1", type="nope", name="bad_name")
    assert reply.text.startswith("session image 'quay.io/x:1'")
    reply = await alice.launch(image=IMAGE, type="nope", name="bad_name")
    assert reply.text == "Invalid session type: nope\n"
    reply = await alice.launch(image=IMAGE, cores="99", name="bad_name")
    assert reply.text == "Invalid value for 'cores': 99\n"
    reply = await alice.launch(image=IMAGE, name="bad_name", gpus="0")
    assert reply.text == "name can only contain alpha-numeric chars and '-'\n"


async def test_fractional_cores_use_integer_part(alice: Api) -> None:
    """§2: cores is a double whose int part must be an option (2.5 → 2 is allowed)."""
    reply = await alice.launch(image=IMAGE, name="x", cores="2.5")
    assert reply.status == 200, reply.text


async def test_private_image_needs_registry_auth(alice: Api) -> None:
    """§2: an image outside the public cache needs x-skaha-registry-auth."""
    private = "images.canfar.net/private/tool:1"
    reply = await alice.launch(image=private, name="x")
    assert reply.status == 400
    assert reply.text.startswith("No authentication provided for unknown or private image.  Use")
    reply = await alice.call(
        "POST",
        "/skaha/v1/session",
        params={"image": private, "name": "x"},
        headers={**FORM, "x-skaha-registry-auth": "dXNlcjpzZWNyZXQ="},
    )
    assert reply.status == 200, reply.text


async def test_interactive_cap_counts_only_interactive(sim: Simulator, alice: Api) -> None:
    """(f) 5 interactive sessions fill the cap; headless ones never count and stay launchable."""
    for i in range(3):
        await alice.launch_id(name=f"job{i}")
    for i in range(5):
        await alice.launch_id(name=f"nb{i}", type="notebook")
    reply = await alice.launch(image=IMAGE, name="nb6", type="notebook")
    assert reply.status == 400
    assert reply.text == "User alice has reached the maximum of 5 active sessions.\n"
    assert (await alice.launch(image=IMAGE, name="more-headless")).status == 200


async def test_cap_frees_when_a_session_is_deleted(sim: Simulator, alice: Api) -> None:
    """Terminating sessions are not Pending/Running, so they leave the cap."""
    ids = [await alice.launch_id(name=f"nb{i}", type="notebook") for i in range(5)]
    assert (await alice.launch(image=IMAGE, name="x", type="notebook")).status == 400
    assert (await alice.call("DELETE", f"/skaha/v1/session/{ids[0]}")).status == 200
    assert (await alice.launch(image=IMAGE, name="x", type="notebook")).status == 200


async def test_cap_is_per_user(alice: Api, bob: Api) -> None:
    """The cap counts the caller's own sessions."""
    for i in range(5):
        await alice.launch_id(name=f"nb{i}", type="notebook")
    assert (await bob.launch(image=IMAGE, name="x", type="notebook")).status == 200


async def test_name_is_lower_cased_and_cut_to_63(alice: Api) -> None:
    """(o) name lower-cased, cut to 63 chars, trailing non-alphanumerics trimmed."""
    long_name = "A" * 62 + "-B" + "c" * 10
    sid = await alice.launch_id(name=long_name)
    name = (await alice.session(sid)).json()["name"]
    assert name == "a" * 62
    assert len(name) <= 63


async def test_launch_allocates_the_cavern_home(sim: Simulator, alice: Api) -> None:
    """§7: Skaha ensures the user's home node on launch."""
    await alice.launch_id(name="x")
    home = await alice.call("GET", "/arc/nodes/home/alice")
    assert home.status == 200
    assert 'uri="vos://cadc.nrc.ca~arc/home/alice"' in home.text
