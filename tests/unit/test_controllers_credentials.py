"""A platform's credential (controllers/credentials.py): the static token, or an OIDC source kept
across client rebuilds, replaced when the spec or the Secret says so; rotated refresh tokens
written back to the Secret only while it holds one of ours.
"""

from __future__ import annotations

import functools
from typing import Any, cast

import httpx
import pytest

from skaha_operator.controllers.credentials import CredentialBook, credential_secret_names
from skaha_operator.domain.credentials import CredentialType
from skaha_operator.domain.skaha_platform import SkahaPlatform
from skaha_operator.k8s.api import Kube, SecretError
from skaha_operator.platform.oidc import OidcTokenSource
from tests.unit.test_platform_oidc import REFRESH, TOKEN_URL, Issuer

NS = "science"


class SecretKube:
    """Secrets in memory: read one key; replace one key only while `ours` says so."""

    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, str]] = {}
        self.writes: list[tuple[str, str]] = []

    async def read_secret(self, namespace: str, name: str, key: str) -> str:
        data = self.secrets.get(name)
        if data is None or key not in data:
            raise SecretError(f"Secret {namespace}/{name} has no key {key!r}")
        return data[key]

    async def replace_secret_key(
        self, namespace: str, name: str, key: str, value: str, ours: Any
    ) -> bool:
        current = self.secrets.get(name, {}).get(key)
        if current is None or not ours(current):
            return False
        self.secrets[name][key] = value
        self.writes.append((name, key))
        return True


def platform(oidc: dict[str, Any] | None = None, uid: str = "u1") -> SkahaPlatform:
    spec: dict[str, Any] = {
        "skaha": {"url": "http://skaha.test/skaha"},
        "cavern": {"url": "http://cavern.test/arc", "user": "alice"},
    }
    if oidc is None:
        spec["tokenSecretRef"] = {"name": "skaha-token"}
    else:
        spec["oidc"] = oidc
    return SkahaPlatform.model_validate(
        {
            "apiVersion": "skaha.broker.dev/v1alpha1",
            "kind": "SkahaPlatform",
            "metadata": {"name": "p", "namespace": NS, "uid": uid, "generation": 1},
            "spec": spec,
        }
    )


def oidc_spec(**changes: Any) -> dict[str, Any]:
    return {
        "tokenUrl": TOKEN_URL,
        "clientId": "skaha-operator",
        "refreshTokenSecretRef": {"name": "oidc"},
        **changes,
    }


def book(kube: SecretKube, issuer: Issuer) -> CredentialBook:
    make = functools.partial(OidcTokenSource, transport=httpx.MockTransport(issuer))
    return CredentialBook(cast(Kube, kube), make_source=make)


async def test_a_static_token_is_read_from_its_secret() -> None:
    kube = SecretKube()
    kube.secrets["skaha-token"] = {"token": "tok-alice"}
    creds = book(kube, Issuer())
    token, source = await creds.resolve(platform())
    assert (token.get_secret_value(), source) == ("tok-alice", None)
    assert creds.view(platform()).type == CredentialType.TOKEN
    assert credential_secret_names(platform()) == ["skaha-token"]


async def test_an_oidc_source_is_kept_until_the_spec_or_the_secret_says_otherwise() -> None:
    kube, issuer = SecretKube(), Issuer(rotate=True)
    kube.secrets["oidc"] = {"refreshToken": REFRESH, "clientSecret": "cs-1"}
    creds = book(kube, issuer)
    p = platform(oidc_spec())
    token, first = await creds.resolve(p)
    assert token.get_secret_value() == ""
    assert first is not None
    assert (await creds.resolve(p))[1] is first
    # The source rotated the refresh token and wrote it back: the Secret is still "ours".
    await first.token()
    assert kube.secrets["oidc"]["refreshToken"] == "rt-SECRET-rotated-001"
    assert kube.writes == [("oidc", "refreshToken")]
    assert (await creds.resolve(p))[1] is first
    # Every change below makes a new source.
    changes = [
        (lambda: kube.secrets["oidc"].update(refreshToken="rt-from-a-human"), p),
        (lambda: None, platform(oidc_spec(clientId="other"))),
        (lambda: None, platform(oidc_spec(clientId="other"), uid="u2")),
        (
            lambda: None,
            platform(oidc_spec(clientId="other", clientSecretRef={"name": "oidc"}), uid="u2"),
        ),
        (
            lambda: kube.secrets["oidc"].update(clientSecret="cs-2"),
            platform(oidc_spec(clientId="other", clientSecretRef={"name": "oidc"}), uid="u2"),
        ),
    ]
    seen = [first]
    for change, edited in changes:
        change()
        _, source = await creds.resolve(edited)
        assert source is not None
        assert all(source is not s for s in seen)
        seen.append(cast(OidcTokenSource, source))
        assert (await creds.resolve(edited))[1] is source
    await creds.aclose()


