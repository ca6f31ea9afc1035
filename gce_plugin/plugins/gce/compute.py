"""A small Compute Engine v1 client: the few read calls discovery needs, with paging, retries and
per-call timeouts, on google-api-python-client.

Threads: httplib2 is not thread-safe, so every worker thread gets its own ``Http`` (wrapped in
google-auth's ``AuthorizedHttp``) and its own service object, kept in a ``threading.local``. Per
thread rather than per call, so a thread reuses its keep-alive connection (and TLS session) across
the calls of a poll; nothing of httplib2 or googleapiclient is shared between threads. Credentials
are shared: google-auth refreshes them in whichever thread finds them expired.

Memory: googleapiclient's bundled Compute discovery document is 4.8 MB of JSON, ~11 MiB and
~108,000 GC-tracked objects once parsed, and ``build`` parses it again for every service object
(every worker thread). The client uses a copy cut down to the resources and methods it calls
(``compute_v1_discovery.json``, 160 KB, kept current by a test), loaded once per process; each
thread builds from its own deep copy (googleapiclient writes into the document it builds from, so
threads must not share one).

Timeouts: ``timeout`` is httplib2's socket timeout (per connect/read), and every HTTP attempt also
has a total deadline (``attempt_deadline``, default three times ``timeout``): a response that trickles
in a byte every few seconds never passes a read timeout, so the attempt is abandoned at its deadline
and its connection shut down (the thread ends at once, its answer unused), then retried like a
timeout. With bounded retries one call is bounded in time (``RetryPolicy.max_elapsed``), and the
refresh loop bounds a whole poll.

Bodies: a body that is not a JSON object (truncated, HTML, ``null``, bad JSON) is a failure of that
method (``code="malformed"``, retried like a transport error), never counted as a 200. A response
larger than ``max_response_bytes`` is refused (``code="too_large"``, final). Paging ends with an error
when a ``nextPageToken`` repeats or a list exceeds ``max_pages`` pages.

Retries, in asyncio: each HTTP attempt is one job on the client's bounded thread pool; 429, 403
``rateLimitExceeded``/``userRateLimitExceeded``, 5xx, timeouts and connection errors are retried
after ``await asyncio.sleep`` (exponential backoff with full jitter, at least the server's
``Retry-After``), bounded in attempts and total time. Cancelling a call is cancelling its task.
404 and other 4xx are final. Every HTTP attempt counts in ``COMPUTE_API_CALLS{method,code}``, every
final failure in ``COMPUTE_API_ERRORS{method,code}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import http.client
import itertools
import json
import logging
import random
import socket
import threading
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import google.auth.exceptions
import google_auth_httplib2
import httplib2
from google.auth.credentials import AnonymousCredentials, Credentials
from googleapiclient.discovery import build_from_document
from googleapiclient.discovery_cache import get_static_doc
from googleapiclient.errors import HttpError

from gce_plugin import metrics, redact

log = logging.getLogger(__name__)

PAGE_SIZE = 500  # the Compute API's maximum maxResults
MAX_PAGES = 1000  # 500,000 items per list: far beyond any group or zone; a longer list is a fault
MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # one page of 500 instances is well under 2 MB
MAX_CONCURRENT_CALLS = 8
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: before retry n (0-based) sleep a uniform random time in
    ``[0, min(max_delay, base_delay * 2**n)]``; give up after ``max_attempts`` attempts or when the
    next sleep would end past ``max_elapsed`` seconds since the first attempt."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_elapsed: float = 30.0


class ComputeError(Exception):
    """A Compute API call failed for good (after retries). ``code`` is the HTTP status, or None for
    transport failures (timeout, connection refused, ...)."""

    def __init__(self, method: str, code: int | None, reason: str, message: str) -> None:
        status = f"HTTP {code}" if code is not None else "transport error"
        detail = f" {reason}" if reason else ""
        super().__init__(f"{method}: {status}{detail}: {message}")
        self.method = method
        self.code = code
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.code == 404


@dataclass(frozen=True)
class _Failure:
    error: ComputeError
    retryable: bool
    retry_after: float | None = None  # the server's Retry-After, in seconds


def api_root(endpoint: str) -> str:
    """The Compute v1 root for an endpoint override. googleapiclient uses ``api_endpoint`` verbatim
    as the base URL, so ``http://host:port`` (no path) gets the real API's ``compute/v1/`` path,
    and a URL with a path is kept as given (with a trailing slash)."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"compute endpoint {redact.scrub(endpoint)!r}: want an http(s) URL, e.g. http://127.0.0.1:8085/"
        )
    if "@" in parts.netloc:
        # The HTTP client would take "user:password@host" for a host name (and put it in errors):
        # credentials come from the credentials chain, never from the URL.
        log.warning("compute endpoint: the user:password in the URL is ignored (use --credentials-file)")
        parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
        endpoint = parts.geturl()
    if parts.path in ("", "/"):
        return f"{parts.scheme}://{parts.netloc}/compute/v1/"
    return endpoint if endpoint.endswith("/") else endpoint + "/"


