"""The OIDC token source and the auth that asks it per request (platform/oidc.py), on a mock issuer.

Time is a fake monotonic clock moved by the tests; the issuer and Skaha are `httpx.MockTransport`
handlers that record what they were sent.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import ssl
import subprocess
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

from skaha_operator.platform.clients import PlatformClients, PlatformSettings
from skaha_operator.platform.errors import AuthError, CredentialsRefused, Unavailable
from skaha_operator.platform.oidc import (
    DEFAULT_LIFETIME,
    FORCED_REFRESH_INTERVAL,
    MAX_DESCRIPTION_CHARS,
    REFUSAL_COOLDOWN,
    OidcSettings,
    OidcTokenSource,
)
from tests.unit.platform_mock import Recorder, Sleeps, policy

REFRESH = "rt-SECRET-alice-0001"
CLIENT_SECRET = "cs-SECRET-skaha-9f9f"
TOKEN_URL = "http://iam.test/oauth/token"


@dataclass
class Clock:
    """A monotonic clock the test moves."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Issuer:
    """A token endpoint: answers the refresh_token grant, or what the test queued instead."""

    lifetime: float | None = 100.0
    rotate: bool = False
    queued: list[httpx.Response] = field(default_factory=list)
    forms: list[dict[str, str]] = field(default_factory=list)
    auth_headers: list[str | None] = field(default_factory=list)
    discoveries: int = 0
    issued: list[str] = field(default_factory=list)
    issuer: str = "http://iam.test/"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/openid-configuration":
            self.discoveries += 1
            return httpx.Response(200, json={"issuer": self.issuer, "token_endpoint": TOKEN_URL})
        assert request.method == "POST"
        assert str(request.url) == TOKEN_URL
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.forms.append(form)
        self.auth_headers.append(request.headers.get("Authorization"))
        if self.queued:
            return self.queued.pop(0)
        access = f"at-SECRET-{len(self.issued) + 1:03d}"
        self.issued.append(access)
        body: dict[str, object] = {"access_token": access, "token_type": "Bearer"}
        if self.lifetime is not None:
            body["expires_in"] = self.lifetime
        if self.rotate:
            body["refresh_token"] = f"rt-SECRET-rotated-{len(self.issued):03d}"
        return httpx.Response(200, json=body)

    @property
    def grants(self) -> int:
        return len(self.forms)


def source(
    issuer: Issuer,
    clock: Clock,
    *,
    client_auth: str = "client_secret_basic",
    client_secret: str | None = CLIENT_SECRET,
    discover: bool = False,
    **hooks: object,
) -> OidcTokenSource:
    settings = OidcSettings(
        client_id="skaha-operator",
        refresh_token=SecretStr(REFRESH),
        token_url=None if discover else TOKEN_URL,
        issuer="http://iam.test/" if discover else None,
        client_secret=SecretStr(client_secret) if client_secret else None,
        client_auth=client_auth,
        retry=policy(Sleeps(), max_attempts=2),
    )
    return OidcTokenSource(
        settings,
        transport=httpx.MockTransport(issuer),
        clock=clock,
        **hooks,  # type: ignore[arg-type]
    )


async def test_the_grant_is_a_form_post_with_basic_client_auth() -> None:
    issuer, clock = Issuer(), Clock()
    oidc = source(issuer, clock)
    token = await oidc.token()
    assert token.get_secret_value() == "at-SECRET-001"
    assert issuer.forms == [{"grant_type": "refresh_token", "refresh_token": REFRESH}]
    expected = base64.b64encode(f"skaha-operator:{CLIENT_SECRET}".encode()).decode()
    assert issuer.auth_headers == [f"Basic {expected}"]
    # Within 80 % of the lifetime the same token is handed out without asking again.
    clock.now += 79.0
    assert (await oidc.token()).get_secret_value() == "at-SECRET-001"
    assert issuer.grants == 1
    await oidc.aclose()


