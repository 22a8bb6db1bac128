"""Routine waits are logged at INFO, never ERROR: a retried API request; a request that gives up
stays an ERROR. (A release waits with an in-memory wake-up, runtime/driver.py: kopf logs no
TemporaryError for it any more.)"""

from __future__ import annotations

import logging

import pytest

from skaha_operator.runtime.driver import RetryIsNotAnError


def record(msg: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord("kopf._cogs.clients.api", level, __file__, 1, msg, None, None)


@pytest.mark.parametrize(
    ("msg", "level"),
    [
        ("Request attempt #1/9 failed; will retry: GET /apis/x -> APITooManyRequestsError(...)",
         logging.INFO),
        ("Request attempt #9/9 failed; escalating: GET /apis/x -> APIServerError(...)",
         logging.ERROR),
        ("Handler 'x' failed with an exception. Will retry.", logging.ERROR),
    ],
)  # fmt: skip
def test_a_retried_request_is_info_and_a_given_up_one_an_error(msg: str, level: int) -> None:
    r = record(msg)
    assert RetryIsNotAnError().filter(r) is True  # never dropped, only re-levelled
    assert (r.levelno, r.levelname) == (level, logging.getLevelName(level))


def test_the_operator_installs_the_retry_filter_on_kopfs_handler() -> None:
    import kopf

    from skaha_operator.runtime import run

    root = logging.getLogger()
    saved = root.handlers[:]
    try:
        kopf.configure(verbose=False)
        calls: list[str] = []

        def fake_run(coro: object) -> None:
            calls.append("run")
            coro.close()  # type: ignore[attr-defined]

        mp = pytest.MonkeyPatch()
        mp.setattr(run.asyncio, "run", fake_run)
        try:
            run.run_operator(run.OperatorConfig())
        finally:
            mp.undo()
        assert calls == ["run"]
        assert any(isinstance(f, RetryIsNotAnError) for h in root.handlers for f in h.filters), (
            root.handlers
        )
    finally:
        root.handlers[:] = saved


@pytest.mark.parametrize(("verbose", "shown"), [(False, False), (True, True)])
def test_httpx_request_lines_only_with_verbose(verbose: bool, shown: bool) -> None:
    """httpx logs each request at INFO with its URL (a Skaha session id; our own lines name the
    route template): one line per look at every running job. Shown only with --verbose."""
    import kopf

    from skaha_operator.runtime import run

    root, httpx_log = logging.getLogger(), logging.getLogger("httpx")
    saved, saved_level = root.handlers[:], httpx_log.level
    mp = pytest.MonkeyPatch()
    try:
        kopf.configure(verbose=False)
        mp.setattr(run.asyncio, "run", lambda coro: coro.close())
        run.run_operator(run.OperatorConfig(), verbose=verbose)
        assert httpx_log.isEnabledFor(logging.INFO) is shown
        assert httpx_log.isEnabledFor(logging.WARNING)
    finally:
        mp.undo()
        httpx_log.setLevel(saved_level)
        root.handlers[:] = saved
