"""SkahaClient wire behaviour against a mock transport (docs/platform-api.md §1–§4)."""

from __future__ import annotations

import base64
from urllib.parse import parse_qsl

import httpx
import pytest
from pydantic import SecretStr

from skaha_operator.platform.errors import NotFound
from skaha_operator.platform.skaha import RegistryAuth
from skaha_operator.platform.wire import (
    STANDARD_ID_V0,
    STANDARD_ID_V1,
    ApiVersion,
    SessionParams,
    SessionType,
    SkahaSessionStatus,
)
from tests.unit.platform_mock import TOKEN, skaha, text

CAPABILITIES = """<?xml version="1.0" encoding="UTF-8"?>
<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0">
  <capability standardID="ivo://ivoa.net/std/VOSI#capabilities"/>
  <capability standardID="{std}"/>
</vosi:capabilities>"""


async def test_launch_is_a_form_post_and_returns_the_text_id() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return text(200, "tfln7ot5\n")

    params = SessionParams(
        name="My-Run",
        image="images.canfar.net/skaha/terminal:1.1.2",
        type=SessionType.HEADLESS,
        cores=2,
        ram=8,
        cmd="python",
        args="run.py --fast",
        env={"A": "1", "B": "x=y"},
    )
    session_id = await skaha(handler).create_session(params)
    assert session_id == "tfln7ot5"
    (request,) = seen
    assert request.method == "POST"
    assert request.url.path == "/skaha/v1/session"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert parse_qsl(request.content.decode()) == [
        ("name", "My-Run"),
        ("image", "images.canfar.net/skaha/terminal:1.1.2"),
        ("type", "headless"),
        ("cores", "2"),
        ("ram", "8"),
        ("cmd", "python"),
        ("args", "run.py --fast"),
        ("env", "A=1"),
        ("env", "B=x=y"),
    ]
    assert "x-skaha-registry-auth" not in request.headers


async def test_absent_type_is_not_sent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return text(200, "abcd1234\n")

    await skaha(handler).create_session(SessionParams(name="n", image="images.canfar.net/a:1"))
    assert dict(parse_qsl(seen[0].content.decode())) == {
        "name": "n",
        "image": "images.canfar.net/a:1",
    }


async def test_private_image_sends_registry_auth_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return text(200, "abcd1234\n")

    auth = RegistryAuth("robot", SecretStr("hunter2"))
    params = SessionParams(name="n", image="images.canfar.net/private/x:1")
    await skaha(handler).create_session(params, registry_auth=auth)
    header = seen[0].headers["x-skaha-registry-auth"]
    assert base64.b64decode(header) == b"robot:hunter2"
    assert "hunter2" not in repr(auth)


async def test_list_sends_filters_and_parses_sparse_sessions() -> None:
    seen: list[httpx.Request] = []
    payload = [
        {"id": "aaaa1111", "status": "Pending", "type": "notebook", "name": "n1"},
        {
            "id": "bbbb2222",
            "status": "Running",
            "type": "notebook",
            "name": "n2",
            "userid": "alice",
            "startTime": "2024-08-05T18:33:40Z",
            "expiryTime": "2024-08-09T18:33:40Z",
            "connectURL": "https://h/session/notebook/bbbb2222/lab/tree/arc/home/alice?token=bbbb2222",
            "requestedRAM": "8.59",
            "supplementalGroups": [1, 2],
            "isFixedResources": True,
            "somethingNew": {"x": 1},
        },
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=payload)

    sessions = await skaha(handler).list_sessions(
        type=SessionType.NOTEBOOK, status=SkahaSessionStatus.RUNNING
    )
    assert dict(seen[0].url.params) == {"type": "notebook", "status": "Running"}
    assert [s.id for s in sessions] == ["aaaa1111", "bbbb2222"]
    assert sessions[0].start_time is None
    assert sessions[0].connect_url == ""
    assert sessions[1].start_time is not None
    assert sessions[1].start_time.year == 2024
    assert sessions[1].requested_ram == "8.59"
    assert sessions[1].supplemental_groups == [1, 2]


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        ("Pending", SkahaSessionStatus.PENDING),
        ("Succeeded", SkahaSessionStatus.SUCCEEDED),
        ("Completed", SkahaSessionStatus.COMPLETED),
        ("Terminating", SkahaSessionStatus.TERMINATING),
        ("Error", SkahaSessionStatus.ERROR),
        ("running", SkahaSessionStatus.RUNNING),
        ("CrashLoopBackOff", SkahaSessionStatus.UNKNOWN),
    ],
)
async def test_both_eras_status_vocabulary(wire: str, status: SkahaSessionStatus) -> None:
    doc = {"id": "abcd1234", "status": wire, "appid": "<none>", "requestedRAM": "8G"}
    session = await skaha(lambda _: httpx.Response(200, json=doc)).get_session("abcd1234")
    assert session.status is status


