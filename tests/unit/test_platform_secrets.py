"""No token or password ever appears in a log line, exception text or repr (docs/design.md §4.7)."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable

import httpx
import pytest
from pydantic import SecretStr

from skaha_operator.platform.clients import PlatformClients, PlatformSettings, RucioSettings
from skaha_operator.platform.errors import SkahaError
from skaha_operator.platform.skaha import RegistryAuth
from skaha_operator.platform.wire import Did, RuleSpec, SessionParams
from tests.unit.platform_mock import RUCIO_PASSWORD, RUCIO_TOKEN, TOKEN, Sleeps, policy

REGISTRY_SECRET = "reg-SECRET-pass-31337"
SECRETS = (TOKEN, RUCIO_PASSWORD, RUCIO_TOKEN, REGISTRY_SECRET)


def echoing_faults(request: httpx.Request) -> httpx.Response:
    """A hostile server: every fault echoes the caller's credentials back in its text."""
    echoed = " ".join(f"{k}={v}" for k, v in request.headers.items())
    if request.url.path == "/auth/userpass":
        return httpx.Response(200, headers={"X-Rucio-Auth-Token": RUCIO_TOKEN})
    match request.url.path.rstrip("/").rsplit("/", 1)[-1]:
        case "session":
            return httpx.Response(500, text=f"unexpected exception: {echoed}")
        case "context":
            return httpx.Response(503, text=f"temporarily unavailable: {echoed}")
        case "abcd1234":
            raise httpx.ReadTimeout(f"timed out {echoed}", request=request)
        case "rules":
            return httpx.Response(
                409,
                headers={"ExceptionClass": "DuplicateRule", "ExceptionMessage": echoed[:125]},
                json={"ExceptionClass": "DuplicateRule", "ExceptionMessage": echoed},
            )
    return httpx.Response(400, text=f"bad request {echoed}")


def build() -> PlatformClients:
    settings = PlatformSettings(
        skaha_url="http://skaha.test/skaha",
        cavern_url="http://cavern.test/arc",
        token=SecretStr(TOKEN),
        rucio=RucioSettings(
            url="http://rucio.test",
            account="alice",
            username="alice",
            password=SecretStr(RUCIO_PASSWORD),
        ),
        retry=policy(Sleeps(), max_attempts=3),
    )
    return PlatformClients.create(settings, transport=httpx.MockTransport(echoing_faults))


async def test_no_secret_leaks_under_faults(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clients = build()
    assert clients.rucio is not None
    auth = RegistryAuth("robot", SecretStr(REGISTRY_SECRET))
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: clients.skaha.create_session(
            SessionParams(name="n", image="images.canfar.net/p/x:1"), registry_auth=auth
        ),
        lambda: clients.skaha.context(),
        lambda: clients.skaha.get_session("abcd1234"),
        lambda: clients.cavern.put_file("home/alice/f.txt", b"x"),
        lambda: clients.rucio.create_rule(
            RuleSpec(dids=[Did(scope="s", name="n")], rse_expression="RSE")
        ),
    ]
    texts: list[str] = []
    for call in calls:
        with pytest.raises(SkahaError) as caught:
            await call()
        texts.append(str(caught.value))
        texts.append(repr(caught.value))
        texts.append("".join(traceback.format_exception(caught.value)))
    texts += [repr(clients), repr(clients.skaha), repr(clients.rucio), repr(auth)]
    texts += [record.getMessage() for record in caplog.records]
    await clients.aclose()

    assert len(texts) == 5 * 3 + 4 + len(caplog.records)
    assert any("***" in t for t in texts)  # the echoed secrets were there, and were scrubbed
    for secret in SECRETS:
        leaks = [t for t in texts if secret in t]
        assert leaks == [], f"secret leaked: {leaks[:1]}"


async def test_the_token_is_sent_where_it_belongs() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    settings = PlatformSettings(
        skaha_url="http://skaha.test/skaha", cavern_url="http://c.test/arc", token=SecretStr(TOKEN)
    )
    clients = PlatformClients.create(settings, transport=httpx.MockTransport(handler))
    await clients.skaha.list_sessions()
    await clients.aclose()
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in repr(settings)
