"""What stands between a request and the database: a body-size limit, and connections
that survive a database restart.

- ``BodyLimitMiddleware`` answers 413 before reading past ``max_body_bytes`` (declared
  ``Content-Length`` or a streamed body alike).
- ``with_connection`` runs a query on a pooled connection; when the connection turns out
  to be dead (the server restarted since it was opened) the pool drops its other dead
  connections and the query runs once more on a fresh one. While the server is down the
  pool's own timeout bounds the wait and the caller answers 503.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prodsearch.db.retry import is_connection_loss

T = TypeVar("T")


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """413 JSON for a request body over ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0
        too_large = refused = False

        async def counted_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    too_large = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            """Once the body overflowed, whatever the app answers (FastAPI turns the
            failed read into a 400) is replaced by the 413."""
            nonlocal refused
            if not too_large:
                await send(message)
            elif not refused:
                refused = True
                await self._refuse(send)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            if not refused:
                refused = True
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = orjson.dumps({"error": f"request body over {self.limit} bytes"})
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def with_connection(pool: AsyncConnectionPool, run: Callable[[Any], Awaitable[T]]) -> T:
    """``await run(conn)`` on a pooled connection, once more on a fresh one when the
    first was dead (see the module docstring)."""
    try:
        async with pool.connection() as conn:
            return await run(conn)
    except psycopg.OperationalError as exc:
        if not is_connection_loss(exc):
            raise
    await pool.check()  # drop every idle connection the restart killed
    async with pool.connection() as conn:
        return await run(conn)
