"""The simulated issuer's state: issued access tokens that expire, revoked refresh tokens, counts.

Refresh tokens themselves live in `config.oidc_refresh_tokens` (read on every request, so control
changes apply at once); `oidc_api.py` serves the token endpoint and the control routes
(docs/simulator.md). Times are on the simulator clock. Imports no HTTP library.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter


class OidcStore:
    """Issued access tokens, revoked refresh tokens and grant counts; refresh tokens live in
    `config.oidc_refresh_tokens` (read on every request, so control changes apply at once)."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._access: dict[str, tuple[str, float]] = {}  # token -> (user, expires at)
        self.revoked: dict[str, str] = {}  # refresh token -> why it is no longer valid
        self.grants: Counter[str] = Counter()  # outcome -> count
        self.grants_by_user: Counter[str] = Counter()  # user -> successful grants

    def new_token(self, prefix: str, user: str) -> str:
        """A fresh token (deterministic for a seed)."""
        return f"{prefix}-{user}-{uuid.UUID(int=self._rng.getrandbits(128)).hex}"

    def issue(self, user: str, now: float, ttl: float) -> str:
        """An access token for `user` valid until `now + ttl`; expired ones are forgotten."""
        self._access = {t: (u, exp) for t, (u, exp) in self._access.items() if exp > now}
        token = self.new_token("at", user)
        self._access[token] = (user, now + ttl)
        return token

    def user_of(self, token: str, now: float) -> str | None:
        """The user of a live access token; None when unknown, revoked or expired."""
        entry = self._access.get(token)
        if entry is None or entry[1] <= now:
            return None
        return entry[0]

    def revoke_access(self, user: str | None = None) -> int:
        """Refuse every live access token (of `user`); returns how many."""
        gone = [t for t, (u, _) in self._access.items() if user is None or u == user]
        for token in gone:
            del self._access[token]
        return len(gone)

    def live_by_user(self, now: float) -> dict[str, int]:
        """Live access tokens per user."""
        return dict(sorted(Counter(u for u, exp in self._access.values() if exp > now).items()))
