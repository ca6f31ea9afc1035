"""The garbage collector and the control plane's long-lived state.

Once the first discovery answer is published, most of what the process holds lives until the
process ends or the upstream changes: translated clusters and assignments, the cache's entries, the
plugins' clients, every loaded module. CPython's collector still walks all of it in every full
(generation 2) collection, and a poll at 10,000 upstreams allocates enough to trigger about one per
poll: 145-185 ms on the event loop with ~450,000 tracked objects (bench/RESULTS.md, "GC"), right
between a discovery answer and its push. ``gc.freeze()`` moves everything alive at that moment into
the permanent generation, which collections skip; frozen objects are still freed by reference
counting when they are dropped (only a reference cycle among them would wait for the process to
end). The collector's thresholds are left at their defaults: with the long-lived state frozen, a full
collection walks only what was allocated since, and measurements showed no need to tune them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger(__name__)

_frozen = False


_loaded_frozen = False


def freeze_once_loaded() -> None:
    """Collect once and freeze everything alive, before discovery starts: the translated manifests
    and every module (~110,000 objects at 10,000 upstreams). The first poll then allocates a few
    hundred thousand objects (listed JSON, endpoints); the full collections that triggers would
    walk the start-up state each time (~0.4 s each at 10,000 upstreams, some of it after the last
    answer). ``freeze_after_first_publish`` freezes again once the first answer is published. Only
    the first call does anything (a process runs one control plane; a test process many)."""
    global _loaded_frozen
    if _loaded_frozen or _frozen:
        return
    _loaded_frozen = True
    _collect_and_freeze()


def freeze_after_first_publish() -> bool:
    """Collect once, then freeze everything alive. Only the first call does anything (returns True);
    the control plane calls it after every publish of a discovery answer. Inside an event loop the
    work (~0.4 s at 10,000 upstreams) runs as the loop's next callback, after the streams the publish
    woke have started writing it: the first push is not held up by it."""
    global _frozen
    if _frozen:
        return False
    _frozen = True
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _collect_and_freeze()
    else:
        loop.call_soon(_collect_and_freeze)
    return True


def _collect_and_freeze() -> None:
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.info(
        "long-lived state frozen for the garbage collector",
        extra={"objects": gc.get_freeze_count(), "ms": round(1000 * (time.perf_counter() - started), 1)},
    )


def release_later(garbage: object) -> None:
    """Drop ``garbage`` two rounds of the event loop from now (at once outside one). Freeing a poll's
    listed JSON takes ~13 ms at 10,000 upstreams; a poll's caller publishes its answer in the same
    step of the loop, and the streams that publish wakes write in the next round: freeing in the
    round after theirs keeps that work out of the way of the push."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    held = [garbage]
    loop.call_soon(loop.call_soon, held.clear)


def frozen() -> bool:
    return _frozen
