"""A leader in its own process, for the kill -STOP test: campaigns, then writes a fenced key every
0.1 s (``<prefix>/writes/<identity>/<n>``), printing each; exits 3 once a write is refused."""

from __future__ import annotations

import asyncio
import sys

from gce_plugin.hostport import parse_host_port
from gce_plugin.store.client import EtcdClient
from gce_plugin.store.etcdpb import rpc_pb2
from gce_plugin.store.layout import Layout
from gce_plugin.store.leader import Deposed, Election, fenced


async def run(endpoints: str, prefix: str, identity: str) -> int:
    async with EtcdClient([parse_host_port(e) for e in endpoints.split(",")], timeout=1.0) as client:
        election = Election(client, identity, layout=Layout(prefix), ttl=2)
        lead = await election.campaign(retry=0.1)
        print(f"leader {lead.create_revision}", flush=True)
        n = 0
        while True:
            n += 1
            key = f"{prefix}/writes/{identity}/{n}".encode()
            try:
                await fenced(client, lead, [rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key))])
            except Deposed as err:
                print(f"deposed: {err}", flush=True)
                return 3
            print(f"wrote {n}", flush=True)
            await asyncio.sleep(0.1)


if __name__ == "__main__":
    sys.exit(asyncio.run(run(*sys.argv[1:4])))
