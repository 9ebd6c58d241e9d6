"""Count PostgreSQL round trips on the wire: a loopback TCP proxy that reads the client's messages.

Why on the wire and not pg_stat_statements or a wrapped connection: a round trip is the client
waiting for the server, and a client ends every batch it will wait on with one of three messages:
Sync (extended protocol: bind/execute, answered by ReadyForQuery), Query (simple protocol, as in
asyncpg's reset on release) or Flush (asyncpg's statement preparation: Parse + Describe + Flush,
then it waits for the description). Counting those counts every wait, whatever the driver does
inside. pg_stat_statements counts statements (a reset is four of them, a preparation none), and a
wrapped connection only sees the calls someone thought to wrap.

    async with RoundTripCounter(dsn) as counter:   # counter.dsn goes to the pool instead of dsn
        before = counter.round_trips
        ...
        spent = counter.round_trips - before
"""

from __future__ import annotations

import asyncio
import struct
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

_COUNTED = {ord("S"), ord("Q"), ord("H")}  # Sync, Query, Flush: each ends a batch the client then waits on


class RoundTripCounter:
    def __init__(self, dsn: str) -> None:
        self._target = urlsplit(dsn)
        self.round_trips = 0
        self.log: list[str] = []  # what each round trip carried: the SQL, or "execute" for a prepared one
        self.dsn = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RoundTripCounter:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        netloc = f"{self._target.username}@127.0.0.1:{port}" if self._target.username else f"127.0.0.1:{port}"
        # sslmode=disable: the proxy must read plain protocol messages.
        query = "&".join(filter(None, [self._target.query, "sslmode=disable"]))
        self.dsn = urlunsplit(self._target._replace(netloc=netloc, query=query))
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(self._target.hostname, self._target.port)
        for task in (self._client_to_server(client_r, server_w), self._pipe(server_r, client_w)):
            t = asyncio.create_task(task)
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    async def _client_to_server(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            (length,) = struct.unpack("!i", await reader.readexactly(4))  # the untyped startup message
            writer.write(struct.pack("!i", length) + await reader.readexactly(length - 4))
            pending, prepared = "", dict[bytes, str]()
            while True:
                header = await reader.readexactly(5)
                kind, length = header[0], struct.unpack("!i", header[1:])[0]
                payload = await reader.readexactly(length - 4)
                writer.write(header + payload)
                fields = payload.split(b"\0")
                if kind == ord("Q"):  # simple query: the SQL
                    pending = " ".join(fields[0].decode(errors="replace").split())[:80]
                elif kind == ord("P"):  # Parse: statement name, SQL
                    prepared[fields[0]] = " ".join(fields[1].decode(errors="replace").split())[:80]
                    pending = "prepare " + prepared[fields[0]]
                elif kind == ord("B") and not pending:  # Bind: portal, statement name
                    pending = prepared.get(fields[1], "execute")
                if kind in _COUNTED:
                    self.round_trips += 1
                    self.log.append(pending or "execute")
                    pending = ""
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