async def test_client_secret_post_and_a_public_client() -> None:
    issuer, clock = Issuer(), Clock()
    posting = source(issuer, clock, client_auth="client_secret_post")
    await posting.token()
    public = source(issuer, clock, client_secret=None)
    await public.token()
    assert issuer.forms == [
        {
            "grant_type": "refresh_token",
            "refresh_token": REFRESH,
            "client_id": "skaha-operator",
            "client_secret": CLIENT_SECRET,
        },
        {"grant_type": "refresh_token", "refresh_token": REFRESH, "client_id": "skaha-operator"},
    ]
    assert issuer.auth_headers == [None, None]
    await posting.aclose()
    await public.aclose()


@pytest.mark.parametrize(
    ("lifetime", "quiet_until"),
    [(100.0, 80.0), ("3600", 2880.0), (None, DEFAULT_LIFETIME * 0.8)],
    ids=["number", "numeric-string", "missing"],
)
async def test_refreshed_at_80_percent_of_expires_in(lifetime: object, quiet_until: float) -> None:
    issuer, clock = Issuer(lifetime=lifetime), Clock()  # type: ignore[arg-type]
    oidc = source(issuer, clock)
    start = clock.now
    await oidc.token()
    clock.now = start + quiet_until - 0.01
    assert (await oidc.token()).get_secret_value() == "at-SECRET-001"
    clock.now = start + quiet_until
    assert (await oidc.token()).get_secret_value() == "at-SECRET-002"
    assert issuer.grants == 2
    state = oidc.state()
    assert (state.refreshes, state.rotations, state.token_endpoint) == (2, 0, TOKEN_URL)
    assert state.expires_at is not None
    await oidc.aclose()


async def test_concurrent_callers_share_one_refresh() -> None:
    issuer, clock = Issuer(), Clock()
    oidc = source(issuer, clock)
    tokens = await asyncio.gather(*(oidc.token() for _ in range(10)))
    assert {t.get_secret_value() for t in tokens} == {"at-SECRET-001"}
    assert issuer.grants == 1
    await oidc.aclose()


async def test_a_rotated_refresh_token_is_used_next_and_handed_over() -> None:
    issuer, clock = Issuer(rotate=True), Clock()
    handed: list[str] = []

    async def on_rotate(new: SecretStr) -> None:
        handed.append(new.get_secret_value())

    oidc = source(issuer, clock, on_rotate=on_rotate)
    await oidc.token()
    clock.now += 80.0
    await oidc.token()
    assert [f["refresh_token"] for f in issuer.forms] == [REFRESH, "rt-SECRET-rotated-001"]
    assert handed == ["rt-SECRET-rotated-001", "rt-SECRET-rotated-002"]
    assert oidc.state().rotations == 2
    # Every refresh token held is recognised (the Secret may hold any of them).
    assert all(oidc.knows(t) for t in (REFRESH, *handed))
    assert not oidc.knows("rt-someone-elses")
    await oidc.aclose()


async def test_a_failing_write_back_keeps_the_rotated_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    issuer, clock = Issuer(rotate=True), Clock()

    async def on_rotate(new: SecretStr) -> None:
        raise RuntimeError(f"forbidden to write {new.get_secret_value()}")

    oidc = source(issuer, clock, on_rotate=on_rotate)
    await oidc.token()
    clock.now += 80.0
    await oidc.token()
    assert issuer.forms[1]["refresh_token"] == "rt-SECRET-rotated-001"
    messages = [r.getMessage() for r in caplog.records]
    assert any("kept in memory only" in m for m in messages)
    assert not any("rt-SECRET" in m for m in messages)
    await oidc.aclose()


async def test_a_refusal_carries_the_issuers_error_bounded_and_scrubbed() -> None:
    issuer, clock = Issuer(), Clock()
    description = f"refresh token {REFRESH} was revoked\nby an admin " + "x" * 2000
    issuer.queued.append(
        httpx.Response(400, json={"error": "invalid_grant", "error_description": description})
    )
    oidc = source(issuer, clock)
    with pytest.raises(CredentialsRefused) as caught:
        await oidc.token()
    message = caught.value.message
    assert message.startswith("the token endpoint refused the refresh token: invalid_grant: ")
    assert "refresh token *** was revoked by an admin" in message
    assert len(message) < 100 + MAX_DESCRIPTION_CHARS
    assert "\n" not in message
    assert caught.value.status == 400
    texts = [
        str(caught.value),
        repr(caught.value),
        "".join(traceback.format_exception(caught.value)),
    ]
    assert not [t for t in texts if REFRESH in t or CLIENT_SECRET in t]
    await oidc.aclose()