def _http_error_details(exc: HttpError) -> tuple[str, str]:
    """(first error reason, message) of a Compute error body, e.g. ("notFound", "The resource ...")."""
    try:
        body = json.loads(exc.content.decode("utf-8", "replace"))
        error = body.get("error", {})
        reasons = [e.get("reason", "") for e in error.get("errors", []) if isinstance(e, dict)]
        return (reasons[0] if reasons else str(error.get("status", ""))), str(error.get("message", ""))
    except (ValueError, AttributeError):
        return "", str(exc.resp.reason or "")


def _retry_after(exc: HttpError) -> float | None:
    value = exc.resp.get("retry-after") if exc.resp is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class _TooLarge(Exception):
    pass


def _bounded_connection(base: type[http.client.HTTPConnection], max_bytes: int) -> type[Any]:
    """``base`` (one of httplib2's connection classes) whose responses refuse a body over
    ``max_bytes`` while reading it: a huge or endless answer costs at most that much memory."""

    class BoundedResponse(http.client.HTTPResponse):
        def read(self, amt: int | None = None) -> bytes:
            if amt is not None:
                return super().read(amt)
            if self.length is not None:  # a Content-Length: checked before reading (a short body
                if self.length > max_bytes:  # still ends in IncompleteRead)
                    raise _TooLarge(f"response of {self.length} bytes exceeds the limit of {max_bytes}")
                return super().read()
            chunks: list[bytes] = []
            total = 0
            while chunk := super().read(min(1 << 16, max_bytes + 1 - total)):
                total += len(chunk)
                if total > max_bytes:
                    self.close()
                    raise _TooLarge(f"response exceeds the limit of {max_bytes} bytes")
                chunks.append(chunk)
            return b"".join(chunks)

    return type(base.__name__, (base,), {"response_class": BoundedResponse})


class _GuardedHttp:
    """An httplib2.Http-like wrapper: refuses bodies over a size limit (while reading them, for a
    real ``httplib2.Http``), and can be aborted from another thread (its connections' sockets shut
    down, so a blocked read ends at once)."""

    def __init__(self, http: Any, max_bytes: int) -> None:
        self.http = http
        self._max_bytes = max_bytes
        self.aborted = False
        self._connection_types = {
            scheme: _bounded_connection(base, max_bytes)
            for scheme, base in httplib2.SCHEME_TO_CONNECTION.items()
        }

    def request(self, uri: str, *args: Any, **kwargs: Any) -> Any:
        if isinstance(self.http, httplib2.Http) and kwargs.get("connection_type") is None:
            scheme = uri.partition(":")[0].lower()
            kwargs["connection_type"] = self._connection_types.get(scheme)
        resp, content = self.http.request(uri, *args, **kwargs)
        if content is not None and len(content) > self._max_bytes:  # e.g. after decompression
            raise _TooLarge(f"response of {len(content)} bytes exceeds the limit of {self._max_bytes}")
        return resp, content

    def abort(self) -> None:
        self.aborted = True
        for conn in list((getattr(self.http, "connections", None) or {}).values()):
            sock = getattr(conn, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.http, name)


def _bind_token(make: Callable[[Any, str | None], Any], token: str | None) -> Callable[[Any], Any]:
    return lambda service: make(service, token)