async def test_write_back_never_overwrites_a_value_that_is_not_ours() -> None:
    kube, issuer = SecretKube(), Issuer(rotate=True)
    kube.secrets["oidc"] = {"refreshToken": REFRESH}
    creds = book(kube, issuer)
    _, source = await creds.resolve(platform(oidc_spec()))
    assert source is not None
    kube.secrets["oidc"]["refreshToken"] = "rt-from-a-human"  # after the source was made
    await source.token()
    assert kube.secrets["oidc"]["refreshToken"] == "rt-from-a-human"
    assert kube.writes == []
    await creds.aclose()


async def test_without_write_back_the_rotated_token_stays_in_memory() -> None:
    kube, issuer = SecretKube(), Issuer(rotate=True)
    kube.secrets["oidc"] = {"refreshToken": REFRESH}
    creds = book(kube, issuer)
    p = platform(oidc_spec(writeBack=False))
    _, source = await creds.resolve(p)
    assert source is not None
    await source.token()
    assert kube.secrets["oidc"]["refreshToken"] == REFRESH
    assert kube.writes == []
    # The source still recognises the Secret's (older) token as its own: it is kept.
    assert (await creds.resolve(p))[1] is source
    view = creds.view(p)
    assert view.type == CredentialType.OIDC
    assert view.expires_at is not None
    assert view.token_endpoint == TOKEN_URL
    await creds.aclose()


async def test_a_missing_refresh_token_secret_is_a_secret_error() -> None:
    creds = book(SecretKube(), Issuer())
    with pytest.raises(SecretError, match="has no key 'refreshToken'"):
        await creds.resolve(platform(oidc_spec()))
    assert creds.view(platform(oidc_spec())).expires_at is None


def test_the_secrets_held_for_a_platform() -> None:
    spec = oidc_spec(clientSecretRef={"name": "oidc", "key": "secret"})
    assert credential_secret_names(platform(spec)) == ["oidc"]
    spec = oidc_spec(clientSecretRef={"name": "client"})
    assert credential_secret_names(platform(spec)) == ["oidc", "client"]


async def test_a_changed_secret_is_noticed_before_the_next_resolve() -> None:
    kube, issuer = SecretKube(), Issuer(rotate=True)
    kube.secrets["oidc"] = {"refreshToken": REFRESH, "clientSecret": "cs-1"}
    creds = book(kube, issuer)
    spec = oidc_spec(clientSecretRef={"name": "oidc"})
    p = platform(spec)
    assert not await creds.secret_changed(p)  # nothing made yet: nothing to compare
    _, source = await creds.resolve(p)
    assert source is not None
    await cast(OidcTokenSource, source).token()  # rotates and writes back
    assert not await creds.secret_changed(p)
    kube.secrets["oidc"]["clientSecret"] = "cs-2"
    assert await creds.secret_changed(p)
    kube.secrets["oidc"]["clientSecret"] = "cs-1"
    kube.secrets["oidc"]["refreshToken"] = "rt-from-a-human"
    assert await creds.secret_changed(p)
    kube.secrets["oidc"]["refreshToken"] = REFRESH  # the first one is still recognised
    assert not await creds.secret_changed(p)
    del kube.secrets["oidc"]
    assert not await creds.secret_changed(p)  # unreadable: resolving again reports it
    await creds.aclose()
