"""``gce-plugin discover``: run endpoint discovery (every registered discovery plugin) for the upstream
manifests in a directory and print the endpoints, once (``--once``) or again whenever they change.

Output: ``json`` (a JSON array of gloo ``Endpoint``s in protobuf JSON), ``yaml`` (the same) or
``table``; sorted by endpoint name. Errors (bad manifests, failing upstreams) go to stderr. With
``--once`` the exit status is 1 when any upstream failed or any manifest is bad; watching, a bad
manifest is reported and the good ones are watched.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import yaml
from google.protobuf import json_format

from gce_plugin import logs, manifests
from gce_plugin.api import Endpoint, Upstream
from gce_plugin.builtin import default_registry
from gce_plugin.commands import format_table
from gce_plugin.commands.options import compute_parent, gce_settings, logging_parent
from gce_plugin.plugins.gce.spec import ANNOTATION_PREFIX
from gce_plugin.plugins.plugin import (
    DiscoveryError,
    DiscoveryPlugin,
    EndpointsUpdate,
    InitParams,
    Settings,
    WatchedUpstreams,
    WatchOpts,
)
from gce_plugin.plugins.refresh import PollingPlugin

# Logs go to stderr beside the errors printed for people: text by default, as before.
PARENTS = (compute_parent, lambda: logging_parent("warning", "text"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="DIR", help="directory of Upstream manifests")
    parser.add_argument("--once", action="store_true", help="one discovery pass, then exit")
    parser.add_argument("-o", "--output", choices=("json", "yaml", "table"), default="json", help="output")


def endpoint_json(endpoint: Endpoint) -> dict[str, Any]:
    return json_format.MessageToDict(endpoint)


def render(endpoints: Sequence[Endpoint], output: str) -> str:
    if output == "json":
        return json.dumps([endpoint_json(e) for e in endpoints], indent=2, sort_keys=True) + "\n"
    if output == "yaml":
        return yaml.safe_dump([endpoint_json(e) for e in endpoints], sort_keys=True) + "---\n"
    rows = [("UPSTREAM", "ENDPOINT", "ADDRESS", "PORT", "ZONE", "INSTANCE")]
    for e in endpoints:
        ref = e.upstreams[0] if e.upstreams else None
        rows.append(
            (
                f"{ref.namespace}.{ref.name}" if ref else "",
                e.metadata.name,
                e.address,
                str(e.port),
                e.metadata.annotations.get(ANNOTATION_PREFIX + "zone", ""),
                e.metadata.annotations.get(ANNOTATION_PREFIX + "instance-name", ""),
            )
        )
    return format_table(rows)


def load_upstreams(directory: str, err: TextIO) -> tuple[list[Upstream], bool]:
    """The upstreams of the good manifest files, and whether every file was good."""
    by_file, errors = manifests.load_dir(directory)
    for error in errors:
        print(f"error: manifest {error}", file=err)
    return [u for upstreams in by_file.values() for u in upstreams], not errors


async def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        upstreams, manifests_ok = load_upstreams(args.config, err)
    except NotADirectoryError as exc:
        print(f"error: {exc}", file=err)
        return 1
    registry = default_registry(gce_settings(args))
    registry.init(InitParams(Settings(refresh_interval=args.refresh)))
    plugins = registry.discovery_plugins()
    if not any(isinstance(p, PollingPlugin) and p.handles(u) for p in plugins for u in upstreams):
        print("warning: no upstreams of a discovered type in " + args.config, file=err)
    try:
        failed = await Discovery(plugins, args, out, err).run(upstreams)
    finally:
        registry.close()
    return 1 if failed or not manifests_ok else 0


class Discovery:
    """Every discovery plugin's watch over the same upstreams; the endpoints of all of them printed
    together: once every plugin has answered (or failed as a whole) with ``--once``, else after
    every answer."""

    def __init__(
        self, plugins: Sequence[DiscoveryPlugin], args: argparse.Namespace, out: TextIO, err: TextIO
    ):
        self.plugins = plugins
        self.args = args
        self.out = out
        self.err = err
        self.failed: set[str] = set()
        self.latest: dict[str, EndpointsUpdate] = {}
        self.settled: set[str] = set()  # plugins that answered or failed as a whole
        self.news: asyncio.Queue[None] = asyncio.Queue()

    async def run(self, upstreams: Sequence[Upstream]) -> set[str]:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._follow(p, upstreams)) for p in self.plugins]
            try:
                await self._print_answers()
            finally:
                for task in tasks:
                    task.cancel()
        return self.failed

    async def _print_answers(self) -> None:
        while True:
            await self.news.get()
            if self.args.once and len(self.settled) < len(self.plugins):
                continue
            self.out.write(render(self._endpoints(), self.args.output))
            self.out.flush()
            if self.args.once:
                return

    def _endpoints(self) -> tuple[Endpoint, ...]:
        every = {k: v for update in self.latest.values() for k, v in update.upstreams.items()}
        return EndpointsUpdate.first(every).endpoints

    async def _follow(self, plugin: DiscoveryPlugin, upstreams: Sequence[Upstream]) -> None:
        def on_error(error: DiscoveryError) -> None:
            where = error.label if error.upstream else plugin.name
            self.failed.add(where)
            print(f"error: {where}: {error}", file=self.err, flush=True)
            if error.upstream is None:  # nothing to wait for from this poll
                self.settled.add(plugin.name)
                self.news.put_nowait(None)

        opts = WatchOpts(refresh_interval=self.args.refresh, on_error=on_error)
        watch = plugin.watch_endpoints(self.args.write_namespace, WatchedUpstreams(upstreams), opts)
        async with contextlib.aclosing(watch):
            async for update in watch:
                self.latest[plugin.name] = update
                self.settled.add(plugin.name)
                self.news.put_nowait(None)


def main(args: argparse.Namespace) -> int:
    logs.setup(args.log_level, args.log_format)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run(args, sys.stdout, sys.stderr))
    return 130
