"""The physical floor under the fan-out figures: what grpc.aio itself costs on this machine.

A bare grpc.aio server (``python -m bench.grpc_floor``, a process of its own, so its CPU time is its
own) with one bidirectional streaming method on raw bytes and no xDS at all: on each ``change`` it
writes one ``PAYLOAD``-byte message (the size of the fan-out's changed assignment response) to every
open stream and reads one message back from each (the ACK). The clients are the fan-out's: one
grpc.aio channel each, in the parent process, answering every message at once. Per round: change ->
receipt over all streams, and the server's CPU seconds. This is what any Python gRPC server pays per
stream and change before doing any work of its own; the fan-out scenario prints it beside its own
figures, so a target below it is seen to be below it.

Commands on stdin, one per line: ``change`` (prints ``CHANGED <monotonic ns>``), ``acked`` (prints
``ACKED <messages read so far>``), ``cpu`` (``CPU <process seconds>``), ``quit``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from bench.proc import LineServer
from bench.report import percentile

METHOD = "/bench.Floor/Stream"
PAYLOAD = 400
TIMEOUT = 60.0


class _Floor:
    def __init__(self) -> None:
        self.round = asyncio.Event()
        self.acked = 0
        self.payload = b"x" * PAYLOAD

    async def stream(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> None:
        await context.read()  # the client's hello
        while True:
            event = self.round
            await event.wait()
            await context.write(self.payload)
            if await context.read() is grpc.aio.EOF:
                return
            self.acked += 1


def _identity(data: bytes) -> bytes:
    return data


async def serve() -> None:
    floor = _Floor()
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "bench.Floor",
        {
            "Stream": grpc.stream_stream_rpc_method_handler(
                floor.stream, request_deserializer=_identity, response_serializer=_identity
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"READY {port}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while True:
            line = (await reader.readline()).decode().split()
            if not line or line[0] == "quit":
                break
            if line[0] == "change":
                at = time.monotonic_ns()
                event, floor.round = floor.round, asyncio.Event()
                event.set()
                print(f"CHANGED {at}", flush=True)
            elif line[0] == "acked":
                print(f"ACKED {floor.acked}", flush=True)
            elif line[0] == "cpu":
                print(f"CPU {time.process_time()}", flush=True)
    finally:
        await server.stop(0.5)


@dataclass
class FloorRound:
    streams: int
    latencies_ms: list[float]
    cpu_per_change_s: float

    @property
    def per_stream_us(self) -> float:
        return 1e6 * self.cpu_per_change_s / self.streams

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 99)


async def _client(
    port: int, receipts: list[int], received: asyncio.Queue[None], ready: asyncio.Queue[None]
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.stream_stream(METHOD, request_serializer=_identity, response_deserializer=_identity)()
        await call.write(b"hello")
        ready.put_nowait(None)
        while True:
            message = await call.read()
            if message is grpc.aio.EOF:
                return
            receipts.append(time.monotonic_ns())
            received.put_nowait(None)
            await call.write(b"ack")


async def measure_floor(streams: int, trials: int) -> FloorRound:
    """``trials`` rounds of one message to each of ``streams`` streams and one back."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.grpc_floor",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    server = LineServer(proc, "grpc floor server", TIMEOUT)
    receipts: list[list[int]] = [[] for _ in range(streams)]
    received: asyncio.Queue[None] = asyncio.Queue()
    ready: asyncio.Queue[None] = asyncio.Queue()
    tasks: list[asyncio.Task[None]] = []
    try:
        port = int((await server.expect("READY"))[0])
        tasks = [asyncio.create_task(_client(port, receipts[i], received, ready)) for i in range(streams)]
        for _ in range(streams):
            await asyncio.wait_for(ready.get(), TIMEOUT)
        await asyncio.sleep(0.5)  # every hello read by the server
        cpu_start = float((await server.command("cpu", "CPU"))[0])
        latencies: list[float] = []
        for trial in range(trials):
            at_ns = int((await server.command("change", "CHANGED"))[0])
            for _ in range(streams):
                await asyncio.wait_for(received.get(), TIMEOUT)
            latencies += [(r[trial] - at_ns) / 1e6 for r in receipts]
            deadline = time.monotonic() + TIMEOUT
            while int((await server.command("acked", "ACKED"))[0]) < streams * (trial + 1):
                if time.monotonic() > deadline:
                    raise TimeoutError("grpc floor: ACKs not read in time")
                await asyncio.sleep(0.002)
        cpu_end = float((await server.command("cpu", "CPU"))[0])
        return FloorRound(streams, latencies, (cpu_end - cpu_start) / trials)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.stop()


if __name__ == "__main__":
    asyncio.run(serve())
