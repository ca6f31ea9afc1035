"""ComputeClient with a fake Http: paging, which failures are retried, backoff, cancellation, metrics."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httplib2
import pytest

from gce_plugin import metrics
from gce_plugin.plugins.gce.compute import ComputeClient, ComputeError, RetryPolicy, api_root

Reply = tuple[int, Any] | BaseException
T = TypeVar("T")


class FakeHttp:
    """An httplib2.Http stand-in answering from a script; records every request."""

    def __init__(self, replies: Sequence[Reply]) -> None:
        self.replies = list(replies)
        self.requests: list[tuple[str, str]] = []

    def request(self, uri: str, method: str = "GET", body: Any = None, headers: Any = None, **_: Any) -> Any:
        self.requests.append((method, uri))
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        status, payload = reply
        headers_out = {"status": str(status), "content-type": "application/json"}
        if isinstance(payload, tuple):  # (body, extra headers)
            payload, extra = payload
            headers_out.update(extra)
        return httplib2.Response(headers_out), json.dumps(payload).encode()


def error(code: int, reason: str = "", message: str = "boom") -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "errors": [{"reason": reason, "message": message}]}}


class Recorder:
    def __init__(self, upper: bool = True) -> None:
        self.sleeps: list[float] = []
        self.bounds: list[float] = []
        self.upper = upper

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def rand(self, low: float, high: float) -> float:
        self.bounds.append(high)
        return high if self.upper else low


def client_for(http: FakeHttp, rec: Recorder, policy: RetryPolicy | None = None) -> ComputeClient:
    return ComputeClient(
        None,
        endpoint="http://127.0.0.1:1/",
        retry=policy or RetryPolicy(),
        sleep=rec.sleep,
        rand=rec.rand,
        http_factory=lambda: http,
    )


def run(call: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(call)


def counter(metric: Any, **labels: str) -> float:
    value = metrics.REGISTRY.get_sample_value(metric._name + "_total", labels)
    return value or 0.0


def test_api_root_adds_the_compute_path_only_when_the_url_has_none() -> None:
    assert api_root("http://127.0.0.1:8085") == "http://127.0.0.1:8085/compute/v1/"
    assert api_root("http://127.0.0.1:8085/") == "http://127.0.0.1:8085/compute/v1/"
    assert api_root("https://example.test/compute/v1") == "https://example.test/compute/v1/"
    with pytest.raises(ValueError, match="http"):
        api_root("127.0.0.1:8085")


def test_list_follows_next_page_token_to_the_end_with_max_results_500() -> None:
    http = FakeHttp(
        [
            (200, {"items": [{"name": "a"}], "nextPageToken": "t1"}),
            (200, {"items": [{"name": "b"}], "nextPageToken": "t2"}),
            (200, {"items": [{"name": "c"}]}),
        ]
    )
    items = run(client_for(http, Recorder()).list_instances("p", "us-central1-a"))
    assert [i["name"] for i in items] == ["a", "b", "c"]
    queries = [parse_qs(urlsplit(uri).query) for _, uri in http.requests]
    assert [q.get("pageToken") for q in queries] == [None, ["t1"], ["t2"]]
    assert all(q["maxResults"] == ["500"] for q in queries)
    assert urlsplit(http.requests[0][1]).path == "/compute/v1/projects/p/zones/us-central1-a/instances"


def test_list_group_instances_posts_running_only_for_zonal_and_regional_groups() -> None:
    http = FakeHttp([(200, {"items": [{"instance": "x"}]}), (200, {})])
    client = client_for(http, Recorder())
    assert run(client.list_group_instances("p", "zones", "us-central1-a", "web")) == [{"instance": "x"}]
    assert run(client.list_group_instances("p", "regions", "us-central1", "api")) == []
    paths = [(m, urlsplit(u).path) for m, u in http.requests]
    assert paths == [
        ("POST", "/compute/v1/projects/p/zones/us-central1-a/instanceGroups/web/listInstances"),
        ("POST", "/compute/v1/projects/p/regions/us-central1/instanceGroups/api/listInstances"),
    ]


def test_list_managed_instances_sends_max_results_only_when_paginated_and_follows_any_token() -> None:
    http = FakeHttp(
        [
            (200, {"managedInstances": [{"name": "a"}], "nextPageToken": "t1"}),
            (200, {"managedInstances": [{"name": "b"}]}),
            (200, {"managedInstances": [{"name": "c"}, {"name": "d"}]}),
            (200, {}),
        ]
    )
    client = client_for(http, Recorder())
    paged = run(client.list_managed_instances("p", "zones", "us-central1-a", "shop", paginated=True))
    pageless = run(client.list_managed_instances("p", "regions", "us-central1", "cart", paginated=False))
    empty = run(client.list_managed_instances("p", "regions", "us-central1", "cart", paginated=False))
    assert [i["name"] for i in paged] == ["a", "b"] and [i["name"] for i in pageless] == ["c", "d"]
    assert empty == []
    queries = [parse_qs(urlsplit(uri).query) for _, uri in http.requests]
    assert [q.get("maxResults") for q in queries] == [["500"], ["500"], None, None]
    assert [q.get("pageToken") for q in queries] == [None, ["t1"], None, None]
    paths = [(m, urlsplit(u).path) for m, u in http.requests]
    assert paths[0] == (
        "POST",
        "/compute/v1/projects/p/zones/us-central1-a/instanceGroupManagers/shop/listManagedInstances",
    )
    assert paths[2] == (
        "POST",
        "/compute/v1/projects/p/regions/us-central1/instanceGroupManagers/cart/listManagedInstances",
    )


@pytest.mark.parametrize(
    "failure",
    [
        (429, error(429, "rateLimitExceeded")),
        (403, error(403, "rateLimitExceeded")),
        (403, error(403, "userRateLimitExceeded")),
        (500, error(500, "backendError")),
        (503, error(503)),
        TimeoutError("timed out"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
    ids=["429", "403-rate", "403-user-rate", "500", "503", "timeout", "refused"],
)
def test_transient_failures_are_retried_with_exponential_full_jitter(failure: Reply) -> None:
    http = FakeHttp([failure, failure, failure, (200, {"name": "web"})])
    rec = Recorder()
    group = run(client_for(http, rec).get_instance_group("p", "zones", "us-central1-a", "web"))
    assert group == {"name": "web"}
    assert len(http.requests) == 4
    assert rec.bounds == [0.5, 1.0, 2.0]  # base * 2**n: the upper bound of the jitter
    assert rec.sleeps == [0.5, 1.0, 2.0]


def test_jitter_is_full_the_sleep_can_be_zero_and_is_capped() -> None:
    http = FakeHttp([(503, error(503))] * 6 + [(200, {})])
    rec = Recorder(upper=False)
    policy = RetryPolicy(max_attempts=10, base_delay=1.0, max_delay=4.0, max_elapsed=1000)
    run(client_for(http, rec, policy).get_instance_group("p", "zones", "z-a-b", "g"))
    assert rec.sleeps == [0.0] * 6
    assert rec.bounds == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    http = FakeHttp([(429, (error(429, "rateLimitExceeded"), {"retry-after": "3"})), (200, {})])
    rec = Recorder(upper=False)
    run(client_for(http, rec).get_instance_group("p", "zones", "z-a-b", "g"))
    assert rec.sleeps == [3.0]


@pytest.mark.parametrize(
    ("code", "reason"), [(404, "notFound"), (403, "forbidden"), (400, "invalid"), (401, "authError")]
)
def test_other_client_errors_are_final(code: int, reason: str) -> None:
    http = FakeHttp([(code, error(code, reason, "The resource 'x' was not found"))])
    rec = Recorder()
    before = counter(metrics.COMPUTE_API_ERRORS, method="instanceGroups.get", code=str(code))
    with pytest.raises(ComputeError) as caught:
        run(client_for(http, rec).get_instance_group("p", "zones", "us-central1-a", "web"))
    assert caught.value.code == code
    assert caught.value.reason == reason
    assert caught.value.not_found == (code == 404)
    assert "instanceGroups.get" in str(caught.value)
    assert rec.sleeps == []
    assert counter(metrics.COMPUTE_API_ERRORS, method="instanceGroups.get", code=str(code)) == before + 1


def test_attempts_are_bounded_and_every_attempt_is_counted() -> None:
    http = FakeHttp([(500, error(500))] * 3)
    rec = Recorder()
    calls_before = counter(metrics.COMPUTE_API_CALLS, method="instances.list", code="500")
    errors_before = counter(metrics.COMPUTE_API_ERRORS, method="instances.list", code="500")
    with pytest.raises(ComputeError) as caught:
        run(client_for(http, rec, RetryPolicy(max_attempts=3)).list_instances("p", "us-central1-a"))
    assert caught.value.code == 500
    assert len(http.requests) == 3
    assert len(rec.sleeps) == 2
    assert counter(metrics.COMPUTE_API_CALLS, method="instances.list", code="500") == calls_before + 3
    assert counter(metrics.COMPUTE_API_ERRORS, method="instances.list", code="500") == errors_before + 1


def test_total_time_is_bounded() -> None:
    now = [0.0]
    http = FakeHttp([(503, error(503))] * 10)
    rec = Recorder()

    async def sleep(seconds: float) -> None:
        rec.sleeps.append(seconds)
        now[0] += seconds

    client = ComputeClient(
        None,
        endpoint="http://127.0.0.1:1/",
        retry=RetryPolicy(max_attempts=10, base_delay=1.0, max_delay=100.0, max_elapsed=5.0),
        sleep=sleep,
        rand=rec.rand,
        clock=lambda: now[0],
        http_factory=lambda: http,
    )
    with pytest.raises(ComputeError):
        run(client.list_instances("p", "us-central1-a"))
    assert rec.sleeps == [1.0, 2.0]  # the next one (4 s) would end past 5 s
    assert len(http.requests) == 3


def test_cancelling_a_call_ends_its_backoff_wait_at_once() -> None:
    http = FakeHttp([(503, error(503)), (200, {})])
    client = ComputeClient(
        None,
        endpoint="http://127.0.0.1:1/",
        retry=RetryPolicy(base_delay=3600, max_delay=3600, max_elapsed=1e9),
        rand=lambda lo, hi: hi,
        http_factory=lambda: http,
    )

    async def body() -> float:
        call = asyncio.create_task(client.list_instances("p", "us-central1-a"))
        for _ in range(500):  # until the first attempt failed (polling, with a deadline)
            if http.requests:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        started = time.monotonic()
        call.cancel()  # without it this would wait an hour
        with pytest.raises(asyncio.CancelledError):
            await call
        return time.monotonic() - started

    try:
        assert run(body()) < 1.0
        assert len(http.requests) == 1
    finally:
        client.close()


def test_each_thread_gets_its_own_http() -> None:
    made: list[FakeHttp] = []

    class SlowHttp(FakeHttp):
        def request(
            self, uri: str, method: str = "GET", body: Any = None, headers: Any = None, **_: Any
        ) -> Any:
            time.sleep(0.05)  # long enough for the calls to overlap
            return super().request(uri, method, body, headers)

    def factory() -> FakeHttp:
        made.append(SlowHttp([(200, {})] * 5))
        return made[-1]

    client = ComputeClient(None, endpoint="http://127.0.0.1:1/", http_factory=factory, max_concurrent_calls=2)

    async def three_at_once() -> None:
        await asyncio.gather(*(client.list_instances("p", "us-central1-a") for _ in range(3)))

    try:
        run(three_at_once())
    finally:
        client.close()
    # Two threads, one Http each; the third call reused one of them.
    assert sorted(len(h.requests) for h in made) == [1, 2]
