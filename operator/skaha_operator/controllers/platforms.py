"""Clients per SkahaPlatform: built from the platform's spec and its token Secret, then cached.

The token (and the Rucio username and password, when the platform names a credentials Secret) are
read only from Secrets in the platform's own namespace (docs/design.md §4.7) and handed to the
clients as SecretStr. Entries expire so that a rotated token is picked up; while Skaha refuses the
token, each platform probe re-reads the Secret, so a fixed one is used at once (`token_changed`).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from skaha_operator.domain.skaha_platform import SkahaPlatform
from skaha_operator.k8s.api import Kube, SecretError
from skaha_operator.platform.base import CallRecorder, make_timeout
from skaha_operator.platform.clients import PlatformClients, PlatformSettings, RucioSettings
from skaha_operator.platform.wire import ApiVersion, SkahaImage

PLATFORMS = "skahaplatforms"
IMAGES_TTL = 10.0  # seconds a platform's image list is shared between DockerContainer checks


@dataclass
class _Entry:
    key: tuple[Any, ...]
    clients: PlatformClients
    made: float
    token: str = ""  # a digest of the token the clients use (to notice a changed Secret)


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
    ):
        self.kube = kube
        # How the platform object is read: the watch-fed cache when given (handlers/cache.py).
        self._read = reader or kube.get
        self.http_timeout = http_timeout
        self.ca_file = ca_file  # the operator's --ca-bundle, trusted for every platform
        self.on_call = on_call
        self.ttl = ttl
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._images: dict[tuple[str, str], tuple[float, asyncio.Task[list[SkahaImage]]]] = {}
        self._closing: list[PlatformClients] = []  # dropped clients, closed at shut-down

    async def get(self, namespace: str, name: str) -> tuple[SkahaPlatform, PlatformClients] | None:
        """The platform object and its clients; None when the SkahaPlatform does not exist."""
        body = await self._read(PLATFORMS, namespace, name)
        if body is None:
            return None
        platform = SkahaPlatform.model_validate(body)
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
        settings = await self._settings(platform)
        clients = PlatformClients.create(settings, on_call=self.on_call)
        token = _digest(settings.token.get_secret_value())
        self._entries[slot] = _Entry(key, clients, time.monotonic(), token)
        if entry is not None:
            await entry.clients.aclose()
        return clients

    async def _settings(self, platform: SkahaPlatform) -> PlatformSettings:
        ns = str(platform.metadata["namespace"])
        spec = platform.spec
        ref = spec.token_secret_ref
        token = SecretStr(await self.kube.read_secret(ns, ref.name, ref.key))
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
            **extra,
        )

    async def _rucio(self, platform: SkahaPlatform) -> RucioSettings | None:
        """Rucio userpass settings (docs/platform-api.md §8), the credentials from the platform's
        Secret."""
        rucio = platform.spec.rucio
        if rucio is None or rucio.credentials_secret_ref is None:
            return None
        ns = str(platform.metadata["namespace"])
        secret = rucio.credentials_secret_ref.name
        try:
            username = await self.kube.read_secret(ns, secret, "username")
            password = SecretStr(await self.kube.read_secret(ns, secret, "password"))
        except SecretError:
            # Skaha and Cavern stay usable; Data with a rucio source reports the missing Secret.
            return None
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
        ref = platform.spec.token_secret_ref
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
            self._closing.append(entry.clients)

    async def aclose(self) -> None:
        """Close every cached client."""
        for entry in self._entries.values():
            await entry.clients.aclose()
        self._entries.clear()
        for dropped in self._closing:
            await dropped.aclose()
        self._closing.clear()
        for _, task in self._images.values():
            task.cancel()
        self._images.clear()
