"""The ports the operator talks to: `SkahaPort`, `CavernPort`, `RucioPort`.

Both the HTTP clients (`skaha.py`, `cavern.py`, `rucio.py`) and the in-memory fakes
(`fake.py`) implement these Protocols; the contract suite (`tests/contract/`) checks that they
behave alike. Errors are the ones in `errors.py`.
"""

from __future__ import annotations

from typing import Protocol

from skaha_operator.platform.wire import (
    Capabilities,
    CavernNode,
    RucioRule,
    RuleSpec,
    SessionParams,
    SessionType,
    SkahaContext,
    SkahaImage,
    SkahaSession,
    SkahaSessionStatus,
)


class RegistryCredentials(Protocol):
    """Private-registry credentials (see `skaha.RegistryAuth`)."""

    @property
    def username(self) -> str:
        """The registry user name."""
        ...

    def header_value(self) -> str:
        """The `x-skaha-registry-auth` header value."""
        ...


class SkahaPort(Protocol):
    """Skaha sessions, images, context and capabilities (`docs/platform-api.md` §1–§4)."""

    async def capabilities(self) -> Capabilities:
        """The VOSI capabilities and the API version they name."""
        ...

    async def context(self) -> SkahaContext:
        """Resource options and the interactive cap."""
        ...

    async def images(self, type: SessionType | None = None) -> list[SkahaImage]:
        """Images the caller may launch, optionally for one session type."""
        ...

    async def repositories(self) -> list[str]:
        """Allowed registry hosts."""
        ...

    async def list_sessions(
        self, type: SessionType | None = None, status: SkahaSessionStatus | None = None
    ) -> list[SkahaSession]:
        """The caller's sessions, optionally filtered."""
        ...

    async def get_session(self, session_id: str) -> SkahaSession:
        """One session; NotFound if absent or another user's."""
        ...

    async def create_session(
        self, params: SessionParams, registry_auth: RegistryCredentials | None = None
    ) -> str:
        """Launch a session and return its id (never retried)."""
        ...

    async def logs(self, session_id: str) -> str:
        """The session's container logs."""
        ...

    async def events(self, session_id: str) -> str:
        """The session's pod events table, or `<none>`."""
        ...

    async def renew(self, session_id: str) -> None:
        """Push the session's expiry forward (a no-op for headless)."""
        ...

    async def delete_session(self, session_id: str) -> None:
        """Delete a session; an absent one counts as deleted."""
        ...


class CavernPort(Protocol):
    """Cavern container nodes and files (`docs/platform-api.md` §7)."""

    async def make_dir(self, path: str) -> bool:
        """Create one container; False if it existed."""
        ...

    async def make_dirs(self, path: str) -> None:
        """Create a container and its missing ancestors, level by level."""
        ...

    async def put_file(
        self,
        path: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        md5: bool = True,
    ) -> None:
        """Create or overwrite a file; its parent must exist."""
        ...

    async def get_file(self, path: str) -> bytes:
        """The bytes of a file."""
        ...

    async def get_node(self, path: str) -> CavernNode:
        """A node, with its children if it is a container."""
        ...

    async def list_dir(self, path: str) -> list[CavernNode]:
        """The children of a container."""
        ...

    async def delete(self, path: str) -> bool:
        """Delete one node; False if already gone; Rejected if a non-empty container."""
        ...

    async def delete_tree(self, path: str) -> int:
        """Delete a node and everything under it; return how many nodes went."""
        ...


class RucioPort(Protocol):
    """Rucio replication rules (`docs/platform-api.md` §8)."""

    async def create_rule(self, spec: RuleSpec) -> list[str]:
        """Create a rule; Conflict on DuplicateRule (never retried)."""
        ...

    async def get_rule(self, rule_id: str) -> RucioRule:
        """One rule; NotFound if absent."""
        ...

    async def list_rules_for_did(self, scope: str, name: str) -> list[RucioRule]:
        """Every rule on a DID."""
        ...

    async def delete_rule(self, rule_id: str, purge_replicas: bool = False) -> bool:
        """Delete a rule; False if already gone."""
        ...