async def test_a_refusal_is_repeated_without_asking_until_the_cooldown_ends() -> None:
    issuer, clock = Issuer(), Clock()
    refusal = {"error": "invalid_grant", "error_description": "Token is not active"}
    issuer.queued += [httpx.Response(400, json=refusal), httpx.Response(401, json=refusal)]
    oidc = source(issuer, clock)
    for _ in range(3):
        with pytest.raises(CredentialsRefused, match="invalid_grant: Token is not active"):
            await oidc.token()
    assert issuer.grants == 1
    clock.now += REFUSAL_COOLDOWN
    with pytest.raises(CredentialsRefused):  # asked again: still refused (a 401 this time)
        await oidc.token()
    clock.now += REFUSAL_COOLDOWN
    assert (await oidc.token()).get_secret_value() == "at-SECRET-001"  # the issuer relented
    assert issuer.grants == 3
    await oidc.aclose()


async def test_a_refusal_reads_the_secret_again_and_tries_a_new_refresh_token() -> None:
    issuer, clock = Issuer(), Clock()
    issuer.queued.append(httpx.Response(400, json={"error": "invalid_grant"}))
    in_secret = [REFRESH]

    async def reload() -> str | None:
        return in_secret[0]

    oidc = source(issuer, clock, reload=reload)
    with pytest.raises(CredentialsRefused, match="invalid_grant"):
        await oidc.token()  # the Secret still holds the refused token: nothing new to try
    assert issuer.grants == 1
    clock.now += REFUSAL_COOLDOWN
    issuer.queued.append(httpx.Response(400, json={"error": "invalid_grant"}))
    in_secret[0] = "rt-SECRET-from-a-human"
    assert (await oidc.token()).get_secret_value() == "at-SECRET-001"
    assert [f["refresh_token"] for f in issuer.forms] == [REFRESH, REFRESH, in_secret[0]]
    assert oidc.knows(in_secret[0])
    await oidc.aclose()


async def test_an_issuer_that_does_not_answer_leaves_a_valid_token_in_use() -> None:
    issuer, clock = Issuer(), Clock()
    oidc = source(issuer, clock)
    await oidc.token()
    clock.now += 80.0
    issuer.queued += [httpx.Response(503, text="down"), httpx.Response(503, text="down")]
    assert (await oidc.token()).get_secret_value() == "at-SECRET-001"  # 20 s still valid
    assert (await oidc.token()).get_secret_value() == "at-SECRET-001"  # asked again 5 s later
    assert issuer.grants == 2
    clock.now += 5.0
    assert (await oidc.token()).get_secret_value() == "at-SECRET-001"
    assert issuer.grants == 3
    clock.now += 20.0  # expired
    issuer.queued.append(httpx.Response(502, text="bad gateway"))
    with pytest.raises(Unavailable) as caught:
        await oidc.token()
    assert (caught.value.service, caught.value.status) == ("oidc", 502)
    assert not caught.value.maybe_committed  # the service request was never sent
    await oidc.aclose()


async def test_a_grant_reply_that_cannot_be_used_is_unavailable() -> None:
    issuer, clock = Issuer(), Clock()
    issuer.queued += [
        httpx.Response(200, json={"token_type": "Bearer"}),
        httpx.Response(200, json={"access_token": "x", "token_type": "DPoP"}),
    ]
    oidc = source(issuer, clock)
    # The issuer answered what cannot be used: try later (never "maybe committed").
    with pytest.raises(Unavailable, match="no access_token") as caught:
        await oidc.token()
    assert not caught.value.maybe_committed
    with pytest.raises(Unavailable, match="is not Bearer"):
        await oidc.token()
    await oidc.aclose()


