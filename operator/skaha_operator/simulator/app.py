"""The aiohttp application: routes of every service plus the auth, error and fault middlewares.

Auth follows `docs/platform-api.md` §5: `Authorization: Bearer <token>` mapped through the token
table (read on every request, so `/_sim/tokens` revocations apply at once); missing or unknown →
401 with `WWW-Authenticate: Bearer`; a user outside `group_members` → 403 on Skaha; every
authenticated reply carries `X-VO-Authenticated: <user>`. Middlewares, outermost first: job
effects (`jobs.py`), request counting (`stats.py`), faults (`faults.py`), auth and errors.
"""

from __future__ import annotations

import asyncio
import logging
import re

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.typedefs import Handler
from aiohttp.web_request import BaseRequest

from skaha_operator.simulator import (
    cavern_api,
    cavern_seed,
    control_access,
    control_api,
    jobs,
    pages,
    pypi,
    replies,
    rucio_api,
    skaha_api,
)
from skaha_operator.simulator.errors import SimError
from skaha_operator.simulator.faults import FaultPlan
from skaha_operator.simulator.state import (
    COMMIT_AT_KEY,
    PLAN_KEY,
    STATE_KEY,
    USER_KEY,
    SimState,
    state_of,
)

log = logging.getLogger(__name__)

SKAHA_API = re.compile(r"^/skaha/v[0-9]+/")
CAVERN_AUTH = re.compile(r"^/arc/(nodes|synctrans)(/|$)")
CAVERN_FILES = "/arc/files/"
UNEXPECTED = "unexpected exception: java.lang.RuntimeException: "


def _bearer_user(request: web.Request) -> str:
    state = state_of(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    user = state.config.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
    if user is None:
        raise SimError(
            401, "Unauthorized", headers={"WWW-Authenticate": 'Bearer realm="skaha-simulator"'}
        )
    return user


def _authenticate(request: web.Request) -> str | None:
    """The caller for routes that need one; None for anonymous routes (VOSI, pages, preauth)."""
    path = request.path
    if SKAHA_API.match(path):
        user = _bearer_user(request)
        members = state_of(request).config.group_members
        if members is not None and user not in members:
            raise SimError(403, "Not authorized to use the skaha system")
        return user
    if CAVERN_AUTH.match(path):
        return _bearer_user(request)
    if path.startswith(CAVERN_FILES) and not path[len(CAVERN_FILES) :].startswith(
        cavern_api.PREAUTH
    ):
        return _bearer_user(request)
    return None


@web.middleware
async def service_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate, run the handler, render `SimError` in the owning service's style."""
    user: str | None = None
    try:
        user = _authenticate(request)
        if user is not None:
            request[USER_KEY] = user
        response = await handler(request)
    except SimError as error:
        response = replies.render_error(request.path, error)
    except web.HTTPException:
        raise
    except Exception as exc:  # the simulated Java service maps anything else to 500 (§5)
        log.exception("simulator handler failed for %s %s", request.method, request.path)
        response = replies.render_error(
            request.path, SimError(500, UNEXPECTED + type(exc).__name__)
        )
    if user is not None and not response.prepared:
        response.headers["X-VO-Authenticated"] = user
    return response


def _uncounted(path: str) -> bool:
    """Control routes and connect pages are neither faulted nor counted."""
    return path.startswith("/_sim/") or path.startswith("/session/")


def _credential(request: web.Request) -> tuple[str | None, str | None]:
    """(token, user) a request carries: its bearer token, else its Rucio token; None if none."""
    state = state_of(request)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), state.config.tokens.get(token.strip())
    rucio_token = request.headers.get("X-Rucio-Auth-Token")
    if rucio_token:
        return rucio_token, state.rucio.peek_account(rucio_token)
    return None, None


@web.middleware
async def count_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count the request on arrival, then file it under its outcome (`stats.py`)."""
    if _uncounted(request.path):
        return await handler(request)
    token, user = _credential(request)
    stats = state_of(request).stats
    key = stats.begin(request.method, request.path, token, user)
    outcome = "cancelled"
    try:
        response = await handler(request)
        outcome = "reset" if isinstance(response, DroppedResponse) else str(response.status)
        return response
    finally:
        stats.end(key, outcome)


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Apply the fault rules matching this request (§9.10); `/_sim` is never faulted."""
    if _uncounted(request.path):
        return await handler(request)
    plan = state_of(request).faults.plan(request.method, request.path)
    request[PLAN_KEY] = plan
    # Latency and hangs are wall-clock stalls; a client that gives up cancels the handler.
    if plan.delay_s > 0:
        await asyncio.sleep(plan.delay_s)
    if plan.commit_delay_s > 0:
        return await _answer_deferred_commit(request, handler, plan)
    if plan.hang_s > 0:
        await asyncio.sleep(plan.hang_s)
    if plan.error_status is not None:
        return replies.render_error(request.path, _injected_error(request.path, plan))
    return await _answer(request, await handler(request), plan)


