"""The refresh loop every polling discovery plugin shares, after Prometheus's ``discovery/refresh``.

A polling plugin supplies one function, "poll these upstreams once" (``Poll``), and which upstreams
are its own (``PollingPlugin.handles``); ``refresh_loop`` does the rest, the same way for every
plugin:

- the first poll at once, then one every refresh interval (with +-10% jitter, so that replicas do not
  poll in step), the time of a poll not counted;
- upstreams added, or pointed at other endpoints (``discovery_target``), are polled at once, alone;
  an edit that changes none of the plugin's upstreams' targets touches nothing: the others keep their
  endpoints, their gauge and their poll schedule;
- per-upstream errors, and a poll that failed as a whole, go to ``opts.on_error``; the upstream (or
  every upstream) keeps its last good endpoints; a spec error is reported once per spec; every
  upstream a poll resolved goes to ``opts.on_success`` (discovery health);
- a poll that has not ended after ``opts.poll_timeout`` seconds is cancelled (its calls with it) and
  is a failure of every upstream in it: a hung cloud API never freezes discovery silently;
- **losses are confirmed** (the one place for it, for every plugin): an answer that would take an
  upstream from some endpoints to none, or that shrinks it while the same poll reports an error for
  it (a group found missing), is applied only when the next poll gives the same endpoints. Until then
  the upstream keeps its endpoints (a warning says why); a real scale-to-zero lands one refresh later;
- **last good across restarts** (``opts.last_good``): endpoints are saved per upstream when their
  content version changes; an upstream that a poll cannot resolve and that has no endpoints yet (a
  restart while the cloud API is down) is served its saved endpoints, if they were found for the same
  target, and reported stale (``opts.on_stale``) until its next success;
- metrics: ``gce_plugin_discovery_polls{plugin,result}`` per poll and
  ``gce_plugin_upstream_endpoints{upstream}`` per upstream while the watch runs;
- answers (``EndpointsUpdate``): the first after the first poll that completes, then after every
  change, naming the upstreams whose endpoints changed and the ones that left.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import TypeVar

from gce_plugin import metrics
from gce_plugin.api import Endpoint, Upstream
from gce_plugin.health import iso
from gce_plugin.plugins.plugin import (
    DiscoveryError,
    DiscoveryPlugin,
    EndpointsUpdate,
    UpstreamEndpoints,
    UpstreamKey,
    WatchedUpstreams,
    WatchOpts,
    discovery_target,
    upstream_key,
    upstream_label,
)

log = logging.getLogger(__name__)

JITTER = 0.1
T = TypeVar("T")


@dataclass(frozen=True)
class PollResult:
    """One poll. ``found``: the upstreams resolved by this poll (known to have none: empty).
    ``errors``: upstreams that failed this poll (they keep their last good endpoints). ``invalid``:
    upstreams whose spec is wrong (reported once per spec)."""

    found: dict[UpstreamKey, UpstreamEndpoints] = field(default_factory=dict)
    errors: dict[UpstreamKey, str] = field(default_factory=dict)
    invalid: dict[UpstreamKey, str] = field(default_factory=dict)

    @property
    def endpoints(self) -> dict[UpstreamKey, tuple[Endpoint, ...]]:
        return {key: found.endpoints for key, found in self.found.items()}


# Poll these upstreams (all of the plugin's type) once. Raise DiscoveryError (or anything else: a
# bug) when the poll failed as a whole.
Poll = Callable[[Sequence[Upstream]], Awaitable[PollResult]]


class PollingPlugin(DiscoveryPlugin):
    """A discovery plugin that polls: it supplies ``handles`` and ``poll``, the refresh loop the watch."""

    @abc.abstractmethod
    def handles(self, upstream: Upstream) -> bool:
        """True for the upstreams of this plugin's type."""

    @abc.abstractmethod
    async def poll(self, write_namespace: str, upstreams: Sequence[Upstream]) -> PollResult:
        """Find the endpoints of ``upstreams`` (all of them handled by this plugin) once."""

    def watch_endpoints(
        self, write_namespace: str, upstreams: WatchedUpstreams, opts: WatchOpts
    ) -> AsyncGenerator[EndpointsUpdate, None]:
        async def poll(batch: Sequence[Upstream]) -> PollResult:
            return await self.poll(write_namespace, batch)

        return refresh_loop(self.name, poll, upstreams, opts, self.handles)


