"""Clients per SkahaPlatform: built from the platform's spec and its token Secret, then cached.

The token (and the Rucio username and password, when the platform names a credentials Secret) are
read only from Secrets in the platform's own namespace (docs/design.md §4.7), only when they carry
the `skaha.broker.dev/credentials: "true"` label (k8s/api.py), and handed to the clients as
SecretStr. Every URL the platform names is checked against the operator's allowed hosts first
(platform/hosts.py): a refused platform gets clients that hold no token and refuse every request,
so nothing is read for it and nothing is sent (docs/threat-model.md). Entries expire so that a
rotated token (or a removed label) is picked up; while Skaha refuses the token, each platform
probe re-reads the Secret, so a fixed one is used at once (`token_changed`).
An OIDC credential's token source outlives the entries (controllers/credentials.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from skaha_operator.controllers.credentials import CredentialBook
from skaha_operator.domain.skaha_platform import SkahaPlatform
from skaha_operator.k8s.api import CredentialsNotMarked, Kube, SecretError
from skaha_operator.platform.base import CallRecorder, make_timeout
from skaha_operator.platform.clients import PlatformClients, PlatformSettings, RucioSettings
from skaha_operator.platform.hosts import PUBLIC_ONLY, HostPolicy, refuse_all
from skaha_operator.platform.wire import ApiVersion, SkahaImage

PLATFORMS = "skahaplatforms"
IMAGES_TTL = 10.0  # seconds a platform's image list is shared between DockerContainer checks


@dataclass
class _Entry:
    key: tuple[Any, ...]
    clients: PlatformClients
    made: float
    token: str = ""  # a digest of the token the clients use (to notice a changed Secret)


_MODELS: dict[tuple[str, str], SkahaPlatform] = {}
_MODELS_MAX = 256


def platform_model(body: dict[str, Any]) -> SkahaPlatform:
    """The platform object as a model, validated once per version of it.

    Every Compute, DockerContainer, Data and Notebook step reads its platform; validating the
    same body again on each was a measurable share of a launch burst (docs/performance.md).
    Keyed by UID and resourceVersion, so any change of the object is validated afresh. The
    model is shared: callers read it and never change it.
    """
    meta = body.get("metadata") or {}
    key = (str(meta.get("uid", "")), str(meta.get("resourceVersion", "")))
    if not key[0] or not key[1]:
        return SkahaPlatform.model_validate(body)
    found = _MODELS.get(key)
    if found is None:
        if len(_MODELS) >= _MODELS_MAX:
            _MODELS.clear()
        found = _MODELS[key] = SkahaPlatform.model_validate(body)
    return found


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class PlatformCache:
    """PlatformClients per (namespace, platform name), rebuilt when the spec changes."""

    def __init__(
        self,
        kube: Kube,
        on_call: CallRecorder | None = None,
        ttl: float = 300.0,
        http_timeout: float = 30.0,
        reader: Callable[[str, str, str], Awaitable[dict[str, Any] | None]] | None = None,
        ca_file: str | None = None,
        hosts: HostPolicy = PUBLIC_ONLY,
    ):
        self.kube = kube
        self.hosts = hosts
        # How the platform object is read: the watch-fed cache when given (handlers/cache.py).
        self._read = reader or kube.get
        self.http_timeout = http_timeout
        self.ca_file = ca_file  # the operator's --ca-bundle, trusted for every platform
        self.on_call = on_call
        self.ttl = ttl
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._building: dict[tuple[str, str], asyncio.Lock] = {}
        self._images: dict[tuple[str, str], tuple[float, asyncio.Task[list[SkahaImage]]]] = {}
        self._closing: list[PlatformClients] = []  # replaced clients, closed a TTL later
        self._retiring: set[asyncio.Task[None]] = set()
        # The token, or an OIDC token source that outlives the clients (controllers/credentials.py).
        self.credentials = CredentialBook(
            kube, on_call=on_call, http_timeout=http_timeout, ca_file=ca_file, hosts=hosts
        )

    async def get(self, namespace: str, name: str) -> tuple[SkahaPlatform, PlatformClients] | None:
        """The platform object and its clients; None when the SkahaPlatform does not exist."""
        body = await self._read(PLATFORMS, namespace, name)
        if body is None:
            return None
        platform = platform_model(body)
        return platform, await self.clients(platform)

    async def images(
        self, namespace: str, name: str, clients: PlatformClients, fresh: bool = False
    ) -> list[SkahaImage]:
        """Skaha's image list for one platform, one request shared by every check within
        IMAGES_TTL seconds (also by checks running at the same moment); `fresh` asks again."""
        slot = (namespace, name)
        now = time.monotonic()
        found = self._images.get(slot)
        if found is None or fresh or now - found[0] >= IMAGES_TTL:
            found = (now, asyncio.ensure_future(clients.skaha.images()))
            self._images[slot] = found
        try:
            return await asyncio.shield(found[1])
        except Exception:
            if self._images.get(slot) is found:
                del self._images[slot]  # a failure is not shared with later checks
            raise

    async def clients(self, platform: SkahaPlatform) -> PlatformClients:
        """Clients for a platform object already read (SecretError if its token is missing)."""
        meta = platform.metadata
        slot = (str(meta["namespace"]), str(meta["name"]))
        key = (meta.get("uid"), meta.get("generation"))
        entry = self._entries.get(slot)
        if entry and entry.key == key and time.monotonic() - entry.made < self.ttl:
            return entry.clients
        # One build per platform at a time: the steps that need it together (every Compute
        # after a restart) wait for it instead of each reading the Secrets again.
        async with self._building.setdefault(slot, asyncio.Lock()):
            entry = self._entries.get(slot)
            if entry and entry.key == key and time.monotonic() - entry.made < self.ttl:
                return entry.clients
            settings = await self._settings(platform)
            clients = PlatformClients.create(settings, on_call=self.on_call)
            token = _digest(settings.token.get_secret_value())
            self._entries[slot] = _Entry(key, clients, time.monotonic(), token)
        if entry is not None:
            self._retire(entry.clients)
        return clients

    def _retire(self, clients: PlatformClients) -> None:
        """Close replaced clients later, not now: steps that took them before the rebuild may
        still be sending with them (at N = 5000, closing at once broke thousands of requests in
        flight or queued, each a failed step; docs/performance.md). One TTL later (or at
        shut-down) every such step has long finished."""
        self._closing.append(clients)

        async def close_later() -> None:
            await asyncio.sleep(self.ttl)
            if clients in self._closing:
                self._closing.remove(clients)
                await clients.aclose()

        task = asyncio.ensure_future(close_later())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def refusal(self, platform: SkahaPlatform) -> str | None:
        """Why the platform may not be used (a URL outside the allowed hosts), or None."""
        for field, url in platform_urls(platform):
            why = self.hosts.refusal(url)
            if why is not None:
                return f"SkahaPlatform {field}: {why}"
        return None

    async def _settings(self, platform: SkahaPlatform) -> PlatformSettings:
        ns = str(platform.metadata["namespace"])
        spec = platform.spec
        refused = self.refusal(platform)
        if refused is not None:
            # No Secret is read for a refused platform; its clients refuse every request.
            return PlatformSettings(
                skaha_url=spec.skaha.url, cavern_url=spec.cavern.url, token=SecretStr(""),
                hosts=refuse_all(refused),
            )  # fmt: skip
        token, token_source = await self.credentials.resolve(platform)
        # A forced version wins; otherwise what the platform probe read from /capabilities.
        probed = platform.status.api_version if platform.status else None
        version = ApiVersion(spec.skaha.api_version or probed or "v1")
        extra: dict[str, Any] = {"ca_file": self.ca_file}
        if spec.ca_bundle_secret_ref is not None:  # a site CA for this platform only
            ca = spec.ca_bundle_secret_ref
            extra["ca_pem"] = await self.kube.read_secret(ns, ca.name, ca.key)
        if spec.cavern.node_uri_prefix:
            extra["cavern_authority"] = spec.cavern.node_uri_prefix.removeprefix("vos://")
        return PlatformSettings(
            skaha_url=spec.skaha.url,
            cavern_url=spec.cavern.url,
            token=token,
            api_version=version,
            rucio=await self._rucio(platform),
            timeout=make_timeout(self.http_timeout),
            hosts=self.hosts,
            token_source=token_source,
            **extra,
        )

    async def _rucio(self, platform: SkahaPlatform) -> RucioSettings | None:
        """Rucio userpass settings (docs/platform-api.md §8), credentials from the platform's
        Secret."""
        rucio = platform.spec.rucio
        if rucio is None or rucio.credentials_secret_ref is None:
            return None
        ns = str(platform.metadata["namespace"])
        secret = rucio.credentials_secret_ref.name
        try:
            found = await self.kube.read_secret_keys(ns, secret, ("username", "password"))
        except CredentialsNotMarked:
            raise  # the platform reports it (Stalled): only its owner can label the Secret
        except SecretError:
            # Skaha and Cavern stay usable; Data with a rucio source reports the missing Secret.
            return None
        username, password = found["username"], SecretStr(found["password"])
        return RucioSettings(
            url=rucio.url,
            account=rucio.account or username,
            username=username,
            password=password,
            auth_url=rucio.auth_url,
            vo=rucio.vo,
        )

    async def token_changed(self, platform: SkahaPlatform) -> bool:
        """Whether the platform's token Secret now holds another token than its cached clients
        use; if so they are dropped, so a fixed or rotated token is used by the next call rather
        than when the entry expires (the probe asks while the platform refuses our token)."""
        meta = platform.metadata
        ns, name = str(meta["namespace"]), str(meta["name"])
        entry = self._entries.get((ns, name))
        if entry is None:
            return False
        if platform.spec.oidc is not None:  # a new refresh token (or client secret) in the Secret
            changed = await self.credentials.secret_changed(platform)
            if changed:
                self.forget(ns, name)
            return changed
        ref = platform.spec.token_secret_ref
        if ref is None:
            return False
        try:
            token = await self.kube.read_secret(ns, ref.name, ref.key)
        except SecretError:
            return False  # building the clients again reports it
        if _digest(token) == entry.token:
            return False
        self.forget(ns, name)
        return True

    def forget(self, namespace: str, name: str) -> None:
        """Drop a platform's clients (its token was refused): the next use reads the Secret."""
        entry = self._entries.pop((namespace, name), None)
        if entry is not None:
            self._retire(entry.clients)

    async def aclose(self) -> None:
        """Close every cached client."""
        for entry in self._entries.values():
            await entry.clients.aclose()
        self._entries.clear()
        for retiring in list(self._retiring):
            retiring.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        for dropped in self._closing:
            await dropped.aclose()
        self._closing.clear()
        for _, task in self._images.values():
            task.cancel()
        self._images.clear()
        await self.credentials.aclose()


def platform_urls(platform: SkahaPlatform) -> list[tuple[str, str]]:
    """(field, URL) of every endpoint a platform names: the operator sends requests to these."""
    spec = platform.spec
    urls = [("spec.skaha.url", spec.skaha.url), ("spec.cavern.url", spec.cavern.url)]
    if spec.rucio is not None:
        urls.append(("spec.rucio.url", spec.rucio.url))
        if spec.rucio.auth_url:
            urls.append(("spec.rucio.authUrl", spec.rucio.auth_url))
    if spec.oidc is not None:
        urls.append(("spec.oidc", spec.oidc.issuer or spec.oidc.token_url or ""))
    return urls