async def _answer(
    request: web.Request, response: web.StreamResponse, plan: FaultPlan
) -> web.StreamResponse:
    """The reply after the handler ran: late (answer_delay_s), a 500 ghost, or dropped."""
    if plan.answer_delay_s > 0:
        # The work is already committed: a client that gives up while waiting has still launched.
        await asyncio.sleep(plan.answer_delay_s)
    if plan.fail_after_commit and response.status < 400:
        # The work is done (a session or rule exists) but the caller sees a 500: a ghost.
        return replies.render_error(
            request.path, SimError(500, UNEXPECTED + "simulated failure after commit")
        )
    if plan.reset:
        return DroppedResponse(response)
    return response


async def _answer_deferred_commit(
    request: web.Request, handler: Handler, plan: FaultPlan
) -> web.StreamResponse:
    """commit_delay_s: the handler runs first (validation, a commit due later), then the answer.

    An injected error or a dropped connection answers at once and the commit still happens;
    otherwise the answer waits for the commit (and any `hang_s`), so a client that times out
    first sees the session or rule appear afterwards.
    """
    response = await handler(request)
    if plan.error_status is not None:
        return replies.render_error(request.path, _injected_error(request.path, plan))
    if plan.reset:
        return DroppedResponse(response)
    if plan.hang_s > 0:
        await asyncio.sleep(plan.hang_s)
    commit_at = request.get(COMMIT_AT_KEY)
    if commit_at is not None:
        await state_of(request).clock.wait_until(commit_at)
    return await _answer(request, response, plan)


def _injected_error(path: str, plan: FaultPlan) -> SimError:
    retry = {"Retry-After": str(plan.retry_after_s)}
    match plan.error_status:
        case 503:
            return SimError(
                503,
                f"temporarily unavailable: {path}",
                headers=retry,
                exception_class="ServiceUnavailable",
            )
        case 429:
            # Synthetic: Skaha itself never answers 429 (§1); a front proxy might.
            return SimError(
                429, "Too Many Requests", headers=retry, exception_class="TooManyRequests"
            )
        case _:
            return SimError(500, UNEXPECTED + "simulated fault", exception_class="RucioException")


class DroppedResponse(web.StreamResponse):
    """A reply that sends its head and half its body, then aborts the TCP connection (p_reset).

    aiohttp treats the `ConnectionResetError` raised from `prepare` as a client disconnect,
    so the drop is quiet on the server side.
    """

    def __init__(self, original: web.StreamResponse) -> None:
        super().__init__(status=original.status, reason=original.reason)
        body = original.body if isinstance(original, web.Response) else b""
        self._payload = body if isinstance(body, bytes) else b""
        self._original_type = original.content_type

    async def prepare(self, request: BaseRequest) -> AbstractStreamWriter | None:
        """Write a truncated reply and abort the connection."""
        transport = request.transport
        if transport is not None:
            head = (
                f"HTTP/1.1 {self.status} {self.reason}\r\n"
                f"Content-Type: {self._original_type}\r\n"
                f"Content-Length: {len(self._payload) + 64}\r\n\r\n"
            ).encode()
            transport.write(head + self._payload[: len(self._payload) // 2])
            transport.abort()
        raise ConnectionResetError("connection dropped by the simulator (p_reset)")


def make_app(state: SimState) -> web.Application:
    """Build the application for one simulator state."""
    app = web.Application(
        middlewares=[
            jobs.settle_middleware(state),
            count_middleware,
            fault_middleware,
            service_middleware,
        ]
    )
    app[STATE_KEY] = state
    jobs.add_routes(app, state)
    skaha_api.add_routes(app)
    cavern_api.add_routes(app)
    rucio_api.add_routes(app)
    pages.add_routes(app)
    pypi.add_routes(app)
    control_api.add_routes(app)
    control_access.add_routes(app)
    cavern_seed.add_routes(app)
    return app