async def test_missing_status_is_unknown() -> None:
    session = await skaha(lambda _: httpx.Response(200, json={"id": "x"})).get_session("x")
    assert session.status is SkahaSessionStatus.UNKNOWN


@pytest.mark.parametrize(
    ("std", "version"), [(STANDARD_ID_V1, ApiVersion.V1), (STANDARD_ID_V0, ApiVersion.V0)]
)
async def test_capabilities_detect_the_api_version(std: str, version: ApiVersion) -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path.endswith("/capabilities"):
            return httpx.Response(200, text=CAPABILITIES.format(std=std))
        return httpx.Response(200, json=[])

    client = skaha(handler)
    assert await client.detect_api_version() is version
    await client.list_sessions()
    assert paths == ["/skaha/capabilities", f"/skaha/{version.value}/session"]


async def test_capabilities_without_a_session_standard_keep_v1() -> None:
    body = CAPABILITIES.format(std="ivo://ivoa.net/std/VOSI#availability")
    client = skaha(lambda _: httpx.Response(200, text=body))
    caps = await client.capabilities()
    assert caps.api_version is None
    assert await client.detect_api_version() is ApiVersion.V1


async def test_images_context_and_repositories() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        match request.url.path:
            case "/skaha/v1/image":
                assert request.url.params["type"] == "headless"
                return httpx.Response(
                    200, json=[{"id": "images.canfar.net/skaha/t:1", "types": ["headless"]}]
                )
            case "/skaha/v1/context":
                return httpx.Response(
                    200,
                    json={
                        "cores": {"default": 2, "defaultRequest": 1, "options": [1, 2, 4]},
                        "memoryGB": {"default": 8, "options": [1, 2, 8]},
                        "gpus": {"options": [1, 2]},
                        "maxInteractiveSessions": 5,
                    },
                )
            case "/skaha/v1/repository":
                return httpx.Response(200, json=["images.canfar.net"])
        return text(404, "no such route")

    client = skaha(handler)
    images = await client.images(SessionType.HEADLESS)
    context = await client.context()
    assert [i.id for i in images] == ["images.canfar.net/skaha/t:1"]
    assert images[0].digest is None
    assert context.cores.options == [1, 2, 4]
    assert context.memory_gb.default == 8
    assert context.gpus.options == [1, 2]
    assert context.max_interactive_sessions == 5
    assert await client.repositories() == ["images.canfar.net"]


async def test_logs_events_and_renew_use_views_and_actions() -> None:
    seen: list[tuple[str, str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        params = request.content.decode() if request.method == "POST" else str(request.url.params)
        seen.append((request.method, request.url.path, params))
        if request.method == "POST":
            assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        if request.method == "POST":
            return text(200)
        return text(200, "<none>\n" if "events" in str(request.url) else "hello\n")

    client = skaha(handler)
    assert await client.logs("abcd1234") == "hello\n"
    assert await client.events("abcd1234") == "<none>\n"
    await client.renew("abcd1234")
    assert seen == [
        ("GET", "/skaha/v1/session/abcd1234", "view=logs"),
        ("GET", "/skaha/v1/session/abcd1234", "view=events"),
        ("POST", "/skaha/v1/session/abcd1234", "action=renew"),
    ]


@pytest.mark.parametrize("status", [200, 404])
async def test_delete_accepts_both_eras_answer_for_unknown_ids(status: int) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        return text(status, "" if status == 200 else "session abcd1234 not found")

    await skaha(handler).delete_session("abcd1234")
    assert seen == ["DELETE"]


async def test_get_of_unknown_session_is_not_found() -> None:
    client = skaha(lambda _: text(404, "session zzzz9999 not found"))
    with pytest.raises(NotFound, match="session zzzz9999 not found"):
        await client.get_session("zzzz9999")


async def test_session_ids_cannot_escape_their_path_segment() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        return httpx.Response(200, json={"id": "x"})

    await skaha(handler).get_session("../image")
    assert paths == ["/skaha/v1/session/..%2Fimage"]
