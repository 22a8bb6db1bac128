"""The executor for things launched as Skaha sessions (a Compute's session, preparation jobs).

Observes what carries our names (one listing, filtered by the name every attempt starts with) and
the recorded id (one GET), creates, deletes and reads log tails; the decisions of what to do are
reconcile/launch.py's. Skaha lower-cases names and lists only the caller's own sessions
(docs/platform-api.md §2-3).
"""

from __future__ import annotations

from skaha_operator.domain.launch import Launch
from skaha_operator.platform.clients import PlatformClients
from skaha_operator.platform.errors import NotFound, Rejected, Unavailable
from skaha_operator.platform.skaha import RegistryAuth
from skaha_operator.platform.wire import SessionParams, SkahaSession
from skaha_operator.reconcile.launch import LaunchView, Seen

LOG_TAIL_LINES = 10
LOG_TAIL_CHARS = 2000
# Statuses of a session that still holds resources; Terminating cannot be deleted again.
LIVE = frozenset({"Pending", "Running", "Terminating", "Unknown"})
FAILED = frozenset({"Failed", "Error"})  # a session that ended badly: its log tail explains


def seen_of(session: SkahaSession) -> Seen:
    """A listed or fetched session as the launch protocol sees it."""
    status = str(session.status)
    return Seen(
        id=session.id,
        name=session.name,
        state=status,
        live=status in LIVE,
        deletable=status in LIVE and status != "Terminating",
    )


async def observe(
    clients: PlatformClients, launch: Launch | None, base: str, *, listing: bool
) -> tuple[LaunchView, SkahaSession | None]:
    """What carries our names (when `listing`) and the recorded id; the fetched session too."""
    listed: tuple[Seen, ...] | None = None
    if listing:
        prefix = base.lower()
        listed = tuple(
            seen_of(s) for s in await clients.skaha.list_sessions() if s.name.startswith(prefix)
        )
    sid = launch.id if launch is not None else None
    if not sid:
        return LaunchView(listed=listed), None
    try:
        session = await clients.skaha.get_session(sid)
    except NotFound:
        return LaunchView(listed=listed, gone=True), None
    return LaunchView(listed=listed, by_id=seen_of(session)), session


async def create(
    clients: PlatformClients, params: SessionParams, auth: RegistryAuth | None = None
) -> str:
    """POST the session (its marker is stored already); Rejected and Unavailable propagate."""
    return await clients.skaha.create_session(params, registry_auth=auth)


async def delete(clients: PlatformClients, ids: tuple[str, ...]) -> None:
    """DELETE each session; one already gone is fine."""
    for sid in ids:
        try:
            await clients.skaha.delete_session(sid)
        except NotFound:
            continue


async def log_tail(clients: PlatformClients, session_id: str) -> str | None:
    """The last log lines of a session (its pod events when the log is empty)."""
    try:
        text = (await clients.skaha.logs(session_id)).strip()
        if not text:
            text = (await clients.skaha.events(session_id)).strip()
    except (Unavailable, Rejected, NotFound):
        return None
    return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])[-LOG_TAIL_CHARS:] or None