async def test_discovery_finds_the_token_endpoint_once() -> None:
    issuer, clock = Issuer(), Clock()
    oidc = source(issuer, clock, discover=True)
    await oidc.token()
    clock.now += 80.0
    await oidc.token()
    assert (issuer.discoveries, issuer.grants) == (1, 2)
    assert oidc.state().token_endpoint == TOKEN_URL
    await oidc.aclose()


async def test_discovery_refuses_a_document_of_another_issuer() -> None:
    issuer, clock = Issuer(issuer="http://evil.test/"), Clock()
    oidc = source(issuer, clock, discover=True)
    with pytest.raises(CredentialsRefused, match=r"names issuer 'http://evil\.test/'"):
        await oidc.token()
    assert issuer.grants == 0
    await oidc.aclose()


async def test_a_wrong_issuer_url_is_a_refusal_a_person_must_fix() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="<html>Not Found</html>")

    oidc = OidcTokenSource(
        OidcSettings(
            client_id="c", refresh_token=SecretStr(REFRESH), issuer="http://iam.test/wrong/"
        ),
        transport=httpx.MockTransport(handler),
        clock=Clock(),
    )
    with pytest.raises(CredentialsRefused) as caught:
        await oidc.token()
    assert caught.value.message.startswith("issuer discovery failed: oidc GET ")
    assert "/wrong/.well-known/openid-configuration -> 404" in caught.value.message
    await oidc.aclose()


# -- the clients ask the source per request --------------------------------------------------


