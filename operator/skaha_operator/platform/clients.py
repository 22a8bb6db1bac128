"""`PlatformClients`: the Skaha, Cavern and (optional) Rucio clients of one platform.

Each service gets its own pooled `httpx.AsyncClient` with explicit timeouts; `aclose()` closes
all of them. The bearer token arrives as a `SecretStr` (read from a Kubernetes Secret by the
caller) and is only ever unwrapped inside a request header, and only for a host the settings'
`hosts` policy allows (`hosts.py`); or, for an OIDC credential, a `TokenSource` (platform/oidc.py)
is asked for the current access token on every request. The source is shared and outlives the
clients: its owner closes it, not `aclose()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from pydantic import SecretStr

from skaha_operator.platform.base import (
    DEFAULT_LIMITS,
    DEFAULT_TIMEOUT,
    BearerAuth,
    CallRecorder,
    make_http_client,
    trust_context,
)
from skaha_operator.platform.cavern import DEFAULT_AUTHORITY, CavernClient
from skaha_operator.platform.hosts import HostPolicy
from skaha_operator.platform.oidc import TokenAuth, TokenSource
from skaha_operator.platform.ports import CavernPort, RucioPort, SkahaPort
from skaha_operator.platform.retry import RetryPolicy
from skaha_operator.platform.rucio import RucioClient
from skaha_operator.platform.skaha import SkahaClient
from skaha_operator.platform.wire import ApiVersion


@dataclass(frozen=True)
class RucioSettings:
    """Where Rucio is and whose account to use."""

    url: str
    account: str
    username: str
    password: SecretStr
    auth_url: str | None = None
    vo: str | None = None


@dataclass(frozen=True)
class PlatformSettings:
    """Everything needed to talk to one platform (a `SkahaPlatform` resource)."""

    skaha_url: str
    cavern_url: str
    token: SecretStr = field(default_factory=lambda: SecretStr(""))  # unused with token_source
    cavern_authority: str = DEFAULT_AUTHORITY
    api_version: ApiVersion = ApiVersion.V1
    rucio: RucioSettings | None = None
    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    limits: httpx.Limits = field(default_factory=lambda: DEFAULT_LIMITS)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Extra CAs trusted on top of the public ones: the operator's --ca-bundle file and the
    # platform's caBundleSecretRef (PEM text).
    ca_file: str | None = None
    ca_pem: str | None = field(default=None, repr=False)
    # Checked before every request; None (a library default for tests and tools) checks nothing.
    # The operator always passes its --allowed-hosts policy (controllers/platforms.py).
    hosts: HostPolicy | None = None
    # An OIDC credential: the bearer token comes from here per request (instead of `token`).
    token_source: TokenSource | None = None


@dataclass
class PlatformClients:
    """The clients of one platform; close them with `aclose()`."""

    skaha: SkahaClient
    cavern: CavernClient
    rucio: RucioClient | None = None

    @classmethod
    def create(
        cls,
        settings: PlatformSettings,
        *,
        on_call: CallRecorder | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> PlatformClients:
        """Build one pooled client per service; `transport` is for tests only."""
        verify = trust_context(settings.ca_file, settings.ca_pem)

        def http(url: str, auth: httpx.Auth | None) -> httpx.AsyncClient:
            return make_http_client(
                url,
                auth=auth,
                timeout=settings.timeout,
                limits=settings.limits,
                transport=transport,
                verify=verify,
                hosts=settings.hosts,
            )

        bearer: httpx.Auth = BearerAuth(settings.token)
        if settings.token_source is not None:
            bearer = TokenAuth(settings.token_source)
        skaha = SkahaClient(
            http(settings.skaha_url, bearer),
            token=settings.token,
            api_version=settings.api_version,
            retry=settings.retry,
            on_call=on_call,
            concurrency=settings.limits.max_connections,
        )
        cavern = CavernClient(
            http(settings.cavern_url, bearer),
            token=settings.token,
            authority=settings.cavern_authority,
            retry=settings.retry,
            on_call=on_call,
            concurrency=settings.limits.max_connections,
        )
        rucio = None
        if settings.rucio is not None:
            r = settings.rucio
            rucio = RucioClient(
                http(r.url, None),
                account=r.account,
                username=r.username,
                password=r.password,
                auth_url=r.auth_url,
                vo=r.vo,
                retry=settings.retry,
                on_call=on_call,
                concurrency=settings.limits.max_connections,
            )
        return cls(skaha=skaha, cavern=cavern, rucio=rucio)

    def ports(self) -> tuple[SkahaPort, CavernPort, RucioPort | None]:
        """The clients as the ports the operator codes against (mypy checks they conform)."""
        return self.skaha, self.cavern, self.rucio

    async def aclose(self) -> None:
        """Close every service's connection pool."""
        await self.skaha.aclose()
        await self.cavern.aclose()
        if self.rucio is not None:
            await self.rucio.aclose()
