"""runtime/driver.py: an API server that is busy or not ready is a planned wait, not an error."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from kubernetes import client

from skaha_operator.controllers.base import Outcome
from skaha_operator.controllers.context import Context, OperatorConfig
from skaha_operator.k8s.objects import ObjectCache
from skaha_operator.runtime.driver import BUSY_DELAY, step_once
from skaha_operator.runtime.state import OperatorState

KEY = ("computes", "ns", "c")
BODY = {"metadata": {"namespace": "ns", "name": "c", "uid": "u", "resourceVersion": "1"}}


class Kube:
    async def add_finalizer(self, plural: str, body: dict[str, Any], name: str) -> dict[str, Any]:
        return body


class Refused:
    """A controller whose step sends one request the API server answers `status`."""

    kind, plural = "Compute", "computes"

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.status, self.headers = status, headers

    async def step(self, body: dict[str, Any], ctx: Context) -> Outcome:
        exc = client.ApiException(status=self.status, reason="Refused")
        exc.headers = self.headers
        raise exc


async def _read(plural: str, ns: str, name: str) -> dict[str, Any] | None:
    return None


def _state() -> OperatorState:
    cache = ObjectCache(_read)
    cache.put("computes", BODY)
    ctx = Context(config=OperatorConfig(), kube=Kube(), platforms=None, cache=cache)  # type: ignore[arg-type]
    return OperatorState(ctx=ctx)


@pytest.mark.parametrize(
    ("status", "headers", "delay"),
    [
        (503, {"Retry-After": "3"}, 3.0),  # a CRD's schema not yet known to admission
        (429, {"Retry-After": "120"}, 30.0),  # priority and fairness; capped
        (429, {"Retry-After": "0"}, 1.0),
        (504, None, BUSY_DELAY),
        (503, {"Retry-After": "Fri, 04 Dec 2026 17:00:00 GMT"}, 1.0),  # a date gone by: soon
        (503, {"Retry-After": "nan"}, 1.0),
        (503, {"Retry-After": "soon"}, BUSY_DELAY),
    ],
)
async def test_a_busy_api_server_steps_the_object_again_after_its_retry_after(
    status: int, headers: dict[str, str] | None, delay: float, caplog: pytest.LogCaptureFixture
) -> None:
    st = _state()
    with caplog.at_level(logging.INFO, logger="skaha_operator"):
        assert await step_once(Refused(status, headers), st, KEY) == delay
    said = [r for r in caplog.records if "the API server answered" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.INFO]
    assert f"{status} Refused" in said[0].getMessage()
    await st.requeuer.aclose()


async def test_any_other_refusal_stays_an_error() -> None:
    st = _state()
    with pytest.raises(client.ApiException):
        await step_once(Refused(500), st, KEY)
    await st.requeuer.aclose()