# The resources and methods of the discovery document the calls below use; the rest is never loaded.
USED_METHODS: dict[str, tuple[str, ...]] = {
    "instanceGroups": ("get", "aggregatedList", "listInstances"),
    "regionInstanceGroups": ("get", "listInstances"),
    "instances": ("list",),
    "instanceGroupManagers": ("get", "listManagedInstances"),
    "regionInstanceGroupManagers": ("get", "listManagedInstances"),
}


def _refs(node: Any) -> Iterator[str]:
    """Every schema name a (part of a) discovery document refers to with ``$ref``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


# ``prune(bundled document)``, written by ``write_document()`` and checked against the installed
# googleapiclient's bundled document by the tests: loading it costs ~0.5 MiB instead of parsing
# 4.8 MB of JSON (whose ~12 MiB the allocator then keeps).
DOCUMENT_FILE = Path(__file__).with_name("compute_v1_discovery.json")


def prune(full: JsonObject) -> JsonObject:
    """A discovery document cut to ``USED_METHODS`` and the schemas they reach."""
    resources = {
        name: {"methods": {m: full["resources"][name]["methods"][m] for m in methods}}
        for name, methods in USED_METHODS.items()
    }
    schemas: dict[str, Any] = {}
    pending = list(_refs(resources))
    while pending:
        name = pending.pop()
        if name not in schemas:
            schemas[name] = full["schemas"][name]
            pending.extend(_refs(schemas[name]))
    document: JsonObject = {k: v for k, v in full.items() if k not in ("resources", "schemas")}
    document["resources"] = resources
    document["schemas"] = dict(sorted(schemas.items()))
    return document


def bundled_document() -> JsonObject:
    """googleapiclient's bundled Compute v1 discovery document, pruned (parses all 4.8 MB)."""
    return prune(json.loads(get_static_doc("compute", "v1") or "{}"))


def write_document() -> None:
    """Regenerate ``DOCUMENT_FILE`` (after a googleapiclient upgrade, or a change of USED_METHODS)."""
    DOCUMENT_FILE.write_text(json.dumps(bundled_document(), indent=1, sort_keys=True) + "\n")


@functools.cache
def _document() -> JsonObject:
    """The Compute v1 discovery document with only ``USED_METHODS`` and the schemas they reach;
    loaded once per process. Do not modify it: build from a copy."""
    try:
        document: JsonObject = json.loads(DOCUMENT_FILE.read_text())
    except OSError:
        return bundled_document()
    return document


def _scoped(collection: str, scope: str, location: str) -> tuple[str, dict[str, str]]:
    """The collection of a zonal (``scope="zones"``) or regional call and its location argument:
    ``instanceGroups`` and ``zone=...``, or ``regionInstanceGroups`` and ``region=...``."""
    if scope == "zones":
        return collection, {"zone": location}
    return "region" + collection[0].upper() + collection[1:], {"region": location}


