"""A SkahaPlatform's credential: its static token, or an OIDC token source that outlives clients.

`CredentialBook.resolve` reads what a platform names, only from Secrets in the platform's own
namespace (docs/design.md §4.7): the bearer token of `tokenSecretRef`, or for `oidc` the refresh
token (and client secret) from which an `OidcTokenSource` (platform/oidc.py) makes access tokens.

The source of an OIDC platform is kept per platform across client rebuilds (PlatformCache
entries expire, and are dropped after a 401), because it holds what the Secret may not: the
current access token and a refresh token the issuer rotated. It is replaced only when the
platform is a new object, its `oidc` spec or client secret changed, or its Secret holds a
refresh token the source never held (a human put a new one there).

A rotated refresh token is written back to its Secret when `oidc.writeBack` is true (the
default): a patch of that one key, guarded by the resourceVersion and made only while the Secret
still holds a refresh token this source held, so a human's newer value always wins
(docs/install.md §3.1). The operator's RBAC already has `patch` on Secrets (their finalizer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import SecretStr

from skaha_operator.domain.credentials import CredentialType, OidcCredentials, PlatformCredentials
from skaha_operator.domain.skaha_platform import SkahaPlatform
from skaha_operator.k8s.api import Kube, SecretError
from skaha_operator.platform.base import CallRecorder, make_timeout
from skaha_operator.platform.hosts import HostPolicy
from skaha_operator.platform.oidc import (
    OidcSettings,
    OidcTokenSource,
    ReloadHook,
    RotateHook,
    TokenSource,
    fingerprint,
)

log = logging.getLogger(__name__)

Slot = tuple[str, str]  # (namespace, platform name)
SourceFactory = Callable[..., OidcTokenSource]  # OidcTokenSource, or one on a test transport


def credential_secret_names(platform: SkahaPlatform) -> list[str]:
    """The Secrets holding the platform's Skaha credential (token, refresh token, client secret)."""
    spec = platform.spec
    if spec.oidc is not None:
        names = [spec.oidc.refresh_token_secret_ref.name]
        if spec.oidc.client_secret_ref is not None:
            names.append(spec.oidc.client_secret_ref.name)
        return list(dict.fromkeys(names))
    return [spec.token_secret_ref.name] if spec.token_secret_ref is not None else []


@dataclass
class _Held:
    key: tuple[object, ...]
    source: OidcTokenSource


@dataclass(frozen=True)
class _Inputs:
    key: tuple[object, ...]
    refresh: str
    client_secret: SecretStr | None
    ca_pem: str | None = field(repr=False)


def _current(held: _Held, inputs: _Inputs) -> bool:
    """The held source fits: same platform, spec, client secret and CA, a refresh token it held."""
    return held.key == inputs.key and held.source.knows(inputs.refresh)


