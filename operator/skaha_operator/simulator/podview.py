"""Text views of a session's pod: `?view=events` and `?view=logs` (`docs/platform-api.md` §9.6).

Events are a `kubectl` custom-columns table `TYPE REASON MESSAGE FIRST-TIME LAST-TIME`, or
`<none>` when there are none yet; only events whose time has come are shown. Logs are empty until
the session runs. Headless logs echo `SIM_LOG` and the exit code once finished.
"""

from __future__ import annotations

from skaha_operator.simulator.clock import iso_utc
from skaha_operator.simulator.sessions import Phase, SessionType, SimSession

HEADER = ("TYPE", "REASON", "MESSAGE", "FIRST-TIME", "LAST-TIME")
# Seconds after launch at which the scheduler and kubelet report, capped by the start time.
SCHEDULED_AFTER_S = 1.0
PULLING_AFTER_S = 2.0
PULL_FAILED_AFTER_S = 6.0
BACKOFF_AFTER_S = 12.0


def job_name(session: SimSession) -> str:
    """`skaha-<type>-<user with non-alnum→'-'>-<id>`, lower-cased (K8SUtil.getJobName, §2)."""
    user = "".join(c if c.isalnum() else "-" for c in session.user)
    return f"skaha-{session.type.value}-{user}-{session.id}".lower()


def render_events(session: SimSession, now: float) -> str:
    """The events table as of `now`, or `<none>\\n`."""
    rows = [row for at, row in _events(session) if at <= now]
    if not rows:
        return "<none>\n"
    table = [HEADER, *rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER) - 1)]
    lines = []
    for line in table:
        cells = [cell.ljust(widths[i] + 3) for i, cell in enumerate(line[:-1])]
        lines.append("".join(cells) + line[-1])
    return "\n".join(lines) + "\n"


def _events(session: SimSession) -> list[tuple[float, tuple[str, str, str, str, str]]]:
    """(time, row) pairs for the pod's life: schedule, pull, create, start (or pull failure)."""
    c = session.created
    pod = f"{job_name(session)}-sim00"
    start = session.start_at
    limit = start if start is not None else float("inf")
    scheduled = min(c + SCHEDULED_AFTER_S, limit)
    pulling = min(c + PULLING_AFTER_S, limit)
    image = session.image
    out = [
        _row(
            scheduled,
            scheduled,
            "Normal",
            "Scheduled",
            f"Successfully assigned skaha-workload/{pod} to sim-node-1",
        ),
        _row(pulling, pulling, "Normal", "Pulling", f'Pulling image "{image}"'),
    ]
    if session.stuck and start is None:
        failed_at = c + PULL_FAILED_AFTER_S
        backoff_at = c + BACKOFF_AFTER_S
        out += [
            _row(
                failed_at,
                failed_at,
                "Warning",
                "Failed",
                f'Failed to pull image "{image}": rpc error: ErrImagePull',
            ),
            _row(failed_at, failed_at, "Warning", "Failed", "Error: ErrImagePull"),
            _row(backoff_at, backoff_at, "Normal", "BackOff", f'Back-off pulling image "{image}"'),
            _row(backoff_at, backoff_at, "Warning", "Failed", "Error: ImagePullBackOff"),
        ]
        return out
    if start is not None:
        out += [
            _row(
                start,
                start,
                "Normal",
                "Pulled",
                f'Successfully pulled image "{image}" in {start - c:.1f}s',
            ),
            _row(start, start, "Normal", "Created", f"Created container {session.type.value}"),
            _row(start, start, "Normal", "Started", f"Started container {session.type.value}"),
        ]
    return out


def _row(
    at: float, last: float, kind: str, reason: str, message: str
) -> tuple[float, tuple[str, str, str, str, str]]:
    return at, (kind, reason, message, iso_utc(at), iso_utc(last))


def render_logs(session: SimSession, now: float) -> str:
    """Container logs: empty until Running; headless ones end with the exit code."""
    start = session.start_at
    if start is None or now < start:
        return ""
    if session.deleted_at is not None and session.deleted_at < start:
        return ""
    lines: list[str] = []
    match session.type:
        case SessionType.HEADLESS:
            command = " ".join(part for part in (session.cmd, session.args) if part)
            lines.append(f"[sim] {job_name(session)} started: {command or '<image default>'}")
            if session.log_text:
                lines.append(session.log_text)
            ends, final = session.finish()
            if now >= ends:
                if session.end_at is None or ends < session.end_at:
                    lines.append("[sim] DeadlineExceeded: job was active longer than allowed")
                lines.append(f"[sim] exit code {_exit_code(session, final)}")
        case SessionType.NOTEBOOK:
            where = f"/session/notebook/{session.id}/lab"
            lines.append(f"[I {iso_utc(start)}] Jupyter Server is running at {where}")
        case (
            SessionType.DESKTOP | SessionType.CARTA | SessionType.CONTRIBUTED | SessionType.FIREFLY
        ):
            lines.append(f"[sim] {session.type.value} session {session.id} listening")
    return "\n".join(lines) + "\n"


def _exit_code(session: SimSession, final: Phase) -> int:
    """0 for Completed; the SIM_EXIT_CODE (or 1) for Failed."""
    if final is Phase.COMPLETED:
        return 0
    return session.exit_code or 1