class ComputeClient:
    """The Compute v1 calls of discovery. Methods are coroutines returning the API's JSON objects and
    raising ``ComputeError``; cancelling one cancels its retries (an attempt already running in a
    thread ends within the timeout, its answer unused)."""

    def __init__(
        self,
        credentials: Credentials | None,
        endpoint: str | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[float, float], float] = random.uniform,
        clock: Callable[[], float] = time.monotonic,
        http_factory: Callable[[], Any] | None = None,
        page_size: int = PAGE_SIZE,
        max_concurrent_calls: int = MAX_CONCURRENT_CALLS,
        attempt_deadline: float | None = None,
        max_pages: int = MAX_PAGES,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self._credentials = credentials
        self._page_size = page_size  # maxResults of list calls; smaller only in tests
        self._max_pages = max_pages
        self._max_response_bytes = max_response_bytes
        # The total time of one HTTP attempt (socket timeouts are per read only).
        self._attempt_deadline = attempt_deadline if attempt_deadline is not None else 3 * timeout
        # The Http of each attempt in flight (by job number), to abort it past its deadline.
        self._jobs = itertools.count()
        self._in_flight: dict[int, _GuardedHttp] = {}
        self._abandoned: set[int] = set()  # attempts whose caller gave up before they started
        # A fresh httplib2.Http-like object for a thread (tests pass fakes).
        self._http_factory = http_factory or (lambda: httplib2.Http(timeout=timeout))
        self._root = api_root(endpoint) if endpoint else None
        self._where = self._root or "https://compute.googleapis.com/"  # named in transport errors
        self._retry = retry
        self._sleep = sleep
        self._rand = rand
        self._clock = clock
        self._local = threading.local()
        # Every HTTP attempt is one job here (httplib2 blocks); bounded, so a poll never opens more
        # than this many connections at once.
        self._executor = ThreadPoolExecutor(
            max_workers=max_concurrent_calls, thread_name_prefix="gce-compute"
        )

    def close(self, wait: bool = False) -> None:
        """Stop the thread pool (``wait``: until its threads are done): attempts in flight end within
        the timeout, queued ones never start."""
        self._executor.shutdown(wait=wait, cancel_futures=True)

    # --- the calls ---------------------------------------------------------------------------

    async def get_instance_group(self, project: str, scope: str, location: str, name: str) -> JsonObject:
        """``instanceGroups.get`` (``scope="zones"``) or ``regionInstanceGroups.get``."""
        collection, where = _scoped("instanceGroups", scope, location)
        return await self._call(
            f"{collection}.get",
            lambda s: getattr(s, collection)().get(project=project, instanceGroup=name, **where),
        )

    async def aggregated_instance_groups(self, project: str, expression: str) -> dict[str, list[JsonObject]]:
        """``instanceGroups.aggregatedList``: scope (``zones/us-central1-a``) -> groups."""
        scopes: dict[str, list[JsonObject]] = {}
        for page in await self._pages(
            "instanceGroups.aggregatedList",
            lambda s, token: s.instanceGroups().aggregatedList(
                project=project, filter=expression, maxResults=self._page_size, pageToken=token
            ),
        ):
            for scope, scoped in (page.get("items") or {}).items():
                scopes.setdefault(scope, []).extend(scoped.get("instanceGroups") or [])
        return scopes

    async def list_group_instances(
        self, project: str, scope: str, location: str, name: str
    ) -> list[JsonObject]:
        """RUNNING members of a zonal (``scope="zones"``) or regional (``"regions"``) group, as
        ``InstanceWithNamedPorts`` objects."""
        collection, where = _scoped("instanceGroups", scope, location)
        body = {"instanceState": "RUNNING"}
        return await self._list(
            f"{collection}.listInstances",
            lambda s, token: getattr(s, collection)().listInstances(
                project=project,
                instanceGroup=name,
                body=body,
                maxResults=self._page_size,
                pageToken=token,
                **where,
            ),
        )

    async def list_instances(self, project: str, zone: str) -> list[JsonObject]:
        """Every instance of a zone (one walk serves all groups of the zone)."""
        return await self._list(
            "instances.list",
            lambda s, token: s.instances().list(
                project=project, zone=zone, maxResults=self._page_size, pageToken=token
            ),
        )

    # --- managed instance groups (``managed.py`` decides when these are called) ----------------

    async def get_group_manager(self, project: str, scope: str, location: str, name: str) -> JsonObject:
        """``instanceGroupManagers.get`` (``scope="zones"``) or ``regionInstanceGroupManagers.get``."""
        collection, where = _scoped("instanceGroupManagers", scope, location)
        return await self._call(
            f"{collection}.get",
            lambda s: getattr(s, collection)().get(project=project, instanceGroupManager=name, **where),
        )

    async def list_managed_instances(
        self, project: str, scope: str, location: str, name: str, paginated: bool
    ) -> list[JsonObject]:
        """Every ``ManagedInstance`` of a zonal or regional manager (a POST without a body).
        ``maxResults`` is sent only when the manager's ``listManagedInstancesResults`` is PAGINATED
        (PAGELESS answers everything in one response, past 500 too); a ``nextPageToken`` is followed
        whenever one comes (the setting may have changed since the manager was read)."""
        collection, where = _scoped("instanceGroupManagers", scope, location)
        size = self._page_size if paginated else None
        pages = await self._pages(
            f"{collection}.listManagedInstances",
            lambda s, token: getattr(s, collection)().listManagedInstances(
                project=project, instanceGroupManager=name, maxResults=size, pageToken=token, **where
            ),
        )
        return [item for page in pages for item in page.get("managedInstances") or []]

    # --- paging ------------------------------------------------------------------------------

    async def _pages(self, method: str, make: Callable[[Any, str | None], Any]) -> list[JsonObject]:
        """Every page of a list call, following ``nextPageToken`` to the end; a token seen before
        (the list would never end) or more than ``max_pages`` pages end it with an error."""
        pages: list[JsonObject] = []
        seen: set[str] = set()
        token: str | None = None
        while True:
            page = await self._call(method, _bind_token(make, token))
            pages.append(page)
            token = page.get("nextPageToken") or None
            if token is None:
                return pages
            if not isinstance(token, str) or token in seen:
                raise self._final(method, "paging", f"nextPageToken repeated after {len(pages)} pages")
            if len(pages) >= self._max_pages:
                raise self._final(method, "paging", f"more than {self._max_pages} pages")
            seen.add(token)

    @staticmethod
    def _final(method: str, code: str, message: str) -> ComputeError:
        metrics.COMPUTE_API_ERRORS.labels(method=method, code=code).inc()
        log.warning("compute call failed: %s: %s", method, message)
        return ComputeError(method, None, code, message)

    async def _list(self, method: str, make: Callable[[Any, str | None], Any]) -> list[JsonObject]:
        return [item for page in await self._pages(method, make) for item in page.get("items") or []]

    # --- one call with retries ---------------------------------------------------------------

    def _service(self) -> Any:
        """This thread's service object (and, inside it, this thread's Http: ``self._local.http``)."""
        service = getattr(self._local, "service", None)
        if service is None:
            guarded = _GuardedHttp(self._http_factory(), self._max_response_bytes)
            self._local.http = guarded
            http: Any = guarded
            # Anonymous: a plain Http (AuthorizedHttp would try to "refresh" them on a 401).
            if self._credentials is not None and not isinstance(self._credentials, AnonymousCredentials):
                http = google_auth_httplib2.AuthorizedHttp(self._credentials, http=http)
            options = {"api_endpoint": self._root} if self._root else None
            # The bundled discovery document (no network at start-up), parsed once per process; a copy
            # per thread, since googleapiclient writes into the document it builds from.
            service = build_from_document(copy.deepcopy(_document()), http=http, client_options=options)
            self._local.service = service
        return service

    async def _call(self, method: str, make: Callable[[Any], Any]) -> JsonObject:
        """One call: an HTTP attempt per job on the thread pool, backoff awaited in between, within
        the policy's attempts and time budget (the per-call deadline)."""
        policy = self._retry
        started = self._clock()
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            remaining = policy.max_elapsed - (self._clock() - started)
            response, failure = await self._bounded_attempt(loop, method, make, max(0.0, remaining))
            if failure is None:
                return response
            attempt += 1
            delay = self._backoff(attempt, failure)
            out_of_budget = (
                attempt >= policy.max_attempts or self._clock() - started + delay > policy.max_elapsed
            )
            if not failure.retryable or out_of_budget:
                code = str(failure.error.code) if failure.error.code is not None else failure.error.reason
                metrics.COMPUTE_API_ERRORS.labels(method=method, code=code).inc()
                if failure.retryable:
                    log.warning("compute call failed after %d attempts: %s", attempt, failure.error)
                raise failure.error
            log.info("compute call failed (attempt %d), retrying in %.2fs: %s", attempt, delay, failure.error)
            await self._sleep(delay)

    async def _bounded_attempt(
        self, loop: asyncio.AbstractEventLoop, method: str, make: Callable[[Any], Any], budget: float
    ) -> tuple[JsonObject, _Failure | None]:
        """One attempt: queued for a thread at most ``budget`` seconds (what is left of the call's),
        then running at most the attempt deadline; past either (or when cancelled) it is abandoned
        and its connection shut down, so its thread ends now instead of when the server stops
        trickling."""
        job = next(self._jobs)
        began = asyncio.Event()

        def on_start() -> None:
            loop.call_soon_threadsafe(began.set)

        attempt = loop.run_in_executor(self._executor, self._attempt, method, make, job, on_start)
        waiting: asyncio.Future[Any] = asyncio.ensure_future(began.wait())
        pending: set[asyncio.Future[Any]] = {attempt, waiting}
        try:
            await asyncio.wait(pending, timeout=max(budget, 0.001), return_when=FIRST_COMPLETED)
            if not attempt.done():
                if not began.is_set():
                    raise TimeoutError
                async with asyncio.timeout(max(min(self._attempt_deadline, budget), 0.001)):
                    return await attempt
            return attempt.result()
        except TimeoutError:
            self._abandoned.add(job)  # still queued (a busy pool): it must not start later
            message = f"{self._where}: no complete answer within {self._attempt_deadline:.1f}s"
            return {}, _failed(method, "deadline", message, True)
        except asyncio.CancelledError:
            self._abandoned.add(job)
            raise
        finally:
            waiting.cancel()
            http = self._in_flight.pop(job, None)
            if http is not None:
                http.abort()
                self._abandoned.discard(job)

    def _backoff(self, attempt: int, failure: _Failure) -> float:
        """Full jitter, capped; at least the server's Retry-After (capped too)."""
        policy = self._retry
        delay = self._rand(0.0, min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1)))
        if failure.retry_after is not None:
            delay = max(delay, min(failure.retry_after, policy.max_delay))
        return delay

    def _attempt(
        self,
        method: str,
        make: Callable[[Any], Any],
        job: int = -1,
        began: Callable[[], None] = lambda: None,
    ) -> tuple[JsonObject, _Failure | None]:
        """One HTTP attempt, counted in COMPUTE_API_CALLS by status (or timeout/connection/auth/
        malformed/too_large)."""
        if job in self._abandoned:  # its caller gave up while it was queued
            self._abandoned.discard(job)
            return {}, _Failure(ComputeError(method, None, "deadline", "abandoned before it started"), True)
        try:
            service = self._service()
            guarded: _GuardedHttp = self._local.http
            self._in_flight[job] = guarded
            began()
            try:
                response: object = make(service).execute(num_retries=0)
            finally:
                if self._in_flight.pop(job, None) is None or guarded.aborted:
                    self._local.service = None  # aborted: this thread starts afresh next time
        except HttpError as exc:
            status = int(exc.resp.status)
            reason, message = _http_error_details(exc)
            metrics.COMPUTE_API_CALLS.labels(method=method, code=str(status)).inc()
            retryable = status == 429 or status >= 500 or (status == 403 and reason in RATE_LIMIT_REASONS)
            return {}, _Failure(ComputeError(method, status, reason, message), retryable, _retry_after(exc))
        except google.auth.exceptions.RefreshError as exc:
            # google-auth's message names what failed (e.g. the token endpoint's answer), never the key.
            message = f"getting an access token failed: {exc}"
            return {}, _failed(method, "auth", message, bool(getattr(exc, "retryable", False)))
        except TimeoutError as exc:
            return {}, _failed(method, "timeout", f"{self._where}: {exc or 'timed out'}", True)
        except _TooLarge as exc:
            return {}, _failed(method, "too_large", f"{self._where}: {exc}", False)
        except (
            OSError,
            http.client.HTTPException,  # e.g. IncompleteRead: a truncated body
            httplib2.HttpLib2Error,
            google.auth.exceptions.TransportError,
        ) as exc:
            return {}, _failed(method, "connection", f"{self._where}: {exc or type(exc).__name__}", True)
        except ValueError as exc:  # the body is not JSON (HTML, truncated, garbage)
            message = f"{self._where}: the body is not JSON: {redact.clip(str(exc))}"
            return {}, _failed(method, "malformed", message, True)
        if not isinstance(response, dict):
            message = f"{self._where}: the body is {type(response).__name__}, not a JSON object"
            return {}, _failed(method, "malformed", message, True)
        metrics.COMPUTE_API_CALLS.labels(method=method, code="200").inc()
        return response, None


def _failed(method: str, code: str, message: str, retryable: bool) -> _Failure:
    """An attempt that got no answer to use, counted in COMPUTE_API_CALLS by ``code``."""
    metrics.COMPUTE_API_CALLS.labels(method=method, code=code).inc()
    return _Failure(ComputeError(method, None, code, message), retryable)