class _Refresh:
    """What one refresh loop knows: its upstreams, their targets and their last good endpoints."""

    def __init__(self, plugin: str, poll: Poll, opts: WatchOpts, handles: Callable[[Upstream], bool]) -> None:
        self.plugin = plugin
        self._poll = poll
        self._opts = opts
        self._handles = handles
        self.mine: dict[UpstreamKey, Upstream] = {}
        self._targets: dict[UpstreamKey, bytes] = {}
        self.published: dict[UpstreamKey, UpstreamEndpoints] = {}
        self.last: EndpointsUpdate | None = None
        # The last poll's result, until its successes are reported.
        self._last_result: PollResult | None = None
        # Losses seen once, waiting for the next poll to confirm them: key -> the version seen.
        self._unconfirmed: dict[UpstreamKey, str] = {}
        # Upstreams served restored (stale) endpoints: tried once per target.
        self._restore_tried: set[UpstreamKey] = set()

    def retarget(self, upstreams: Iterable[Upstream]) -> dict[UpstreamKey, Upstream]:
        """Take a new set of upstreams; forget the endpoints of those that left or were pointed
        elsewhere; return the ones to poll now (new, or pointed elsewhere)."""
        incoming = {upstream_key(u): u for u in upstreams if self._handles(u)}
        targets = {key: discovery_target(u) for key, u in incoming.items()}
        fresh = [key for key, target in targets.items() if self._targets.get(key) != target]
        for key in (self._targets.keys() - targets.keys()).union(fresh):
            self.forget(key)
            if key not in targets and self._opts.last_good is not None:
                self._opts.last_good.forget(key)
        self.mine, self._targets = incoming, targets
        return {key: incoming[key] for key in fresh}

    def forget(self, key: UpstreamKey) -> None:
        self._unconfirmed.pop(key, None)
        self._restore_tried.discard(key)
        if self.published.pop(key, None) is not None:
            with contextlib.suppress(KeyError):
                metrics.UPSTREAM_ENDPOINTS.remove(upstream_label(key))

    async def poll(
        self, batch: Mapping[UpstreamKey, Upstream], fresh: Set[UpstreamKey]
    ) -> set[UpstreamKey] | None:
        """Poll the upstreams of ``batch``, report the errors, take the changes; the upstreams whose
        endpoints changed, or None when the poll failed as a whole. Everything here after the poll
        runs between its last answer and the publish: with thousands of upstreams of which a few
        changed, it must cost little per unchanged upstream."""
        timeout = self._opts.poll_timeout
        try:
            async with asyncio.timeout(timeout):
                result = await self._poll(list(batch.values()))
        except DiscoveryError as err:
            self._report([err])
            return self._restore(batch) or None
        except TimeoutError:
            log.error("discovery poll cancelled after %.0fs", timeout, extra={"plugin": self.plugin})
            self._report(
                [DiscoveryError(f"{self.plugin} discovery poll did not finish within {timeout:.0f}s")]
            )
            return self._restore(batch) or None
        except Exception as exc:  # a bug, not a cloud failure (those are per upstream): report, go on
            log.exception("discovery poll failed", extra={"plugin": self.plugin})
            self._report([DiscoveryError(f"{self.plugin} discovery poll failed: {exc}")])
            return self._restore(batch) or None
        errors = [DiscoveryError(message, upstream=key) for key, message in result.errors.items()]
        errors += [DiscoveryError(m, upstream=k) for k, m in result.invalid.items() if k in fresh]
        self._report(errors)
        self._last_result = result  # its successes are reported after the answer (report_successes)
        restored: set[UpstreamKey] = set()
        if self._opts.last_good is not None:  # else there is nothing to restore from
            restored = self._restore(self._unresolved(batch, result))
        found = result.found
        if restored:
            found = {k: v for k, v in found.items() if k not in restored}
        return self._take(found, result.errors.keys()) | restored

    def _unresolved(self, batch: Mapping[UpstreamKey, Upstream], result: PollResult) -> list[UpstreamKey]:
        """The upstreams a poll did not resolve, or that failed with nothing found and have nothing
        served yet: candidates for their saved endpoints."""
        found, errors = result.found, result.errors
        if not errors and batch.keys() <= found.keys():
            return []  # the common case, decided without a loop in Python
        return [
            key
            for key in batch
            if key not in found or (key in errors and not found[key].count and key not in self.published)
        ]

    def _restore(self, keys: Iterable[UpstreamKey]) -> set[UpstreamKey]:
        """Serve saved endpoints to the upstreams a poll could not resolve that have none yet."""
        last_good = self._opts.last_good
        restored: set[UpstreamKey] = set()
        if last_good is None:
            return restored
        for key in keys:
            if key in self.published or key in self._restore_tried or key not in self.mine:
                continue
            self._restore_tried.add(key)
            saved = last_good.load(key, self._targets.get(key, b""))
            if saved is None:
                continue
            found, saved_at = saved
            self._set(key, found, save=False)
            restored.add(key)
            log.warning(
                "discovery failed; serving the %d endpoints saved at %s (stale)",
                found.count,
                iso(saved_at),
                extra={"upstream": upstream_label(key)},
            )
            self._call2(self._opts.on_stale, key, saved_at)
        return restored

    def report_successes(self) -> None:
        """Tell ``opts.on_success`` about every upstream the last poll resolved. Called once the
        poll's answer was handed on: one call per upstream, so not between a change and its publish."""
        result, self._last_result = self._last_result, None
        if result is None:
            return
        errors = result.errors
        for key in result.found.keys() - errors.keys() if errors else result.found:
            self._call(self._opts.on_success, key)

    @staticmethod
    def _call(callback: Callable[[T], None], arg: T) -> None:
        try:
            callback(arg)
        except Exception:
            log.exception("discovery callback failed")

    @staticmethod
    def _call2(callback: Callable[[UpstreamKey, float], None], key: UpstreamKey, when: float) -> None:
        try:
            callback(key, when)
        except Exception:
            log.exception("discovery callback failed")

    def _take(
        self, found: Mapping[UpstreamKey, UpstreamEndpoints], failing: Iterable[UpstreamKey] = ()
    ) -> set[UpstreamKey]:
        published = self.published
        # Unchanged (often the very object published: a plugin's memo) costs one lookup here.
        candidates = [
            key
            for key, endpoints in found.items()
            if (known := published.get(key)) is not endpoints
            and (known is None or known.version != endpoints.version)
        ]
        if self._unconfirmed:  # an unchanged answer ends a wait for confirmation
            fresh = set(candidates)
            for key in [k for k in self._unconfirmed if k in found and k not in fresh]:
                del self._unconfirmed[key]
        changed = set()
        failing = set(failing)
        for key in candidates:
            endpoints, known = found[key], published.get(key)
            if key not in self.mine:
                self._unconfirmed.pop(key, None)
                continue  # left while it was polled
            if known is not None and not self._confirmed(key, known, endpoints, key in failing):
                continue
            self._set(key, endpoints)
            changed.add(key)
        return changed

    def _confirmed(
        self, key: UpstreamKey, known: UpstreamEndpoints, new: UpstreamEndpoints, failing: bool
    ) -> bool:
        """Whether to apply ``new`` over ``known`` now: yes unless it is a loss (all endpoints gone,
        or fewer while this poll reports an error for the upstream) not yet seen by the poll before."""
        loss = bool(known.count) and (not new.count or (failing and new.count < known.count))
        if not loss or self._unconfirmed.get(key) == new.version:
            self._unconfirmed.pop(key, None)
            return True
        self._unconfirmed[key] = new.version
        log.warning(
            "discovery found %d endpoints where there were %d; kept until the next poll confirms it",
            new.count,
            known.count,
            extra={"upstream": upstream_label(key)},
        )
        return False

    def _set(self, key: UpstreamKey, endpoints: UpstreamEndpoints, save: bool = True) -> None:
        self.published[key] = endpoints
        metrics.UPSTREAM_ENDPOINTS.labels(upstream=upstream_label(key)).set(endpoints.count)
        if save and self._opts.last_good is not None:
            self._opts.last_good.save(key, self._targets.get(key, b""), endpoints)

    def _report(self, errors: list[DiscoveryError]) -> None:
        metrics.DISCOVERY_POLLS.labels(plugin=self.plugin, result="error" if errors else "ok").inc()
        for error in errors:
            # Counting and logging errors is the consumer's, in on_error: the control plane does it
            # alike for every discovery plugin.
            log.debug("discovery error: %s", error, extra={"upstream": error.label})
            self._call(self._opts.on_error, error)

    def answer(self, changed: set[UpstreamKey]) -> EndpointsUpdate | None:
        """The next answer, or None when there is nothing new to say."""
        if self.last is None:
            self.last = EndpointsUpdate.first(dict(self.published))
            return self.last
        update = self.last.next(dict(self.published), changed)
        if not update.changed and not update.removed:
            return None
        self.last = update
        return update