class CredentialBook:
    """The credential of each platform; OIDC token sources kept per (namespace, name)."""

    def __init__(
        self,
        kube: Kube,
        *,
        on_call: CallRecorder | None = None,
        http_timeout: float = 30.0,
        ca_file: str | None = None,
        make_source: SourceFactory = OidcTokenSource,
        hosts: HostPolicy | None = None,
    ) -> None:
        self.kube = kube
        self.hosts = hosts  # the operator's --allowed-hosts, for the issuer too
        self.ca_file = ca_file  # the operator's --ca-bundle; a platform may add its own
        self._make_source = make_source
        self.on_call = on_call
        self.http_timeout = http_timeout
        self._held: dict[Slot, _Held] = {}
        self._retired: list[OidcTokenSource] = []  # replaced sources, closed at shut-down

    async def resolve(self, platform: SkahaPlatform) -> tuple[SecretStr, TokenSource | None]:
        """(static token, None) or (empty, the OIDC source); SecretError if a Secret is missing."""
        spec = platform.spec
        if spec.oidc is not None:
            return SecretStr(""), await self._source(platform, spec.oidc)
        ref = spec.token_secret_ref
        if ref is None:  # the CRD's CEL rule requires one of the two
            raise SecretError("the platform names no credential: set tokenSecretRef or oidc")
        ns = str(platform.metadata["namespace"])
        return SecretStr(await self.kube.read_secret(ns, ref.name, ref.key)), None

    def view(self, platform: SkahaPlatform) -> PlatformCredentials:
        """What status may show of the platform's credential (no secret)."""
        if platform.spec.oidc is None:
            return PlatformCredentials(type=CredentialType.TOKEN)
        held = self._held.get(_slot(platform))
        if held is None:
            return PlatformCredentials(type=CredentialType.OIDC)
        state = held.source.state()
        return PlatformCredentials(
            type=CredentialType.OIDC,
            expires_at=state.expires_at,
            token_endpoint=state.token_endpoint,
        )

    def source(self, namespace: str, name: str) -> OidcTokenSource | None:
        """The OIDC source of a platform, if one was made (for tests and diagnostics)."""
        held = self._held.get((namespace, name))
        return held.source if held is not None else None

    async def aclose(self) -> None:
        """Close every source's connections."""
        for held in self._held.values():
            await held.source.aclose()
        self._held.clear()
        for source in self._retired:
            await source.aclose()
        self._retired.clear()

    async def secret_changed(self, platform: SkahaPlatform) -> bool:
        """Whether the platform's OIDC Secrets now hold what its source was not made from (a
        refresh token it never held, another client secret or CA): the next resolve makes a new
        source. Asked by the probe while the issuer or Skaha refuses the credential."""
        oidc = platform.spec.oidc
        held = self._held.get(_slot(platform))
        if oidc is None or held is None:
            return False
        try:
            inputs = await self._inputs(platform, oidc)
        except SecretError:
            return False  # resolving again reports it
        return not _current(held, inputs)

    async def _inputs(self, platform: SkahaPlatform, oidc: OidcCredentials) -> _Inputs:
        """The Secrets an OIDC source is made from, and the key it is kept under."""
        ns = str(platform.metadata["namespace"])
        ref = oidc.refresh_token_secret_ref
        refresh = await self.kube.read_secret(ns, ref.name, ref.key)
        client_secret = None
        if oidc.client_secret_ref is not None:
            c = oidc.client_secret_ref
            client_secret = SecretStr(await self.kube.read_secret(ns, c.name, c.key))
        ca_pem = None
        if platform.spec.ca_bundle_secret_ref is not None:
            ca = platform.spec.ca_bundle_secret_ref
            ca_pem = await self.kube.read_secret(ns, ca.name, ca.key)
        key = (
            platform.metadata.get("uid"),
            oidc.model_dump_json(),
            fingerprint(client_secret.get_secret_value()) if client_secret else None,
            fingerprint(ca_pem) if ca_pem else None,
        )
        return _Inputs(key, refresh, client_secret, ca_pem)

    async def _source(self, platform: SkahaPlatform, oidc: OidcCredentials) -> OidcTokenSource:
        ns = str(platform.metadata["namespace"])
        inputs = await self._inputs(platform, oidc)
        slot = _slot(platform)
        held = self._held.get(slot)
        if held is not None and _current(held, inputs):
            return held.source
        key, refresh, client_secret = inputs.key, inputs.refresh, inputs.client_secret
        settings = OidcSettings(
            client_id=oidc.client_id,
            refresh_token=SecretStr(refresh),
            token_url=oidc.token_url,
            issuer=oidc.issuer,
            client_secret=client_secret,
            client_auth=str(oidc.client_auth_method),
            scope=oidc.scope,
            ca_file=self.ca_file,
            ca_pem=inputs.ca_pem,
            hosts=self.hosts,
            timeout=make_timeout(self.http_timeout),
        )
        box: list[OidcTokenSource] = []
        source = self._make_source(
            settings,
            on_rotate=self._write_back(ns, oidc, box) if oidc.write_back else None,
            reload=self._reload(ns, oidc),
            on_call=self.on_call,
        )
        box.append(source)
        self._held[slot] = _Held(key, source)
        if held is not None:
            log.info("platform %s/%s: a new OIDC credential (spec or Secret changed)", *slot)
            self._retired.append(held.source)
        return source

    def _reload(self, ns: str, oidc: OidcCredentials) -> ReloadHook:
        ref = oidc.refresh_token_secret_ref

        async def reload() -> str | None:
            try:
                return await self.kube.read_secret(ns, ref.name, ref.key)
            except SecretError:
                return None

        return reload

    def _write_back(self, ns: str, oidc: OidcCredentials, box: list[OidcTokenSource]) -> RotateHook:
        ref = oidc.refresh_token_secret_ref

        async def write(new: SecretStr) -> None:
            written = await self.kube.replace_secret_key(
                ns, ref.name, ref.key, new.get_secret_value(), ours=box[0].knows
            )
            if written:
                log.info("Secret %s/%s: the rotated OIDC refresh token was written back",
                         ns, ref.name)  # fmt: skip
            else:
                log.warning("Secret %s/%s changed or is gone: the rotated OIDC refresh token is "
                            "kept in memory only", ns, ref.name)  # fmt: skip

        return write


def _slot(platform: SkahaPlatform) -> Slot:
    return str(platform.metadata["namespace"]), str(platform.metadata["name"])
