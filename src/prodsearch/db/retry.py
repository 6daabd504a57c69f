"""Riding out a lost database connection: retry with backoff for a bounded time.

Only connection failures are retried (the server went away, restarted or refuses
connections); an error in a statement is raised at once. The action must be safe to
repeat: each retried unit here is one transaction, rolled back when the connection dies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg

from prodsearch.errors import DatabaseUnavailable

log = logging.getLogger("prodsearch.db")
T = TypeVar("T")
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 5.0


def is_connection_loss(exc: BaseException) -> bool:
    """A lost or refused connection, as opposed to a statement the server rejected."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    # no SQLSTATE: the socket closed; 08: connection exceptions; 57P01-03: shutdown, crash
    return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def retry_db(action: Callable[[], T], budget_s: float, doing: str) -> T:
    """``action()``, retried while the database connection is lost, for at most
    ``budget_s`` seconds from the first failure (backoff 0.5 s doubling to 5 s). Past the
    budget: DatabaseUnavailable with one line that says what to do."""
    deadline: float | None = None
    delay = FIRST_DELAY_S
    while True:
        try:
            return action()
        except Exception as exc:
            if not is_connection_loss(exc):
                raise
            now = time.monotonic()
            deadline = now + budget_s if deadline is None else deadline
            if now >= deadline:
                raise DatabaseUnavailable(
                    f"the database was unreachable for {budget_s:g} s while {doing} "
                    f"({one_line(exc)}); everything committed before is kept: run the same "
                    "command again once the database is back (PRODSEARCH_DB_RETRY_S sets "
                    "how long to wait)"
                ) from exc
            wait = min(delay, deadline - now)
            log.warning("database connection lost while %s; retrying in %.1f s", doing, wait)
            time.sleep(wait)
            delay = min(delay * 2, MAX_DELAY_S)
