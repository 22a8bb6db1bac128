"""HTTP failures map to the platform error hierarchy, keeping the server's text.

Facts: docs/platform-api.md §5.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from skaha_operator.platform.base import retry_after_seconds
from skaha_operator.platform.errors import (
    AuthError,
    BadReply,
    Conflict,
    NotFound,
    RateLimited,
    Rejected,
    SkahaError,
    Unavailable,
)
from skaha_operator.platform.wire import SessionParams
from tests.unit.platform_mock import Sleeps, policy, skaha, text


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, Rejected),
        (401, AuthError),
        (403, AuthError),
        (404, NotFound),
        (409, Conflict),
        (412, Rejected),
        (429, RateLimited),
        (500, Unavailable),
        (503, Unavailable),
    ],
)
async def test_status_maps_to_error_class_with_server_text(status: int, kind: type) -> None:
    client = skaha(lambda _: text(status, "the server's own words\n"), policy(Sleeps(), 1))
    with pytest.raises(SkahaError) as caught:
        await client.get_session("abcd1234")
    assert type(caught.value) is kind
    assert caught.value.message == "the server's own words"
    assert caught.value.status == status
    assert caught.value.route == "/v1/session/{id}"
    assert isinstance(caught.value.__cause__, httpx.HTTPStatusError)


async def test_validation_message_is_kept_verbatim() -> None:
    message = "Invalid value for 'gpus': 0"
    client = skaha(lambda _: text(400, message + "\n"))
    with pytest.raises(Rejected) as caught:
        await client.create_session(SessionParams(name="n", image="images.canfar.net/x:1", gpus=0))
    assert caught.value.message == message
    assert message in str(caught.value)


async def test_503_carries_retry_after() -> None:
    client = skaha(
        lambda _: text(503, "temporarily unavailable: /skaha/v1/context", {"Retry-After": "7"}),
        policy(Sleeps(), 1),
    )
    with pytest.raises(Unavailable) as caught:
        await client.context()
    assert caught.value.retry_after == 7.0
    assert caught.value.maybe_committed is False  # a GET commits nothing


async def test_post_500_may_have_committed() -> None:
    client = skaha(lambda _: text(500, "unexpected exception: java.lang.RuntimeException: x"))
    with pytest.raises(Unavailable) as caught:
        await client.create_session(SessionParams(name="n", image="images.canfar.net/x:1"))
    assert caught.value.maybe_committed is True


async def test_connect_error_is_unavailable_and_not_committed() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = skaha(refuse)
    with pytest.raises(Unavailable) as caught:
        await client.create_session(SessionParams(name="n", image="images.canfar.net/x:1"))
    assert caught.value.maybe_committed is False
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert "ConnectError" in caught.value.message


async def test_read_timeout_on_post_may_have_committed() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    client = skaha(hang)
    with pytest.raises(Unavailable) as caught:
        await client.create_session(SessionParams(name="n", image="images.canfar.net/x:1"))
    assert caught.value.maybe_committed is True
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


async def test_non_json_reply_is_bad_reply() -> None:
    client = skaha(lambda _: httpx.Response(200, text="<html>proxy page</html>"))
    with pytest.raises(BadReply):
        await client.list_sessions()


async def test_json_object_where_list_expected_is_bad_reply() -> None:
    client = skaha(lambda _: httpx.Response(200, json={"id": "x"}))
    with pytest.raises(BadReply):
        await client.images()


async def test_empty_launch_reply_is_bad_reply() -> None:
    client = skaha(lambda _: text(200, "\n"))
    with pytest.raises(BadReply):
        await client.create_session(SessionParams(name="n", image="images.canfar.net/x:1"))


def test_retry_after_parses_seconds_and_http_dates() -> None:
    now = datetime(2026, 8, 6, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("12", now) == 12.0
    assert retry_after_seconds("Thu, 06 Aug 2026 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Thu, 06 Aug 2026 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


def test_error_str_names_service_route_and_status() -> None:
    error = NotFound(
        "session abc not found", status=404, service="skaha", method="GET", route="/v1/x"
    )
    assert str(error) == "skaha GET /v1/x -> 404: session abc not found"
    assert repr(error) == "NotFound(skaha GET /v1/x -> 404: session abc not found)"
    assert isinstance(error, Rejected)