async def refresh_loop(
    plugin: str,
    poll: Poll,
    upstreams: WatchedUpstreams,
    opts: WatchOpts,
    handles: Callable[[Upstream], bool],
) -> AsyncGenerator[EndpointsUpdate, None]:
    """Poll the upstreams ``handles`` accepts, as the module docstring says, until the consumer stops."""
    refresh = _Refresh(plugin, poll, opts, handles)
    loop = asyncio.get_running_loop()
    seen, due = -1, loop.time()
    try:
        while True:
            version, current = upstreams.snapshot()
            fresh = refresh.retarget(current) if version != seen else {}
            seen = version
            batch = refresh.mine if loop.time() >= due and refresh.mine else fresh
            update: EndpointsUpdate | None = None
            if batch:
                changed = await refresh.poll(batch, fresh.keys())
                if batch is not fresh:
                    due = loop.time() + opts.refresh_interval * random.uniform(1 - JITTER, 1 + JITTER)
                if changed is not None or refresh.last is not None:
                    update = refresh.answer(changed or set())
            elif refresh.last is not None or not refresh.mine:
                update = refresh.answer(set())  # removals only; or nothing to discover: say so once
            if update is not None:
                yield update
            refresh.report_successes()
            await upstreams.wait_changed(seen, due - loop.time() if refresh.mine else 3600.0)
    finally:
        for key in list(refresh.published):
            refresh.forget(key)
