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
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from gce_plugin import metrics
from gce_plugin.api import Endpoint, Upstream
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

    def all_endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(
            sorted(
                (e for found in self.found.values() for e in found.endpoints),
                key=lambda e: (e.metadata.namespace, e.metadata.name),
            )
        )


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

    def retarget(self, upstreams: Iterable[Upstream]) -> list[Upstream]:
        """Take a new set of upstreams; forget the endpoints of those that left or were pointed
        elsewhere; return the ones to poll now (new, or pointed elsewhere)."""
        incoming = {upstream_key(u): u for u in upstreams if self._handles(u)}
        targets = {key: discovery_target(u) for key, u in incoming.items()}
        fresh = [key for key, target in targets.items() if self._targets.get(key) != target]
        for key in (self._targets.keys() - targets.keys()).union(fresh):
            self.forget(key)
        self.mine, self._targets = incoming, targets
        return [incoming[key] for key in fresh]

    def forget(self, key: UpstreamKey) -> None:
        if self.published.pop(key, None) is not None:
            with contextlib.suppress(KeyError):
                metrics.UPSTREAM_ENDPOINTS.remove(upstream_label(key))

    async def poll(self, upstreams: Sequence[Upstream], fresh: set[UpstreamKey]) -> set[UpstreamKey] | None:
        """Poll ``upstreams``, report the errors, take the changes; the upstreams whose endpoints
        changed, or None when the poll failed as a whole."""
        try:
            result = await self._poll(upstreams)
        except DiscoveryError as err:
            self._report([err])
            return None
        except Exception as exc:  # a bug, not a cloud failure (those are per upstream): report, go on
            log.exception("discovery poll failed", extra={"plugin": self.plugin})
            self._report([DiscoveryError(f"{self.plugin} discovery poll failed: {exc}")])
            return None
        errors = [DiscoveryError(message, upstream=key) for key, message in result.errors.items()]
        errors += [DiscoveryError(m, upstream=k) for k, m in result.invalid.items() if k in fresh]
        self._report(errors)
        for key in result.found.keys() - result.errors.keys():
            self._call(self._opts.on_success, key)
        return self._take(result.found)

    @staticmethod
    def _call(callback: Callable[[T], None], arg: T) -> None:
        try:
            callback(arg)
        except Exception:
            log.exception("discovery callback failed")

    def _take(self, found: dict[UpstreamKey, UpstreamEndpoints]) -> set[UpstreamKey]:
        changed = set()
        for key, endpoints in found.items():
            known = self.published.get(key)
            if key not in self.mine or (known is not None and known.version == endpoints.version):
                continue  # left while it was polled, or unchanged
            self.published[key] = endpoints
            metrics.UPSTREAM_ENDPOINTS.labels(upstream=upstream_label(key)).set(len(endpoints.endpoints))
            changed.add(key)
        return changed

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
            fresh = refresh.retarget(current) if version != seen else []
            seen = version
            batch = list(refresh.mine.values()) if loop.time() >= due and refresh.mine else fresh
            update: EndpointsUpdate | None = None
            if batch:
                changed = await refresh.poll(batch, {upstream_key(u) for u in fresh})
                if batch is not fresh:
                    due = loop.time() + opts.refresh_interval * random.uniform(1 - JITTER, 1 + JITTER)
                if changed is not None or refresh.last is not None:
                    update = refresh.answer(changed or set())
            elif refresh.last is not None or not refresh.mine:
                update = refresh.answer(set())  # removals only; or nothing to discover: say so once
            if update is not None:
                yield update
            await upstreams.wait_changed(seen, due - loop.time() if refresh.mine else 3600.0)
    finally:
        for key in list(refresh.published):
            refresh.forget(key)