@dataclass
class Skaha:
    """A Skaha that accepts only the tokens in `valid`, and echoes what it was sent otherwise."""

    valid: set[str] = field(default_factory=set)
    seen: list[tuple[str, str, bytes]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.seen.append((request.method, token, request.content))
        if token not in self.valid:
            return httpx.Response(401, text=f"Unauthorized: {token}\n")
        if request.method == "POST":
            return httpx.Response(200, text="sess0001\n")
        return httpx.Response(200, json=[])


def clients(oidc: OidcTokenSource, skaha: Skaha) -> PlatformClients:
    settings = PlatformSettings(
        skaha_url="http://skaha.test/skaha",
        cavern_url="http://cavern.test/arc",
        token_source=oidc,
        retry=policy(Sleeps(), max_attempts=2),
    )
    return PlatformClients.create(settings, transport=httpx.MockTransport(skaha))


async def test_every_request_carries_the_current_access_token() -> None:
    issuer, clock = Issuer(), Clock()
    oidc = source(issuer, clock)
    skaha = Skaha(valid={"at-SECRET-001", "at-SECRET-002"})
    platform = clients(oidc, skaha)
    await platform.skaha.list_sessions()
    clock.now += 80.0
    await platform.skaha.list_sessions()
    assert [t for _, t, _ in skaha.seen] == ["at-SECRET-001", "at-SECRET-002"]
    await platform.aclose()
    await oidc.aclose()


async def test_a_401_refreshes_at_once_and_resends_the_same_post_once() -> None:
    from skaha_operator.platform.wire import SessionParams

    issuer, clock = Issuer(), Clock()
    oidc = source(issuer, clock)
    skaha = Skaha(valid={"at-SECRET-002"})  # the first token was revoked early
    platform = clients(oidc, skaha)
    params = SessionParams(name="n1", image="images.canfar.net/skaha/base-notebook:latest")
    assert await platform.skaha.create_session(params) == "sess0001"
    assert [(m, t) for m, t, _ in skaha.seen] == [
        ("POST", "at-SECRET-001"),
        ("POST", "at-SECRET-002"),
    ]
    assert skaha.seen[0][2] == skaha.seen[1][2] != b""  # the same form, sent again
    assert issuer.grants == 2
    await platform.aclose()
    await oidc.aclose()


async def test_a_service_refusing_fresh_tokens_too_is_an_auth_error_not_a_loop() -> None:
    issuer, clock = Issuer(), Clock()
    oidc = source(issuer, clock)
    skaha = Skaha(valid=set())
    recorder = Recorder()
    platform = clients(oidc, skaha)
    platform.skaha._on_call = recorder
    for _ in range(3):
        with pytest.raises(AuthError) as caught:
            await platform.skaha.list_sessions()
        assert caught.value.status == 401
        assert "at-SECRET" not in str(caught.value)  # the echoed token is scrubbed
    # One grant, one forced refresh; within FORCED_REFRESH_INTERVAL no more.
    assert issuer.grants == 2
    assert len(skaha.seen) == 2 + 1 + 1
    clock.now += FORCED_REFRESH_INTERVAL
    with pytest.raises(AuthError):
        await platform.skaha.list_sessions()
    assert issuer.grants == 3
    assert [r.code for r in recorder.records] == ["401"] * 4
    await platform.aclose()
    await oidc.aclose()


async def test_a_refused_refresh_surfaces_from_the_service_call() -> None:
    issuer, clock = Issuer(), Clock()
    issuer.queued.append(httpx.Response(400, json={"error": "invalid_grant"}))
    oidc = source(issuer, clock)
    skaha = Skaha()
    platform = clients(oidc, skaha)
    with pytest.raises(CredentialsRefused, match="invalid_grant"):
        await platform.skaha.list_sessions()
    assert skaha.seen == []  # nothing was sent without a token
    await platform.aclose()
    await oidc.aclose()


async def test_no_oidc_secret_leaks_into_logs_errors_or_reprs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    issuer, clock = Issuer(rotate=True), Clock()
    oidc = source(issuer, clock)
    skaha = Skaha(valid=set())
    platform = clients(oidc, skaha)
    texts: list[str] = []
    with pytest.raises(AuthError) as caught:
        await platform.skaha.list_sessions()
    texts += [str(caught.value), repr(caught.value)]
    texts.append("".join(traceback.format_exception(caught.value)))
    issuer.queued.append(
        httpx.Response(
            400,
            json={
                "error": "invalid_grant",
                "error_description": json.dumps(issuer.forms[-1]) + str(issuer.auth_headers[-1]),
            },
        )
    )
    clock.now += REFUSAL_COOLDOWN + 100
    with pytest.raises(CredentialsRefused) as refused:
        await oidc.token()
    texts += [str(refused.value), "".join(traceback.format_exception(refused.value))]
    texts += [repr(oidc), repr(platform.skaha), repr(platform.skaha._http.auth)]
    texts += [record.getMessage() for record in caplog.records]
    secrets = [REFRESH, CLIENT_SECRET, *issuer.issued, "rt-SECRET-rotated-001"]
    secrets.append("rt-SECRET-rotated-002")
    assert any("***" in t for t in texts)
    leaks = [t for t in texts for s in secrets if s in t]
    assert leaks == []
    await platform.aclose()
    await oidc.aclose()


# -- a site CA is trusted for the issuer too ---------------------------------------------------


class _TokenHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = json.dumps({"access_token": "at-SECRET-tls", "expires_in": 60}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture(scope="module")
def tls_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """An HTTPS token endpoint on loopback whose self-signed certificate is the 'site CA'."""
    d = tmp_path_factory.mktemp("issuer-ca")
    cert, key = d / "ca.crt", d / "ca.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/token", cert.read_text()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


async def test_the_issuer_is_trusted_through_the_platforms_ca_bundle(
    tls_issuer: tuple[str, str],
) -> None:
    url, pem = tls_issuer
    settings = OidcSettings(
        client_id="c",
        refresh_token=SecretStr(REFRESH),
        token_url=url,
        retry=policy(Sleeps(), max_attempts=1),
        timeout=httpx.Timeout(10.0),
    )
    untrusting = OidcTokenSource(settings)
    with pytest.raises(Unavailable, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
        await untrusting.token()
    await untrusting.aclose()
    trusting = OidcTokenSource(dataclasses.replace(settings, ca_pem=pem))
    assert (await trusting.token()).get_secret_value() == "at-SECRET-tls"
    await trusting.aclose()
