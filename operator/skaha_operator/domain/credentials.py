"""How a SkahaPlatform authenticates: an OIDC refresh-token credential, and what status shows.

A platform names either a static bearer token (`tokenSecretRef`) or an `oidc` credential: a
refresh token (in a Secret) that the operator exchanges at the issuer's token endpoint for
short-lived access tokens (OAuth2 `refresh_token` grant, docs/platform-api.md §5.1). Status
shows the credential's type and when the current access token expires, never a secret
(docs/design.md §4.7). Pure: pydantic only.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from skaha_operator.domain.base import Rule, WireModel
from skaha_operator.domain.common import Timestamp, name_field

URL_PATTERN = r"^https?://[^\s]+$"
KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"


class RefreshTokenSecretRef(WireModel):
    """The Secret key holding the OIDC refresh token."""

    name: str = name_field("Name of the Secret, in the platform's namespace.")
    key: str = Field(
        "refreshToken",
        description="Key inside the Secret holding the refresh token.",
        pattern=KEY_PATTERN,
        max_length=253,
    )


class ClientSecretRef(WireModel):
    """The Secret key holding the OIDC client secret."""

    name: str = name_field("Name of the Secret, in the platform's namespace.")
    key: str = Field(
        "clientSecret",
        description="Key inside the Secret holding the client secret.",
        pattern=KEY_PATTERN,
        max_length=253,
    )


class ClientAuthMethod(StrEnum):
    """How the client secret is presented to the token endpoint (RFC 6749 §2.3.1)."""

    BASIC = "client_secret_basic"
    POST = "client_secret_post"


class OidcCredentials(WireModel):
    """An OIDC refresh token the operator exchanges for access tokens (refresh_token grant)."""

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "has(self.issuer) != has(self.tokenUrl)",
            "exactly one of issuer and tokenUrl must be set",
        ),
    )

    issuer: str | None = Field(
        None,
        description="The issuer URL, e.g. https://ska-iam.stfc.ac.uk/; the token endpoint is read "
        "from <issuer>/.well-known/openid-configuration.",
        pattern=URL_PATTERN,
        max_length=2048,
    )
    token_url: str | None = Field(
        None,
        description="The token endpoint itself, e.g. https://ska-iam.stfc.ac.uk/token "
        "(instead of issuer).",
        pattern=URL_PATTERN,
        max_length=2048,
    )
    client_id: str = Field(
        description="The OAuth2 client the refresh token was issued to.",
        min_length=1,
        max_length=512,
    )
    client_secret_ref: ClientSecretRef | None = Field(
        None,
        description="Secret key holding the client secret (key default: clientSecret); absent: "
        "a public client, only client_id is sent.",
    )
    client_auth_method: ClientAuthMethod = Field(
        ClientAuthMethod.BASIC,
        description="How the client secret is sent: HTTP Basic (client_secret_basic) or in the "
        "form (client_secret_post).",
    )
    refresh_token_secret_ref: RefreshTokenSecretRef = Field(
        description="Secret key holding the refresh token (key default: refreshToken)."
    )
    scope: str | None = Field(
        None,
        description="Scope to ask for on each refresh (space-separated); absent: the scope the "
        "refresh token was granted with.",
        max_length=1024,
    )
    write_back: bool = Field(
        True,
        description="When the issuer rotates the refresh token, write the new one back to the "
        "refresh-token Secret (a guarded patch of that one key), so that it survives an "
        "operator restart; false: keep it in memory only.",
    )


class CredentialType(StrEnum):
    """Which kind of credential a platform uses."""

    TOKEN = "token"  # a static bearer token from tokenSecretRef
    OIDC = "oidc"  # access tokens from an OIDC refresh token


class PlatformCredentials(WireModel):
    """What the operator holds for a platform, without any secret."""

    type: CredentialType = Field(description="token (static bearer token) or oidc.")
    expires_at: Timestamp | None = Field(
        None,
        description="oidc: when the access token in use at the last probe expires (it is "
        "refreshed before then).",
    )
    token_endpoint: str | None = Field(
        None,
        description="oidc: the token endpoint in use (configured or discovered).",
        max_length=2048,
    )
