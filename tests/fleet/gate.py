"""A TCP gate in front of Redis for the fleet check (run as a Dagger service by `dagger call fleet-check`).

Dagger stops every service bound to a service that stops, so the replicas' Redis cannot be stopped and
restarted under them; this gate makes it unreachable instead, which is what a stopped Redis looks like to
a client. It forwards port 6380 to GATE_UPSTREAM (host:port). Control on port 8080: ``POST /down`` resets
every open connection and refuses new ones (reset at once); ``POST /up`` lets connections through again.
"""

from __future__ import annotations

import asyncio
import os

HOST, _, PORT = os.environ["GATE_UPSTREAM"].partition(":")
state: dict = {"up": True, "open": set()}


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.transport.abort()


async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    if not state["up"]:
        writer.transport.abort()
        return
    try:
        up_reader, up_writer = await asyncio.open_connection(HOST, int(PORT or 6379))
    except OSError:
        writer.transport.abort()
        return
    pair = (writer, up_writer)
    state["open"].add(pair)
    try:
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
    finally:
        state["open"].discard(pair)


async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = (await reader.readline()).split()
    while (await reader.readline()).strip():  # headers
        pass
    path = request[1].decode() if len(request) > 1 else "/"
    if path == "/down":
        state["up"] = False
        for pair in list(state["open"]):
            for w in pair:
                w.transport.abort()
    elif path == "/up":
        state["up"] = True
    body = b"up" if state["up"] else b"down"
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    writer.close()


async def main() -> None:
    await asyncio.start_server(forward, "0.0.0.0", 6380)
    await asyncio.start_server(control, "0.0.0.0", 8080)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
