"""The error hierarchy of the platform clients (Skaha, Cavern, Rucio).

Every failure of a platform call surfaces as one of these, carrying the server's own text
(`docs/platform-api.md` §5: OpenCADC services answer `text/plain` `<message>\\n`; §8: Rucio
sends `ExceptionClass` / `ExceptionMessage`). The httpx error is chained as `__cause__`.
Messages are scrubbed of secrets before an error is built, so `str(err)` is safe to log.

Handlers map these to kopf's temporary or permanent errors; this module imports nothing but
the standard library so that mapping can be written and tested anywhere.
"""

from __future__ import annotations


class SkahaError(Exception):
    """Base of every platform-client error; `message` is the server's text (secrets removed)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        service: str = "",
        method: str = "",
        route: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.service = service
        self.method = method
        self.route = route

    def __str__(self) -> str:
        where = f"{self.service} {self.method} {self.route}".strip()
        code = f" -> {self.status}" if self.status is not None else ""
        return f"{where}{code}: {self.message}" if where else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self!s})"


class Unavailable(SkahaError):
    """The platform could not answer now (5xx, 429, timeout, connection error); try later.

    `retry_after` is the server's `Retry-After` in seconds when it sent one (§5: a
    TransientException is a 503 with `Retry-After`). `maybe_committed` is true when a
    non-idempotent request may have taken effect before the failure (the reply was lost or was
    a 5xx), so the caller must look the resource up before trying again (§9.10 `fail_after_commit`).
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        maybe_committed: bool = False,
        status: int | None = None,
        service: str = "",
        method: str = "",
        route: str = "",
    ) -> None:
        super().__init__(message, status=status, service=service, method=method, route=route)
        self.retry_after = retry_after
        self.maybe_committed = maybe_committed


class RateLimited(Unavailable):
    """A 429 (synthetic for Skaha: only a front proxy could send one, docs/platform-api.md §1)."""


class Rejected(SkahaError):
    """The server refused the request (a 4xx); repeating it unchanged will not help."""


class NotFound(Rejected):
    """404: the session, node or rule does not exist (or belongs to another user, §5)."""


class AuthError(Rejected):
    """401 or 403: the token is missing, unknown, expired or not authorised (§5)."""


class CredentialsRefused(AuthError):
    """The OIDC issuer refused to issue an access token (an OAuth2 `error` such as
    `invalid_grant`: the refresh token is revoked or expired); a human must fix the Secret."""


class Conflict(Rejected):
    """409: the resource already exists (Cavern DuplicateNode, Rucio DuplicateRule, §7–§8)."""


class HostNotAllowed(Rejected):
    """The URL names a host outside the operator's allowed hosts: nothing was sent
    (`platform/hosts.py`, docs/threat-model.md)."""


class BadReply(SkahaError):
    """A 2xx reply whose body could not be understood (a wire-format drift)."""


#: Server text kept in an error message: OpenCADC messages are one line (§5); anything longer
#: is cut, so a platform cannot fill status messages, Events or logs (docs/threat-model.md).
MAX_SERVER_TEXT = 500


def bounded(text: str, limit: int = MAX_SERVER_TEXT) -> str:
    """`text` cut to at most `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    note = f" [... {len(text)} more characters]"  # as long as the final note, or longer
    kept = max(0, limit - len(note))
    return text[:kept] + f" [... {len(text) - kept} more characters]"


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """Replace every occurrence of a secret value in `text` with `***`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
